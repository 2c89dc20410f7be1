"""Write the bundled demo assets (development time only; needs the package cache).

    python -m tools.bundle --checkpoint ~/.cache/zse-demo/v2run/zse_demo_head.safetensors

A seeded sample of the *unseen* concepts (``tools/data/split.json``: the bundled model never
trained on them), stratified by emoji group: per concept up to :data:`PHOTOS_PER_CONCEPT`
colour icons as the gallery (from distinct sets, colour emoji first) and up to
:data:`QUERIES_PER_CONCEPT` line icons as the queries (distinct sets, middle stroke width).
A query never comes from a set of the same artwork family as any bundled photo (no query
meets its own design in colour). Photos are stored as 64-colour palette PNGs and sketches
as greyscale, to keep the package small (at the input size the photo resize is the
identity, so the palette never meets PIL's nearest-neighbour resize of palette images).
The manifest (:mod:`zse_infer.demo.assets`) lists every file with its hash and icon set;
every set used is credited in ``ATTRIBUTION.md`` with its licence (MIT and ISC texts
written out with the set's author). Last, the shipped ONNX graphs of the new weights
(:mod:`tools.demo_graphs`, what ``zse-demo`` runs without torch).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from zse_infer.config import get_config
from zse_infer.demo.assets import FORMAT, MANIFEST, assets_dir, sha256_file
from zse_infer.errors import InputError

from .concepts import Concept, load_concepts
from .fetch import DEFAULT_CACHE
from .iconify import ICONIFY, family, load_set, set_record
from .quickdraw import FAMILY
from .render import Item, has_stroke, rasterise
from .split import families as split_families
from .split import load_split

CONCEPTS = 64
PHOTOS_PER_CONCEPT = 3
QUERIES_PER_CONCEPT = 2
QUERY_VARIANT_SCALE = 0.75  # the middle of render.STROKE_SCALES, for stroke-drawn sets
PALETTE_COLOURS = 64
CHECKPOINT_NAME = "zse_demo.safetensors"
# Photo sets in order of preference: colour emoji first (they draw the object, not an interface).
PHOTO_PREFERENCE = (
    "fluent-emoji-flat",
    "noto",
    "twemoji",
    "emojione",
    "streamline-emojis",
    "fluent-emoji",
    "flat-color-icons",
    "fluent-color",
)
# Licences whose full text must travel with copies of the work; the rest are credited by URL
# (CC-BY allows it) or need no notice (CC0, Unlicense).
TEMPLATES = {
    "MIT": (
        "MIT License\n\nCopyright (c) {author}\n\nPermission is hereby granted, free of charge, to any person "
        'obtaining a copy of this software and associated documentation files (the "Software"), to deal in the '
        "Software without restriction, including without limitation the rights to use, copy, modify, merge, "
        "publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the "
        "Software is furnished to do so, subject to the following conditions:\n\nThe above copyright notice and "
        "this permission notice shall be included in all copies or substantial portions of the Software.\n\n"
        'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT '
        "LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO "
        "EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER "
        "IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR "
        "THE USE OR OTHER DEALINGS IN THE SOFTWARE.\n"
    ),
    "ISC": (
        "ISC License\n\nCopyright (c) {author}\n\nPermission to use, copy, modify, and/or distribute this "
        "software for any purpose with or without fee is hereby granted, provided that the above copyright notice "
        'and this permission notice appear in all copies.\n\nTHE SOFTWARE IS PROVIDED "AS IS" AND THE AUTHOR '
        "DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY "
        "AND FITNESS. IN NO EVENT SHALL THE AUTHOR BE LIABLE FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL "
        "DAMAGES OR ANY DAMAGES WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF "
        "CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR "
        "PERFORMANCE OF THIS SOFTWARE.\n"
    ),
}
KEEP_LICENCE_FILES = ("Apache-2.0.txt",)  # plain texts kept in LICENSES/ (not generated)


def choose(concepts: list[Concept], unseen: set[str], n: int, seed: int) -> list[Concept]:
    """``n`` unseen concepts with at least 2 photos and a drawing, stratified by group (seeded),
    one per split family (the clock faces or the moon phases would crowd a small gallery with
    near-identical pictures under different names)."""
    family_of = split_families(concepts)
    usable, taken = [], set()
    for c in random.Random(seed).sample(concepts, len(concepts)):
        if c.name in unseen and sum(map(len, c.photos.values())) >= 2 and c.drawings and family_of[c.name] not in taken:
            taken.add(family_of[c.name])
            usable.append(c)
    if len(usable) < n:
        raise InputError(f"only {len(usable)} unseen concepts can be bundled, {n} were asked for")
    groups: dict[str, list[Concept]] = {}
    for c in usable:
        groups.setdefault(c.group, []).append(c)
    rng = random.Random(seed)
    chosen: list[Concept] = []
    # Largest remainder: each group gets its share of n.
    shares = {g: n * len(v) / len(usable) for g, v in groups.items()}
    counts = {g: int(s) for g, s in shares.items()}
    for g in sorted(shares, key=lambda g: counts[g] - shares[g])[: n - sum(counts.values())]:
        counts[g] += 1
    for g in sorted(groups):
        chosen += rng.sample(groups[g], counts[g])
    return sorted(chosen, key=lambda c: c.name)


def _photos(c: Concept) -> list[tuple[str, str]]:
    order = sorted(
        c.photos, key=lambda p: (PHOTO_PREFERENCE.index(p) if p in PHOTO_PREFERENCE else len(PHOTO_PREFERENCE), p)
    )
    picked, families = [], set()
    for prefix in order:  # one photo per family, preferred sets first
        if family(prefix) not in families:
            families.add(family(prefix))
            picked.append((prefix, sorted(c.photos[prefix])[0]))
    return picked[:PHOTOS_PER_CONCEPT]


def _queries(c: Concept, rng: random.Random, excluded_families: set[str]) -> list[tuple[str, str]]:
    options = sorted((p, sorted(icons)[0]) for p, icons in c.drawings.items() if family(p) not in excluded_families)
    rng.shuffle(options)
    return options[:QUERIES_PER_CONCEPT]


def checkpoint_metadata(path: Path) -> dict[str, Any]:
    """The training settings a checkpoint carries (:func:`tools.train.save_checkpoint` writes them)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: json.loads(v) for k, v in (f.metadata() or {}).items()}


