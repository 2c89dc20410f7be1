"""The demo renders as one preprocessed uint8 array, and the sources each role may use.

Preprocessing (crop-to-ink for sketches, square resize for photos) runs once
per render through the package's own :mod:`zse_infer.preprocess`, so the
model trains on exactly what inference feeds it; the result is cached as a
``.npz`` next to the renders. Augmentation then works on batches of tensors
(:mod:`zse_infer.training.augment`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import ModelConfig
from ..demo.build import read_index
from ..demo.sources import SOURCES
from ..errors import InputError
from ..preprocess import photo_to_rgb, sketch_to_rgb

_log = logging.getLogger(__name__)

# Roles of the sources. The bundled weights never see OpenMoji (CC-BY-SA):
# it is used to evaluate only.
TRAIN_PHOTO_SOURCES = tuple(k for k, s in SOURCES.items() if s.modality == "photo" and s.train)
TRAIN_SKETCH_SOURCES = tuple(k for k, s in SOURCES.items() if s.modality == "sketch" and s.train)


@dataclass
class RenderSet:
    """Preprocessed renders: images (N, S, S, 3) uint8 and one record per image."""

    images: np.ndarray
    concept: np.ndarray  # (N,) concept name
    source: np.ndarray  # (N,) source key
    modality: np.ndarray  # (N,) "sketch" | "photo"
    variant: np.ndarray  # (N,) stroke width / weight, "" for emoji
    ident: np.ndarray  # (N,) code point or icon name
    path: np.ndarray  # (N,) path relative to the render folder

    def select(self, mask: np.ndarray) -> "RenderSet":
        return RenderSet(**{k: getattr(self, k)[mask] for k in self.__dataclass_fields__})

    def mask(
        self,
        concepts: "set[str] | None" = None,
        sources: "tuple[str, ...] | None" = None,
        modality: str | None = None,
        variants: "tuple[str, ...] | None" = None,
    ) -> np.ndarray:
        m = np.ones(len(self.concept), dtype=bool)
        if concepts is not None:
            m &= np.isin(self.concept, sorted(concepts))
        if sources is not None:
            m &= np.isin(self.source, list(sources))
        if modality is not None:
            m &= self.modality == modality
        if variants is not None:
            m &= np.isin(self.variant, list(variants))
        return m

    def __len__(self) -> int:
        return len(self.concept)


def _index_key(records: list[dict], size: int) -> str:
    return hashlib.sha256(json.dumps([records, size], sort_keys=True).encode()).hexdigest()[:16]


def load_renders(render_dir: Path, config: ModelConfig) -> RenderSet:
    """All renders of ``render_dir`` preprocessed for ``config`` (cached as ``cache_<size>_<hash>.npz``)."""
    render_dir = Path(render_dir).expanduser()
    records = read_index(render_dir)
    size = config.encoder.image_size
    cache = render_dir / f"cache_{size}_{_index_key(records, size)}.npz"
    fields = ("concept", "source", "modality", "variant", "id", "path")
    if cache.is_file():
        with np.load(cache) as npz:
            images = npz["images"]
    else:
        images = np.empty((len(records), size, size, 3), dtype=np.uint8)
        for i, r in enumerate(tqdm(records, desc="preprocessing renders", unit="img")):
            file = render_dir / r["path"]
            if not file.is_file():
                raise InputError(f"{file}: listed in {render_dir / 'index.json'} but missing; rerun the build")
            pre = config.preprocess[r["modality"]]
            images[i] = (sketch_to_rgb if r["modality"] == "sketch" else photo_to_rgb)(file, pre)
        np.savez(cache, images=images)
    columns = {f: np.array([r[f] for r in records]) for f in fields}
    return RenderSet(
        images=images,
        concept=columns["concept"],
        source=columns["source"],
        modality=columns["modality"],
        variant=columns["variant"],
        ident=columns["id"],
        path=columns["path"],
    )
