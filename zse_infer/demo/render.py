"""SVG drawings of the pinned packages -> PNG renders (development time only).

Photos are colour emoji (Twemoji, Noto, OpenMoji colour), one per code point.
Sketches are line icons (Tabler, Lucide, Phosphor) and OpenMoji's black line
art. Icons come in several stroke weights: the packages draw 2 px strokes at
24 px, which look heavy once scaled to the model's input; 1 to 1.5 px looks
like a pen sketch, and the spread is a cheap, real augmentation.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError, require
from .concepts import Concept
from .fetch import package_dir
from .sources import ICON_SETS, SOURCES

SVG_NS = "http://www.w3.org/2000/svg"
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")

# Stroke widths (in the icons' 24 px units) rendered for Tabler and Lucide.
STROKE_WIDTHS = (1.0, 1.25, 1.5)
# Phosphor draws strokes as filled outlines, so weight replaces stroke width.
# bold/fill/duotone are blobs rather than line drawings and are left out.
PHOSPHOR_WEIGHTS = ("thin", "light", "regular")


@dataclass(frozen=True)
class Drawing:
    """One SVG to render: which concept, from which source, which member/icon and variant."""

    concept: str  # concept name
    slug: str
    source: str  # key of zse_infer.demo.sources.SOURCES
    ident: str  # emoji code point or icon name
    variant: str  # "" for emoji; stroke width or phosphor weight for icons
    svg: str

    @property
    def modality(self) -> str:
        return SOURCES[self.source].modality

    @property
    def file_name(self) -> str:
        parts = [self.slug, self.ident.lower()] + ([self.variant] if self.variant else [])
        return "__".join(parts) + ".png"

    @property
    def relpath(self) -> str:
        return f"{self.source}/{self.file_name}"


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _code_point_names(hex_: str) -> list[str]:
    """Spellings a code point may be filed under: as given, and with/without FE0F selectors."""
    plain = "-".join(p for p in hex_.split("-") if p != "FE0F")
    return list(dict.fromkeys([hex_, plain, plain + "-FE0F"]))


@lru_cache(maxsize=2)
def _noto_sprite(path: str) -> dict[str, str]:
    """Noto ships one sprite of nested ``<svg id="1F431">`` elements: split it once."""
    root = ET.parse(path).getroot()
    return {child.get("id", ""): ET.tostring(child, encoding="unicode") for child in root if child.tag == f"{{{SVG_NS}}}svg"}


def emoji_svg(cache: Path, source: str, hex_: str) -> str | None:
    """The SVG of one emoji code point from a photo source, or None if the package lacks it."""
    root = package_dir(cache, SOURCES[source])
    for name in _code_point_names(hex_):
        if source == "twemoji":
            text = _read(root / f"{name.lower()}.svg")
        elif source == "noto":
            text = _noto_sprite(str(root / "sprites" / "all.svg")).get(name)
        elif source in ("openmoji_color", "openmoji_black"):
            text = _read(root / ("color" if source == "openmoji_color" else "black") / "svg" / f"{name}.svg")
        else:
            raise InputError(f"source {source!r} is not an emoji source")
        if text is not None:
            return text
    return None


def _set_stroke(svg: str, width: float) -> str:
    # Tabler and Lucide set one stroke-width on the root element.
    out, n = re.subn(r'stroke-width="[0-9.]+"', f'stroke-width="{width:g}"', svg, count=1)
    if n != 1:
        raise InputError("icon SVG has no root stroke-width attribute to vary")
    return out


def icon_svgs(cache: Path, source: str, name: str) -> list[tuple[str, str]]:
    """(variant, svg) pairs for one icon; empty if the package lacks it."""
    root = package_dir(cache, SOURCES[source])
    if source == "phosphor":
        out = []
        for weight in PHOSPHOR_WEIGHTS:
            file = root / "assets" / weight / (f"{name}.svg" if weight == "regular" else f"{name}-{weight}.svg")
            text = _read(file)
            if text is not None:
                out.append((weight, text))
        return out
    file = root / ("icons/outline" if source == "tabler" else "icons") / f"{name}.svg"
    text = _read(file)
    if text is None:
        return []
    return [(f"w{w:g}".replace(".", "p"), _set_stroke(text, w)) for w in STROKE_WIDTHS]


def drawings(cache: Path, concept: Concept, sources: tuple[str, ...] = tuple(SOURCES)) -> Iterator[Drawing]:
    """Every drawing of ``concept`` the pinned packages hold, for the requested sources."""
    for source in sources:
        if source in ICON_SETS:
            for name in concept.icons.get(source, ()):
                for variant, svg in icon_svgs(cache, source, name):
                    yield Drawing(concept.name, concept.slug, source, name, variant, svg)
            continue
        for hex_ in concept.hex:
            svg = emoji_svg(cache, source, hex_)
            if svg is not None:
                yield Drawing(concept.name, concept.slug, source, hex_, "", svg)


def rasterise(svg: str, size: int) -> bytes:
    """PNG bytes of ``svg`` rendered to ``size`` x ``size`` on white."""
    resvg = require("resvg_py", "demo-build", "rendering the demo data")
    png = resvg.svg_to_bytes(svg_string=svg, width=size, height=size, background="#ffffff")
    return bytes(png)


def rasterise_rgb(svg: str, size: int) -> np.ndarray:
    """The render as an HxWx3 uint8 array (for contact sheets and caches)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(rasterise(svg, size))).convert("RGB"))
