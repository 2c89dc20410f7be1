"""The seen/unseen split of the demo concepts, fixed in ``split.json``.

Zero-shot retrieval is tested on classes the model never saw. The split is
by concept, stratified by OpenMoji group (``cat``) so every group is in both
halves in the same proportion, and deterministic: within a group concepts
are ordered by a salted SHA-256 of their name, so the split does not depend
on file order and adding a concept elsewhere moves no other concept.
Concepts without any non-OpenMoji line icon cannot be trained on (OpenMoji
is evaluation-only), so they are placed in the unseen half first.

    python -m zse_infer.demo.split   # rewrites zse_infer/demo/split.json
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .concepts import Concept, load_concepts

UNSEEN_FRACTION = 0.25
SALT = "zse-demo-split-v1"


def _rank(name: str) -> str:
    return hashlib.sha256(f"{SALT}:{name}".encode()).hexdigest()


def make_split(concepts: list[Concept], unseen_fraction: float = UNSEEN_FRACTION) -> dict[str, Any]:
    """{"seen": [...], "unseen": [...], "counts": {group: {"seen", "unseen"}}, ...}, names sorted."""
    if not 0 < unseen_fraction < 1:
        raise ConfigError(f"unseen_fraction must be in (0, 1), got {unseen_fraction}")
    groups: dict[str, list[Concept]] = {}
    for c in concepts:
        groups.setdefault(c.cat, []).append(c)
    seen: list[str] = []
    unseen: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for cat in sorted(groups):
        members = groups[cat]
        k = max(1, round(unseen_fraction * len(members)))
        # Icon-less concepts first (not trainable), then by salted hash.
        ordered = sorted(members, key=lambda c: (c.n_icons > 0, _rank(c.name)))
        unseen += [c.name for c in ordered[:k]]
        seen += [c.name for c in ordered[k:]]
        counts[cat] = {"seen": len(members) - k, "unseen": k}
    return {
        "salt": SALT,
        "unseen_fraction": unseen_fraction,
        "rule": "per OpenMoji group: round(fraction * n) unseen; icon-less concepts first, then by sha256(salt:name)",
        "counts": counts,
        "seen": sorted(seen),
        "unseen": sorted(unseen),
    }


def split_path() -> Path:
    return Path(str(resources.files("zse_infer.demo").joinpath("split.json")))


def load_split(path: "str | Path | None" = None) -> dict[str, Any]:
    """The fixed split; checks that seen and unseen are disjoint."""
    path = Path(path) if path is not None else split_path()
    try:
        split = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the demo split ({exc})") from exc
    both = set(split["seen"]) & set(split["unseen"])
    if both:
        raise ConfigError(f"{path}: concepts in both seen and unseen: {sorted(both)}")
    return split


def main(argv: list[str] | None = None) -> int:
    concepts = load_concepts()
    split = make_split(concepts)
    split_path().write_text(json.dumps(split, indent=1) + "\n")
    print(f"seen {len(split['seen'])}, unseen {len(split['unseen'])}")
    for cat, c in split["counts"].items():
        print(f"  {cat}: seen {c['seen']}, unseen {c['unseen']}")
    icon_less = Counter(c.name in split["unseen"] for c in concepts if c.n_icons == 0)
    print(f"icon-less concepts (OpenMoji sketches only) in unseen: {icon_less[True]}, in seen: {icon_less[False]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
