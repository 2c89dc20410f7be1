"""Write the bundled demo assets (development time only; needs the package cache).

    python -m zse_infer.demo.bundle --checkpoint ~/.cache/zse-demo/run1/zse_demo.safetensors

renders the unseen concepts straight from the SVGs at the model's input size
into ``zse_infer/assets/demo/``: the gallery from Twemoji and Noto (one photo
per code point), the queries from Tabler, Lucide and Phosphor (one per icon,
middle stroke weight), plus OpenMoji black line art for the concepts that
have no other drawing (the gallery holds no OpenMoji colour, so no query
meets its own drawing). Photos are stored as 64-colour palette PNGs and
sketches as greyscale, to keep the package small; at the input size the
photo resize is the identity, so the palette does not meet PIL's
nearest-neighbour resize of palette images.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from ..config import get_config
from .assets import FORMAT, MANIFEST, assets_dir, sha256_file
from .concepts import load_concepts
from .fetch import DEFAULT_CACHE, fetch, package_dir
from .render import drawings, rasterise
from .sources import SOURCES
from .split import load_split

GALLERY_SOURCES = ("twemoji", "noto")
QUERY_SOURCES = ("tabler", "lucide", "phosphor")
QUERY_VARIANTS = ("w1p25", "light")
FALLBACK_QUERY_SOURCE = "openmoji_black"
PALETTE_COLOURS = 64
CHECKPOINT_NAME = "zse_demo.safetensors"
# Licence texts shipped with the bundled files: (source key, file in the npm package, name in LICENSES/).
# The Apache-2.0 text (Noto) is not in @svgmoji/noto and is kept in LICENSES/ as a plain file;
# the CC-BY 4.0 licence (Twemoji) is referenced by URL, as the licence allows.
LICENCE_FILES = (
    ("tabler", "LICENSE", "tabler-icons-MIT.txt"),
    ("lucide", "LICENSE", "lucide-ISC.txt"),
    ("phosphor", "LICENSE", "phosphor-icons-MIT.txt"),
    ("openmoji_black", "LICENSE.txt", "openmoji-CC-BY-SA-4.0.txt"),
)


def _png(svg: str, size: int, modality: str) -> bytes:
    image = Image.open(io.BytesIO(rasterise(svg, size))).convert("RGB")
    image = image.quantize(PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT) if modality == "photo" else image.convert("L")
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _entry(folder: str, drawing, data: bytes, out: Path) -> dict[str, Any]:
    name = f"{drawing.source}__{drawing.file_name}"
    (out / folder).mkdir(parents=True, exist_ok=True)
    (out / folder / name).write_bytes(data)
    src = SOURCES[drawing.source]
    return {
        "file": f"{folder}/{name}",
        "label": drawing.concept,
        "source": drawing.source,
        "package": src.spec,
        "licence": src.licence,
        "id": drawing.ident,
        "variant": drawing.variant,
        "sha256": sha256_file(out / folder / name),
    }


def write_bundle(cache: Path, checkpoint: Path, out: Path, config_name: str = "zse_demo") -> dict[str, Any]:
    size = get_config(config_name).encoder.image_size
    for sub in ("gallery", "queries"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    unseen = set(load_split()["unseen"])
    gallery, queries = [], []
    for concept in tqdm([c for c in load_concepts() if c.name in unseen], desc="bundling", unit="concept"):
        for d in drawings(cache, concept, GALLERY_SOURCES):
            gallery.append(_entry("gallery", d, _png(d.svg, size, "photo"), out))
        mine = [d for d in drawings(cache, concept, QUERY_SOURCES) if d.variant in QUERY_VARIANTS]
        if not mine:
            mine = list(drawings(cache, concept, (FALLBACK_QUERY_SOURCE,)))
        for d in mine:
            queries.append(_entry("queries", d, _png(d.svg, size, "sketch"), out))
    for key, name, dest in LICENCE_FILES:
        (out / "LICENSES").mkdir(exist_ok=True)
        shutil.copyfile(package_dir(cache, SOURCES[key]) / name, out / "LICENSES" / dest)
    target = out / CHECKPOINT_NAME
    if checkpoint.resolve() != target.resolve():
        shutil.copyfile(checkpoint, target)
    used = sorted({r["source"] for r in gallery + queries})
    manifest = {
        "format": FORMAT,
        "config": config_name,
        "split": "unseen concepts of zse_infer/demo/split.json",
        "image_size": size,
        "model": {
            "file": CHECKPOINT_NAME,
            "sha256": sha256_file(target),
            "bytes": target.stat().st_size,
            "trained_on": "seen concepts; sketches from tabler/lucide/phosphor, photos from twemoji/noto (no OpenMoji)",
            "licence": "weights: MIT (this project); training data attributions in ATTRIBUTION.md",
        },
        "gallery": gallery,
        "queries": queries,
        "licences": {
            k: {"package": SOURCES[k].spec, "licence": SOURCES[k].licence, "attribution": SOURCES[k].attribution}
            for k in used
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--checkpoint", type=Path, required=True, help="trained .safetensors to bundle")
    parser.add_argument("--out", type=Path, default=None, help="default: the package's assets/demo folder")
    args = parser.parse_args(argv)
    cache = args.cache.expanduser()
    fetch(cache)
    out = args.out or assets_dir()
    manifest = write_bundle(cache, args.checkpoint.expanduser(), out)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(manifest['gallery'])} gallery photos, {len(manifest['queries'])} queries, {total / 1e6:.2f} MB in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
