"""Format 1 -> format 2 without re-encoding: a commit per shard, so a re-run continues (stored ids are skipped). Ids
are kept as they were (maybe relative paths: re-indexing those files with default, absolute ids adds them again)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ...errors import GalleryError
from ...vectors import l2_normalize
from .format1 import Gallery as Format1
from .store import Batch, Gallery

_log = logging.getLogger(__name__)


def _fingerprints(paths):
    sizes, mtimes = [], []
    for p in paths:
        try:
            st = os.stat(p) if p else None
        except OSError:
            st = None
        sizes.append(st.st_size if st else -1)
        mtimes.append(st.st_mtime_ns if st else -1)
    return np.array(sizes, np.int64), np.array(mtimes, np.int64)


def migrate(old: str | os.PathLike, new: str | os.PathLike, codec: str = "float16", progress: bool = True) -> Gallery:
    """Convert the format-1 gallery ``old`` into a format-2 gallery at ``new``; returns it."""
    if not (Path(old) / "gallery.json").is_file():
        raise GalleryError(f"{old}: no format-1 gallery here (expected gallery.json)")
    src = Format1.open(old)
    if Gallery.exists(new):
        dst = Gallery.open(new)
        if dst.tokens_shape != src.tokens_shape:
            raise GalleryError(f"{new}: holds tokens {dst.tokens_shape}, but {old} has {src.tokens_shape}")
    else:
        dst = Gallery.create(new, src.tokens_shape, src.model, codec=codec, projections=src.projections)
    from tqdm.auto import tqdm

    stored = set(dst.ids)
    for shard in tqdm(src.shards, desc="migrating", unit="shard", disable=not progress):
        keep = [i for i, pid in enumerate(shard.ids) if pid not in stored]
        if not keep:
            continue
        rows, paths = np.array(keep), [shard.paths[i] for i in keep]
        sizes, mtimes = _fingerprints(paths)
        ret, tokens = l2_normalize(np.asarray(shard.ret[rows], np.float32)), np.asarray(shard.tokens[rows], np.float32)
        proj = np.asarray(shard.proj[rows], np.float32) if shard.proj is not None else None
        dst.append(Batch([shard.ids[i] for i in keep], paths, sizes, mtimes, ret, tokens, proj))
    dst.sync()
    _log.info("migrated %d photos from %s to %s", len(dst), old, new)
    return dst