def _png(svg: str, size: int, modality: str) -> bytes:
    """The render as PNG bytes: a 64-colour palette for photos, greyscale for sketches."""
    image = Image.open(io.BytesIO(rasterise(svg, size))).convert("RGB")
    image = (
        image.quantize(PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT) if modality == "photo" else image.convert("L")
    )
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _entry(
    cache: Path, folder: str, concept: str, prefix: str, icon: str, modality: str, size: int, out: Path
) -> dict[str, Any]:
    stroke = modality == "sketch" and has_stroke(cache, prefix, icon)
    variant = f"s{QUERY_VARIANT_SCALE:g}" if stroke else ""
    item = Item(concept, prefix, icon, "drawing" if modality == "sketch" else "photo", variant)
    name = f"{prefix}__{icon}.png"
    (out / folder).mkdir(parents=True, exist_ok=True)
    (out / folder / name).write_bytes(_png(item.svg(cache), size, modality))
    return {
        "file": f"{folder}/{name}",
        "label": concept,
        "source": prefix,
        "package": ICONIFY.spec,
        "licence": set_record(load_set(str(cache), prefix))["licence"],
        "id": icon,
        "variant": variant,
        "sha256": sha256_file(out / folder / name),
    }


def _licence_record(cache: Path, prefix: str) -> dict[str, str]:
    data = load_set(str(cache), prefix)
    rec = set_record(data)
    url = data.get("info", {}).get("license", {}).get("url")  # the set's own (set_record falls back to SPDX's)
    attribution = (
        f"{rec['name']} by {rec['author'] or 'its authors'}{' (' + rec['url'] + ')' if rec['url'] else ''}, "
        f"{rec['licence']}{', ' + url if url else ''}; via {ICONIFY.spec}"
    )
    return {
        "package": ICONIFY.spec,
        "licence": rec["licence"],
        "attribution": attribution,
        "author": rec["author"],
        "name": rec["name"],
    }


def attribution_md(licences: dict[str, dict[str, str]], model: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| `{k}` | {v['name']} | {v['licence']} | {v['attribution']} |" for k, v in sorted(licences.items())
    )
    return f"""# Demo assets: sources, licences, attribution

The files in this folder are the bundled demo of zse-infer: a small ZSE-SBIR
model trained by this project (`{model["file"]}`), a gallery of colour icons
and emoji ("photos") and a set of line icons ("sketches") of concepts the model
never saw in training (the unseen half of the split, `tools/data/split.json` in the repository).
`manifest.json` lists every file with its label, icon set, licence and SHA-256.

All images were rendered by this project from the SVG icons of the npm package
`{ICONIFY.spec}` (one JSON file per icon set, each with its own licence), then
stored as small PNGs (photos reduced to a 64-colour palette, sketches to
greyscale; stroke-drawn icons at 0.75 of their stroke width). Rendering,
resizing and recolouring are modifications in the sense of the licences below.
MIT and ISC licence texts, with each set's copyright holder, are in `LICENSES/`;
Apache-2.0 in `LICENSES/Apache-2.0.txt`; Creative Commons licences by the URL given.

| set | name | licence | attribution |
| --- | --- | --- | --- |
{rows}

## The model weights

`{model["file"]}` was trained by this project from scratch on the *seen*
concepts of the same package's licence-cleared icon sets (only sets whose licence
allows redistributing a derivative without conditions on it beyond credit: the
rule and every set used, with its licence and author, are in the repository's
`tools/data/icon_sets.json` and `tools/README.md`). The weights are
released under the MIT licence of this project, with credit to those sets.
{_freehand_credit(model)}"""


