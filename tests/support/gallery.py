"""Gallery rows without a model, for store tests and multi-process checks (no data needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zse_infer.runtime.gallery.store import Batch

#: the token shape of these rows: 9 tokens of width 16
SHAPE = (9, 16)


def low_rank_tokens(n: int, seed: int = 0, rank: int = 4) -> np.ndarray:
    """Low-rank tokens plus noise, like a ViT's (the PCA codec relies on it)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, SHAPE[1]))
    return (rng.normal(size=(n, SHAPE[0], rank)) @ basis + 0.01 * rng.normal(size=(n, *SHAPE))).astype(np.float32)


def tiny_batch(ids: Sequence[str], seed: int = 0) -> Batch:
    """One commit of rows with these ids (paths /photos/<id>.png, fingerprint (1, 2))."""
    tok = low_rank_tokens(len(ids), seed)
    ret = tok[:, 0] / np.linalg.norm(tok[:, 0], axis=1, keepdims=True)
    n = len(ids)
    return Batch(list(ids), [f"/photos/{i}.png" for i in ids], np.full(n, 1), np.full(n, 2), ret, tok)
