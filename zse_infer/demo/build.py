"""Render every drawing of every concept into a data folder (development time only).

    python -m zse_infer.demo.build --cache ~/.cache/zse-demo --out ~/.cache/zse-demo/renders

writes ``OUT/<source>/<slug>__<id>[__<variant>].png`` and ``OUT/index.json``
(one record per file: path, concept, source, modality, id, variant), the
input of training (:mod:`zse_infer.training.data`), evaluation and the
bundled assets. ``--sheets`` also writes contact sheets (one row per concept)
to check icon matches by eye.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .concepts import Concept, load_concepts
from .fetch import DEFAULT_CACHE, fetch
from .render import Drawing, drawings, rasterise

_log = logging.getLogger(__name__)

RENDER_SIZE = 128
INDEX = "index.json"


def record(drawing: Drawing) -> dict[str, Any]:
    return {
        "path": drawing.relpath,
        "concept": drawing.concept,
        "source": drawing.source,
        "modality": drawing.modality,
        "id": drawing.ident,
        "variant": drawing.variant,
    }


def build(cache: Path, out: Path, concepts: list[Concept], size: int = RENDER_SIZE) -> list[dict[str, Any]]:
    """Render all drawings (skipping files already rendered) and write the index."""
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for concept in tqdm(concepts, desc="rendering concepts", unit="concept"):
        for drawing in drawings(cache, concept):
            target = out / drawing.relpath
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(rasterise(drawing.svg, size))
            records.append(record(drawing))
    (out / INDEX).write_text(json.dumps(records, indent=0))
    return records


def read_index(folder: Path) -> list[dict[str, Any]]:
    from ..errors import InputError

    path = Path(folder) / INDEX
    if not path.is_file():
        raise InputError(f"{path}: no render index; run python -m zse_infer.demo.build first")
    return json.loads(path.read_text())


def contact_sheets(folder: Path, out: Path, per_sheet: int = 25, cell: int = 64, columns: int = 16) -> list[Path]:
    """PNG sheets, one row per concept (first ``columns`` drawings), the concept name on the left."""
    from PIL import Image, ImageDraw

    records = read_index(folder)
    by_concept: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        # One render per icon (the middle weight) keeps the row readable.
        if r["variant"] in ("", "w1p25", "light"):
            by_concept.setdefault(r["concept"], []).append(r)
    names = list(by_concept)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    label_w = 150
    for start in range(0, len(names), per_sheet):
        chunk = names[start : start + per_sheet]
        sheet = Image.new("RGB", (label_w + columns * cell, len(chunk) * cell), "white")
        draw = ImageDraw.Draw(sheet)
        for row, name in enumerate(chunk):
            draw.text((4, row * cell + cell // 3), name[:22], fill="black")
            for col, r in enumerate(by_concept[name][:columns]):
                img = Image.open(folder / r["path"]).convert("RGB").resize((cell - 4, cell - 4))
                sheet.paste(img, (label_w + col * cell + 2, row * cell + 2))
                tag = {"twemoji": "T", "noto": "N", "openmoji_color": "Oc", "tabler": "tb", "lucide": "lu",
                       "phosphor": "ph", "openmoji_black": "Ob"}[r["source"]]
                draw.text((label_w + col * cell + 2, row * cell + cell - 12), tag, fill="red")
            draw.line((0, row * cell, sheet.width, row * cell), fill="#cccccc")
        path = out / f"sheet_{start // per_sheet:02d}.png"
        sheet.save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="package cache (see zse_infer.demo.fetch)")
    parser.add_argument("--out", type=Path, default=None, help="render folder (default CACHE/renders)")
    parser.add_argument("--size", type=int, default=RENDER_SIZE)
    parser.add_argument("--sheets", type=Path, default=None, help="also write contact sheets here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = args.cache.expanduser()
    out = (args.out or cache / "renders").expanduser()
    fetch(cache)
    records = build(cache, out, load_concepts(), args.size)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["source"]] = counts.get(r["source"], 0) + 1
    print(f"{len(records)} renders in {out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if args.sheets:
        for path in contact_sheets(out, args.sheets):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