def _freehand_credit(model: dict[str, Any]) -> str:
    """The paragraph crediting Quick, Draw! when the weights were trained on its drawings."""
    if not model.get("freehand"):
        return ""
    return f"""
Freehand drawings: {model["freehand"]} They come from Google's *Quick, Draw!* dataset
(https://github.com/googlecreativelab/quickdraw-dataset): "This data made available by
Google, Inc. under the Creative Commons Attribution 4.0 International license"
(https://creativecommons.org/licenses/by/4.0/). No drawing of it is shipped here.
"""


def write_bundle(
    cache: Path, checkpoint: Path, out: Path, config_name: str = "zse_demo", n: int = CONCEPTS, seed: int = 0
) -> dict[str, Any]:
    size = get_config(config_name).encoder.image_size
    concepts = choose(load_concepts(), set(load_split()["unseen"]), n, seed)
    for sub in ("gallery", "queries"):
        shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    photos = {c.name: _photos(c) for c in concepts}
    photo_families = {family(p) for picks in photos.values() for p, _ in picks}
    rng = random.Random(seed)
    gallery, queries = [], []
    for c in tqdm(concepts, desc="bundling", unit="concept"):
        gallery += [_entry(cache, "gallery", c.name, p, i, "photo", size, out) for p, i in photos[c.name]]
        queries += [
            _entry(cache, "queries", c.name, p, i, "sketch", size, out) for p, i in _queries(c, rng, photo_families)
        ]
    used = sorted({r["source"] for r in gallery + queries})
    licences = {p: _licence_record(cache, p) for p in used}
    lic_dir = out / "LICENSES"
    for old in lic_dir.glob("*") if lic_dir.is_dir() else ():
        if old.name not in KEEP_LICENCE_FILES:
            old.unlink()
    lic_dir.mkdir(exist_ok=True)
    for prefix, rec in licences.items():
        if rec["licence"] in TEMPLATES:
            text = TEMPLATES[rec["licence"]].format(author=rec["author"] or rec["name"])
            (lic_dir / f"{prefix}-{rec['licence']}.txt").write_text(
                f"{rec['name']} ({prefix}, {ICONIFY.spec})\n\n{text}"
            )
    target = out / CHECKPOINT_NAME
    if checkpoint.resolve() != target.resolve():
        shutil.copyfile(checkpoint, target)
    model = {
        "file": CHECKPOINT_NAME,
        "sha256": sha256_file(target),
        "bytes": target.stat().st_size,
        "trained_on": "seen concepts of tools/data/split.json (licence-cleared @iconify/json sets)",
        "licence": "weights: MIT (this project); training data attributions in ATTRIBUTION.md",
    }
    if FAMILY in checkpoint_metadata(target).get("sketch_sources", ()):
        model["trained_on"] += " and Quick, Draw! drawings of seen concepts (CC BY 4.0)"
        model["freehand"] = (
            "besides the icons, the weights were trained on people's freehand drawings of "
            "seen concepts (the categories tools/quickdraw.py maps onto them)."
        )
    manifest = {
        "format": FORMAT,
        "config": config_name,
        "split": "unseen concepts of tools/data/split.json",
        "image_size": size,
        "model": model,
        "gallery": gallery,
        "queries": queries,
        "licences": licences,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    (out / "ATTRIBUTION.md").write_text(attribution_md(licences, model))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--checkpoint", type=Path, required=True, help="trained .safetensors to bundle")
    parser.add_argument("--out", type=Path, default=None, help="default: the package's assets/demo folder")
    parser.add_argument("--concepts", type=int, default=CONCEPTS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = args.out or assets_dir()
    manifest = write_bundle(args.cache.expanduser(), args.checkpoint.expanduser(), out, n=args.concepts, seed=args.seed)
    # The shipped ONNX graphs (zse-demo without torch) must be the new weights' (a test checks the hash).
    from .demo_graphs import write_shipped_graphs

    write_shipped_graphs(out)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"{len(manifest['gallery'])} gallery photos, {len(manifest['queries'])} queries, {total / 1e6:.2f} MB in {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
