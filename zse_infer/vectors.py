"""Vector helpers shared by the gallery, search and metrics: normalisation happens here only."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Float32 copy of ``x`` scaled to unit L2 norm along ``axis`` (zero vectors stay zero): for unit vectors
    ascending L2 distance ranks as descending inner product (|a - b|^2 = 2 - 2 a.b), what stage 1 computes."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def top_k_desc(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values of a 1-D array, best first; ties go to the lower index, whatever
    argpartition did with equal values."""
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    # Take every element tied with the k-th best so the stable sort below sees all ties.
    candidates = np.flatnonzero(scores >= np.partition(scores, n - k)[n - k]) if k < n else np.arange(n)
    order = np.lexsort((candidates, -scores[candidates].astype(np.float64)))
    return candidates[order[:k]]
