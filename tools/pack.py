"""The training data as one compressed array file (development time only).

Renders every drawing and photo of the concept table, preprocesses it
exactly as inference does (:mod:`zse_infer.preprocess`: crop-to-ink for
drawings, square resize for photos) at the model's input size, and writes one
``.npz`` (uint8 images plus one record per image) that a training run can
carry to another machine as one file::

    nice -n 19 python -m tools.pack --out ~/.cache/zse-demo/v2_112.npz
    nice -n 19 python -m tools.pack --sample 40 --out /tmp/sample_112.npz   # a quick check

Arrays in the file: ``drawings`` (Nd, S, S) uint8 grey (drawings are black on
white: one channel keeps the file small enough to carry) and ``photos``
(Np, S, S, 3) uint8; records over N = Nd + Np images, drawings first:
``concept`` (N,) index into
``concept_names``; ``role`` (N,) 0 drawing / 1 photo; ``split`` (N,) 0 seen
(train), 1 seen validation (held-out drawings), 2 unseen (test); ``source``,
``family``, ``ident``, ``variant`` (N,) strings; ``concept_names``,
``concept_groups`` (C,) strings. ``family`` names the artwork family: a
drawing and a photo of one family (``fluent-emoji-high-contrast`` and
``fluent-emoji-flat``) share the design, so evaluation keeps them apart.
:func:`load_pack` reads it back as the trainer's :class:`RenderSet`.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from zse_infer.config import get_config
from zse_infer.errors import ImageError, InputError
from zse_infer.preprocess import photo_to_rgb, sketch_to_rgb

from .concepts import Concept, load_concepts
from .fetch import DEFAULT_CACHE
from .iconify import family
from .render import RENDER_SIZE, Item, items, rasterise
from .split import load_split

_log = logging.getLogger(__name__)

ROLE_CODES = {"drawing": 0, "photo": 1}
SPLIT_CODES = {"seen": 0, "validation": 1, "unseen": 2}
MODALITY = {"drawing": "sketch", "photo": "photo"}


@dataclass
class RenderSet:
    """Preprocessed images (N, S, S, 3) uint8 and one record per image: what training and
    evaluation read (:func:`load_pack`)."""

    images: np.ndarray
    concept: np.ndarray  # (N,) concept name
    source: np.ndarray  # (N,) icon set (or drawing source)
    modality: np.ndarray  # (N,) "sketch" | "photo"
    variant: np.ndarray  # (N,) stroke variant, "" for none
    ident: np.ndarray  # (N,) icon name (or drawing id)
    path: np.ndarray  # (N,) "source/ident"

    def select(self, mask: np.ndarray) -> RenderSet:
        return RenderSet(**{k: getattr(self, k)[mask] for k in self.__dataclass_fields__})

    def concat(self, other: RenderSet) -> RenderSet:
        """This set's rows, then ``other``'s."""
        return RenderSet(
            **{k: np.concatenate([getattr(self, k), getattr(other, k)]) for k in self.__dataclass_fields__}
        )

    def __len__(self) -> int:
        return len(self.concept)


def split_code(item: Item, split: dict[str, Any]) -> int:
    if item.concept in split["_unseen"]:
        return SPLIT_CODES["unseen"]
    held = split["validation"].get(item.concept, ())
    return SPLIT_CODES["validation"] if f"{item.prefix}:{item.icon}" in held else SPLIT_CODES["seen"]


def preprocess(cache: Path, item: Item, config) -> np.ndarray:
    """Render at :data:`RENDER_SIZE` and preprocess for ``config`` (uint8, S x S x 3)."""
    png = rasterise(item.svg(cache), RENDER_SIZE)
    modality = MODALITY[item.role]
    to_rgb = sketch_to_rgb if modality == "sketch" else photo_to_rgb
    return to_rgb(png, config.preprocess[modality])


def _savez(out: Path, arrays: dict[str, np.ndarray], compression: str) -> None:
    """``np.savez_compressed`` with a choice of zip compression; ``np.load`` reads either.

    LZMA makes the file ~22% smaller than deflate (what a GPU run may carry is limited) for
    about twice the packing time; reading stays fast.
    """
    method = {"lzma": zipfile.ZIP_LZMA, "deflate": zipfile.ZIP_DEFLATED}[compression]
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=method) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    tmp.replace(out)  # never a half-written pack under the final name


def pack(
    cache: Path, concepts: list[Concept], split: dict[str, Any], config_name: str, out: Path, compression: str = "lzma"
) -> dict[str, Any]:
    """Write the .npz; returns a summary (counts, bytes, seconds)."""
    if compression not in ("lzma", "deflate"):
        raise InputError(f"compression {compression!r}: expected 'lzma' or 'deflate'")
    config = get_config(config_name)
    size = config.encoder.image_size
    split = {**split, "_unseen": set(split["unseen"])}
    all_items = [it for c in concepts for it in items(c, cache=cache)]
    all_items.sort(key=lambda it: ROLE_CODES[it.role])  # drawings first (stable: concept order kept)
    images = np.empty((len(all_items), size, size, 3), dtype=np.uint8)
    keep = np.ones(len(all_items), dtype=bool)
    start = time.perf_counter()
    for i, item in enumerate(tqdm(all_items, desc="rendering", unit="img")):
        try:
            images[i] = preprocess(cache, item, config)
        except ImageError as exc:  # e.g. an icon that renders blank at this size
            _log.warning("%s:%s %s skipped: %s", item.prefix, item.icon, item.variant, exc)
            keep[i] = False
    render_seconds = time.perf_counter() - start
    kept = [it for it, k in zip(all_items, keep, strict=False) if k]
    names = [c.name for c in concepts]
    index = {n: i for i, n in enumerate(names)}
    images = images[keep]
    is_drawing = np.array([it.role == "drawing" for it in kept], dtype=bool)
    drawings = images[is_drawing]
    if not ((drawings[..., 0] == drawings[..., 1]).all() and (drawings[..., 0] == drawings[..., 2]).all()):
        _log.warning("some drawings are not grey; stored as their luminance")
    arrays = {
        "drawings": np.asarray(drawings.mean(axis=3).round(), dtype=np.uint8) if len(drawings) else drawings[..., 0],
        "photos": images[~is_drawing],
        "concept": np.array([index[it.concept] for it in kept], dtype=np.int32),
        "role": np.array([ROLE_CODES[it.role] for it in kept], dtype=np.uint8),
        "split": np.array([split_code(it, split) for it in kept], dtype=np.uint8),
        "source": np.array([it.prefix for it in kept]),
        "family": np.array([family(it.prefix) for it in kept]),
        "ident": np.array([it.icon for it in kept]),
        "variant": np.array([it.variant for it in kept]),
        "concept_names": np.array(names),
        "concept_groups": np.array([c.group for c in concepts]),
        "config": np.array(config.name),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    _savez(out, arrays, compression)
    role, sp = arrays["role"], arrays["split"]
    return {
        "file": str(out),
        "bytes": out.stat().st_size,
        "render_seconds": round(render_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
        "size": size,
        "compression": compression,
        "concepts": len(concepts),
        "images": int(keep.sum()),
        "skipped": int((~keep).sum()),
        "drawings": int((role == 0).sum()),
        "photos": int((role == 1).sum()),
        "drawings_train": int(((role == 0) & (sp == 0)).sum()),
        "drawings_validation": int(((role == 0) & (sp == 1)).sum()),
        "drawings_unseen": int(((role == 0) & (sp == 2)).sum()),
    }


def load_pack(path: str | Path):
    """The pack as the trainer's RenderSet (plus the split codes), images kept as uint8."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no data pack; run python -m tools.pack --out {path}")
    with np.load(path) as npz:
        names = npz["concept_names"]
        role = npz["role"]
        images = np.concatenate([np.repeat(npz["drawings"][..., None], 3, axis=3), npz["photos"]])
        renders = RenderSet(
            images=images,
            concept=names[npz["concept"]],
            source=npz["source"],
            modality=np.where(role == ROLE_CODES["drawing"], "sketch", "photo"),
            variant=npz["variant"],
            ident=npz["ident"],
            path=np.char.add(np.char.add(npz["source"], "/"), npz["ident"]),
        )
        return renders, npz["split"].copy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--config", default="zse_demo", help="model config (its input size and preprocessing)")
    parser.add_argument("--out", type=Path, required=True, help=".npz to write (outside the repo)")
    parser.add_argument("--sample", type=int, default=0, help="only this many random concepts (a quick check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compression",
        choices=("lzma", "deflate"),
        default="lzma",
        help="lzma: ~22%% smaller, about twice the packing time",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    concepts = load_concepts()
    if args.sample:
        concepts = random.Random(args.seed).sample(concepts, min(args.sample, len(concepts)))
    summary = pack(
        args.cache.expanduser(), concepts, load_split(), args.config, args.out.expanduser(), args.compression
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
