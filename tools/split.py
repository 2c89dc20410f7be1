"""The split of the demo concepts: seen (training), validation of seen, unseen (test).

* **unseen**: concepts the model never trains on; the zero-shot test of the
  README. Stratified by group (emoji group, or ``Icons``): per group
  ``round(UNSEEN_FRACTION * n)`` concepts, at least one.
* Near-duplicate concepts must not straddle the split (``calendar`` seen and
  ``spiral calendar`` unseen would leak). Concepts are joined into *families*
  sharing a head word (the last word of the name or of an emoji short name,
  plural folded; generic heads such as ``face`` or ``button`` do not join),
  and whole families go to one side.
* **validation** of seen concepts: about :data:`VALIDATION_FRACTION` of each
  seen concept's drawing icons (all stroke variants of an icon together),
  held out from training; queried against the seen concepts' photos, they
  choose the relation head and the rerank depth. Never the unseen concepts.

Deterministic (salted SHA-256 order, not file order)::

    python -m tools.split   # rewrites tools/data/split.json
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from zse_infer.errors import ConfigError

from . import DATA
from .concepts import Concept, load_concepts

UNSEEN_FRACTION = 0.25
VALIDATION_FRACTION = 0.15
SALT = "zse-demo-split-v2"  # the split's identity: changing it reshuffles every concept
# Head words shared by unrelated things: they do not join concepts into one family.
GENERIC_HEADS = frozenset(
    {
        "face",
        "button",
        "arrow",
        "sign",
        "mark",
        "symbol",
        "hand",
        "hands",
        "person",
        "man",
        "woman",
        "people",
        "men",
        "women",
        "box",
        "circle",
        "square",
        "suit",
        "light",
        "up",
        "down",
        "left",
        "right",
    }
)


def _rank(*parts: str) -> str:
    return hashlib.sha256(":".join((SALT, *parts)).encode()).hexdigest()


def _head(name: str) -> str | None:
    last = name.split(" ")[-1]
    if last in GENERIC_HEADS or len(last) < 3:
        return None
    return last[:-1] if last.endswith("s") and not last.endswith("ss") else last


def families(concepts: list[Concept]) -> dict[str, str]:
    """{concept name: family name}: union of concepts sharing a head word (see module doc)."""
    parent = {c.name: c.name for c in concepts}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    by_head: dict[str, str] = {}
    for c in concepts:
        for name in (c.name, *c.aliases):
            head = _head(name)
            if head is None:
                continue
            if head in by_head:
                a, b = find(by_head[head]), find(c.name)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                by_head[head] = c.name
    return {c.name: find(c.name) for c in concepts}


def _validation(concept: Concept) -> list[str]:
    """The held-out drawing icons (``set:icon``) of one seen concept."""
    icons = sorted((f"{p}:{i}" for p, v in concept.drawings.items() for i in v), key=lambda k: _rank(concept.name, k))
    n = len(icons)
    k = max(1, round(VALIDATION_FRACTION * n)) if n >= 3 else 0  # keep two to train on
    return sorted(icons[:k])


def make_split(concepts: list[Concept], unseen_fraction: float = UNSEEN_FRACTION) -> dict[str, Any]:
    if not 0 < unseen_fraction < 1:
        raise ConfigError(f"unseen_fraction must be in (0, 1), got {unseen_fraction}")
    family = families(concepts)
    group_of = {c.name: c.group for c in concepts}
    members: dict[str, list[str]] = defaultdict(list)
    for name, fam in family.items():
        members[fam].append(name)
    # A family counts towards the group most of its members are in (ties: by group name, not input order).
    fam_group = {
        f: min(Counter(group_of[n] for n in ns).items(), key=lambda kv: (-kv[1], kv[0]))[0] for f, ns in members.items()
    }
    per_group = Counter(c.group for c in concepts)
    unseen: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for group in sorted(per_group):
        target = max(1, round(unseen_fraction * per_group[group]))
        taken = 0
        for fam in sorted((f for f, g in fam_group.items() if g == group), key=_rank):
            if taken >= target:
                break
            unseen += members[fam]
            taken += sum(group_of[n] == group for n in members[fam])
    unseen_set = set(unseen)
    seen = sorted(c.name for c in concepts if c.name not in unseen_set)
    for group in sorted(per_group):
        u = sum(1 for c in concepts if c.group == group and c.name in unseen_set)
        counts[group] = {"seen": per_group[group] - u, "unseen": u}
    by_name = {c.name: c for c in concepts}
    validation = {n: v for n in seen if (v := _validation(by_name[n]))}
    n_draw = lambda names: sum(by_name[n].n_drawings for n in names)  # noqa: E731
    n_val = sum(map(len, validation.values()))
    return {
        "salt": SALT,
        "unseen_fraction": unseen_fraction,
        "validation_fraction": VALIDATION_FRACTION,
        "rule": "families of concepts sharing a head word go to one side; per group, families in "
        "sha256(salt:family) order are unseen until round(fraction * n) concepts of the group are; "
        "validation: per seen concept with >= 3 drawing icons, round(fraction * n) (>= 1) icons in "
        "sha256(salt:concept:set:icon) order",
        "counts": counts,
        "totals": {
            "seen": len(seen),
            "unseen": len(unseen_set),
            "families": len(members),
            "seen_drawing_icons_train": n_draw(seen) - n_val,
            "seen_drawing_icons_validation": n_val,
            "unseen_drawing_icons": n_draw(unseen_set),
        },
        "seen": seen,
        "unseen": sorted(unseen_set),
        "validation": validation,
    }


def split_path() -> Path:
    return DATA / "split.json"


def load_split(path: str | Path | None = None) -> dict[str, Any]:
    """The fixed split; checks that seen and unseen are disjoint and validation is of seen concepts."""
    path = Path(path) if path is not None else split_path()
    try:
        split = json.loads(path.read_text())
        seen, unseen, validation = set(split["seen"]), set(split["unseen"]), split["validation"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise ConfigError(f"{path}: cannot read the demo split ({exc})") from exc
    if seen & unseen:
        raise ConfigError(f"{path}: concepts in both seen and unseen: {sorted(seen & unseen)[:10]}")
    if set(validation) - seen:
        raise ConfigError(
            f"{path}: validation drawings of concepts that are not seen: {sorted(set(validation) - seen)[:10]}"
        )
    return split


def main(argv: list[str] | None = None) -> int:
    split = make_split(load_concepts())
    split_path().write_text(json.dumps(split, indent=0) + "\n")
    print(json.dumps(split["totals"]))
    for group, c in split["counts"].items():
        print(f"  {group}: seen {c['seen']}, unseen {c['unseen']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
