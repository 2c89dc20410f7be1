"""Quick, Draw! drawings on the demo concepts: which category is which concept, and on which side.

Google's *Quick, Draw!* drawings (CC BY 4.0) sit in the shared folder beside the checkout
(``../shared/quickdraw/drawings.ndjson.gz``, read at development and test time, never copied
into the repository). A category maps onto a concept of ``data/concepts.json``

* by hand where the names differ (``data/quickdraw_names.json`` "same_as": ``cell phone`` is
  ``mobile phone``; also where a name matches several concepts), else
* by name: the category (lower case, '-' as a space) equals the concept's name, a member
  emoji's name or a short name, also in its simple singular/plural forms (``drums`` ->
  ``drum``), and it matches one concept only;
* never where the hand table says the match means something else ("not_the_same").

Its drawings then follow the concept's side of the split: a *seen* concept's drawings may
train (about :data:`VALIDATION_FRACTION` of each category held out, to choose on), an *unseen*
concept's only evaluate. A category whose name or concept is reserved (the hashes of
``../shared/demo-data/reserved.json``, checked with :class:`tools.reserved.Reserved`: the
name, its word runs and plural forms, and the near-synonyms) is left out whatever it maps to;
so is every category that maps to nothing. ``reserved.ndjson.gz`` is never read::

    python -m tools.quickdraw          # the mapping and its counts
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from zse_infer.config import ModelConfig
from zse_infer.errors import ConfigError, InputError
from zse_infer.strokes import strokes_to_rgb

from . import DATA, SHARED
from .concepts import Concept, load_concepts
from .pack import SPLIT_CODES, RenderSet
from .reserved import Reserved, load_reserved, word_forms
from .split import load_split

_log = logging.getLogger(__name__)

QUICKDRAW = SHARED / "quickdraw"
DRAWINGS = QUICKDRAW / "drawings.ndjson.gz"
NAMES = DATA / "quickdraw_names.json"
FAMILY = "quickdraw"  # the artwork family of every drawing: no photo shares it
VALIDATION_FRACTION = 0.15
SALT = "zse-demo-quickdraw-v1"
SIDES = tuple(SPLIT_CODES)  # seen (train), validation (held out of seen), unseen (test)


@dataclass(frozen=True)
class Drawing:
    """One Quick, Draw! drawing: its category, id, source and strokes ``[[xs], [ys]]``."""

    category: str
    key_id: str
    source: str
    strokes: list[list[list[float]]]
    recognized: bool


def load_drawings(path: str | Path = DRAWINGS) -> list[Drawing]:
    """Every distinct drawing of ``path`` (ndjson, gzip), in file order. Refuses the reserved file by name.

    The shared file holds 7,412 drawings twice: Google's simplified version and the raw one, under the
    same category and ``key_id``. Each is kept once, as drawn (the raw points: what the sketch pad records),
    so no drawing is counted, sampled or evaluated twice."""
    path = Path(path)
    if path.name.startswith("reserved"):
        raise InputError(f"{path}: the reserved drawings are kept for an independent evaluation; never read them")
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        drawings = [
            Drawing(r["category"], str(r["key_id"]), r["source"], r["drawing"], bool(r.get("recognized", True)))
            for r in rows
        ]
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no Quick, Draw! drawings (expected the shared folder beside the checkout)") from exc
    except (OSError, EOFError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: cannot read the Quick, Draw! drawings ({exc})") from exc
    chosen: dict[tuple[str, str], Drawing] = {}
    for d in drawings:
        kept = chosen.setdefault((d.category, d.key_id), d)
        if _simplified(kept) and not _simplified(d):
            chosen[(d.category, d.key_id)] = d
    return [d for d in drawings if chosen[(d.category, d.key_id)] is d]


def _simplified(drawing: Drawing) -> bool:
    return "simplified" in drawing.source


def load_names(path: str | Path = NAMES) -> dict[str, dict[str, str]]:
    """The hand-written table: {"same_as": {category: concept}, "not_the_same": {category: why}}."""
    try:
        raw = json.loads(Path(path).read_text())
        table = {"same_as": dict(raw["same_as"]), "not_the_same": dict(raw["not_the_same"])}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read the Quick, Draw! name table ({exc})") from exc
    both = set(table["same_as"]) & set(table["not_the_same"])
    if both:
        raise ConfigError(f"{path}: categories both mapped and rejected: {sorted(both)}")
    return table


def _forms(name: str) -> set[str]:
    """The name and its simple singular/plural forms (of the last word)."""
    words = name.split(" ")
    return {" ".join([*words[:-1], f]) for f in word_forms(words[-1])}


def _name_index(concepts: list[Concept]) -> dict[str, set[str]]:
    index: dict[str, set[str]] = {}
    for c in concepts:
        for name in (c.name, *c.members, *c.aliases):
            for form in _forms(name.replace("-", " ")):
                index.setdefault(form, set()).add(c.name)
    return index


def map_categories(
    categories: list[str],
    concepts: list[Concept],
    split: dict[str, Any],
    reserved: Reserved,
    names: dict[str, dict[str, str]],
) -> dict[str, dict[str, str]]:
    """{category: {"concept", "side" ("seen" | "unseen"), "how" ("name" | "hand")} or
    {"excluded": why}} for every category."""
    by_name = {c.name: c for c in concepts}
    unknown = {k: v for k, v in names["same_as"].items() if v not in by_name}
    if unknown:
        raise ConfigError(f"{NAMES}: same_as names concepts that are not in the table: {unknown}")
    index = _name_index(concepts)
    seen, unseen = set(split["seen"]), set(split["unseen"])
    out: dict[str, dict[str, str]] = {}
    for category in sorted(categories):
        reason = reserved.name_reason(category)
        if reason:  # before any mapping: a reserved category is never used, whatever it would map to
            out[category] = {"excluded": f"reserved ({reason})"}
            continue
        key = category.lower().replace("-", " ").replace("_", " ")
        if category in names["not_the_same"]:
            out[category] = {"excluded": "not the same thing: " + names["not_the_same"][category]}
            continue
        if category in names["same_as"]:
            concept, how = names["same_as"][category], "hand"
        else:
            hits = set().union(*(index.get(f, set()) for f in _forms(key)))
            if len(hits) != 1:
                out[category] = {
                    "excluded": "matches no concept" if not hits else f"matches several concepts: {sorted(hits)}"
                }
                continue
            concept, how = hits.pop(), "name"
        if reserved.name_reason(concept):
            out[category] = {"excluded": f"its concept {concept!r} is reserved"}
            continue
        side = "seen" if concept in seen else "unseen" if concept in unseen else None
        if side is None:
            raise ConfigError(f"concept {concept!r} (for {category!r}) is in neither side of the split")
        out[category] = {"concept": concept, "side": side, "how": how}
    return out


@lru_cache(maxsize=1)
def mapping() -> dict[str, dict[str, str]]:
    """The mapping of the shared drawings' categories (needs the shared folder's reserved list)."""
    categories = sorted({d.category for d in load_drawings()})
    return map_categories(categories, load_concepts(), load_split(), load_reserved(), load_names())


def side_of(drawing: Drawing, entry: dict[str, str]) -> str | None:
    """ "seen" (train), "validation" (held out of a seen category) or "unseen" (test); None: not used."""
    if "concept" not in entry:
        return None
    if entry["side"] == "unseen":
        return "unseen"
    rank = int(hashlib.sha256(f"{SALT}:{drawing.category}:{drawing.key_id}".encode()).hexdigest()[:8], 16)
    return "validation" if rank % 10_000 < VALIDATION_FRACTION * 10_000 else "seen"


def labelled(drawings: list[Drawing], table: dict[str, dict[str, str]]) -> list[tuple[Drawing, str, str]]:
    """(drawing, concept, side) for every drawing the mapping uses, in file order."""
    out = []
    for d in drawings:
        entry = table.get(d.category)
        if entry is None:
            raise InputError(f"category {d.category!r} of drawing {d.key_id} is not in the mapping")
        side = side_of(d, entry)
        if side is not None:
            out.append((d, entry["concept"], side))
    return out


def freehand_set(
    config: ModelConfig, table: dict[str, dict[str, str]] | None = None, drawings: list[Drawing] | None = None
) -> tuple[RenderSet, np.ndarray, list[Any]]:
    """Every drawing the mapping uses, drawn as on the pad (:func:`zse_infer.strokes.strokes_to_rgb`)
    at ``config``'s input size: (renders, split codes as :data:`tools.pack.SPLIT_CODES`, strokes).
    Source and family ``quickdraw``; ``ident`` the drawing's key id."""
    table = mapping() if table is None else table
    used = labelled(load_drawings() if drawings is None else drawings, table)
    if not used:
        raise InputError("no Quick, Draw! drawing maps onto a concept")
    pre = config.preprocess["sketch"]
    images = np.stack(
        [strokes_to_rgb(d.strokes, pre) for d, _, _ in tqdm(used, desc="drawing strokes", unit="drawing")]
    )
    n = len(used)
    renders = RenderSet(
        images=images,
        concept=np.array([c for _, c, _ in used]),
        source=np.full(n, FAMILY),
        modality=np.full(n, "sketch"),
        variant=np.full(n, ""),
        ident=np.array([d.key_id for d, _, _ in used]),
        path=np.array([f"{FAMILY}/{d.category}/{d.key_id}" for d, _, _ in used]),
    )
    codes = np.array([SPLIT_CODES[side] for _, _, side in used], dtype=np.uint8)
    return renders, codes, [d.strokes for d, _, _ in used]


def counts(drawings: list[Drawing], table: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Categories and drawings per side, and why categories were left out."""
    used = labelled(drawings, table)
    excluded = Counter(v["excluded"].split(":")[0].split(" (")[0] for v in table.values() if "excluded" in v)
    mapped = [v for v in table.values() if "concept" in v]
    return {
        "categories": len(table),
        "mapped": {s: sum(v["side"] == s for v in mapped) for s in ("seen", "unseen")},
        "mapped_by": dict(Counter(v["how"] for v in mapped)),
        "concepts": {s: len({v["concept"] for v in mapped if v["side"] == s}) for s in ("seen", "unseen")},
        "excluded": dict(excluded),
        "drawings": {s: sum(side == s for _, _, side in used) for s in SIDES},
        "drawings_total": len(drawings),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="also print every category's mapping")
    args = parser.parse_args(argv)
    table = mapping()
    if args.list:
        for category, entry in table.items():
            print(f"{category}: {entry}")
    print(json.dumps(counts(load_drawings(), table), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
