"""Renders: the icons of a concept (``tools/data/concepts.json``) as images, and contact sheets.

Development time only. Every drawing and photo of a concept is one
:class:`Item`; stroke-drawn drawing sets are rendered at several stroke
widths (:data:`STROKE_SCALES`, a cheap and real augmentation: the sets draw
2 px strokes at 24 px, which look heavier than a pen sketch once scaled).

    python -m tools.render --sheets /tmp/sheets --sample 40

writes contact sheets of a random sample of concepts (photos, then drawings,
one row per concept) to check the name matches by eye.
"""

from __future__ import annotations

import argparse
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zse_infer.errors import require

from .concepts import Concept, load_concepts
from .fetch import DEFAULT_CACHE
from .iconify import ROLES, icon_svg, load_set

# Icons are rasterised at this size, then preprocessed to the model's input size.
RENDER_SIZE = 128
# Multiples of each stroke set's own stroke width (2 px at 24 px for most).
STROKE_SCALES = (0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Item:
    """One image of a concept: which set and icon, its role and variant."""

    concept: str
    prefix: str
    icon: str
    role: str  # "drawing" | "photo"
    variant: str  # "" or the stroke scale, e.g. "s0.5"

    def svg(self, cache: Path) -> str:
        scale = float(self.variant[1:]) if self.variant else 1.0
        return icon_svg(load_set(str(cache), self.prefix), self.icon, scale)


def rasterise(svg: str, size: int) -> bytes:
    """PNG bytes of ``svg`` rendered to ``size`` x ``size`` on white."""
    resvg = require("resvg_py", "demo-build", "rendering the demo data")
    png = resvg.svg_to_bytes(svg_string=svg, width=size, height=size, background="#ffffff")
    return bytes(png)


def has_stroke(cache: Path, prefix: str, icon: str) -> bool:
    """Whether the icon draws with a stroke width (alias resolved): only those get stroke variants."""
    data = load_set(str(cache), prefix)
    name = data.get("aliases", {}).get(icon, {}).get("parent", icon)
    return "stroke-width" in data["icons"].get(name, {}).get("body", "")


def items(concept: Concept, variants: bool = True, cache: Path | None = None) -> Iterator[Item]:
    """Photos first, then drawings (every stroke variant when ``variants``; given the ``cache``,
    only for icons that draw with a stroke width, the others would render the same)."""
    for role, groups in (("photo", concept.photos), ("drawing", concept.drawings)):
        for prefix, icons in sorted(groups.items()):
            stroke = ROLES[prefix].stroke and role == "drawing" and variants
            for icon in icons:
                vary = stroke and (cache is None or has_stroke(cache, prefix, icon))
                for v in STROKE_SCALES if vary else (None,):
                    yield Item(concept.name, prefix, icon, role, "" if v is None else f"s{v:g}")


def render(cache: Path, item: Item, size: int) -> np.ndarray:
    """The item as an (size, size, 3) uint8 image on white."""
    from PIL import Image

    png = rasterise(item.svg(cache), size)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def contact_sheets(
    cache: Path, concepts: list[Concept], out: Path, rows: int = 20, cell: int = 48, photos: int = 6, drawings: int = 14
) -> list[Path]:
    """PNG sheets: per concept its name, ``photos`` photos, a gap, ``drawings`` drawings (set tags in red)."""
    from PIL import Image, ImageDraw

    out.mkdir(parents=True, exist_ok=True)
    label_w, gap = 130, 12
    width = label_w + (photos + drawings) * cell + gap
    paths = []
    for start in range(0, len(concepts), rows):
        chunk = concepts[start : start + rows]
        sheet = Image.new("RGB", (width, len(chunk) * cell), "white")
        draw = ImageDraw.Draw(sheet)
        for row, concept in enumerate(chunk):
            y = row * cell
            draw.text((3, y + cell // 3), concept.name[:20], fill="black")
            every = list(items(concept, variants=False))
            shown = [i for i in every if i.role == "photo"][:photos]
            shown += [i for i in every if i.role == "drawing"][:drawings]
            for col, item in enumerate(shown):
                x = label_w + col * cell + (gap if item.role == "drawing" else 0)
                img = Image.fromarray(render(cache, item, cell - 4))
                sheet.paste(img, (x + 2, y + 2))
                draw.text((x + 1, y + cell - 11), item.prefix[:6], fill="red")
            draw.line((0, y, width, y), fill="#cccccc")
        path = out / f"sheet_{start // rows:02d}.png"
        sheet.save(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--sheets", type=Path, required=True, help="folder for the contact sheets")
    parser.add_argument("--sample", type=int, default=40, help="random concepts to show (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concepts", type=Path, default=None, help="default: tools/data/concepts.json")
    args = parser.parse_args(argv)
    concepts = load_concepts(args.concepts)
    if args.sample:
        concepts = random.Random(args.seed).sample(concepts, min(args.sample, len(concepts)))
    for path in contact_sheets(args.cache.expanduser(), concepts, args.sheets):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
