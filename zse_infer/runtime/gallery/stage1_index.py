"""Stage 1, exact: ret-token inner product (unit vectors: the official "sa" ranking, ascending L2 distance). Below
``EXACT_MAX`` a numpy product (faster than building any index), above it FAISS ``IndexFlatIP`` when installed."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np

from ...vectors import top_k_desc

_log = logging.getLogger(__name__)

EXACT_MAX = 50_000


class RetIndex:
    def __init__(self, vectors: np.ndarray, kind: str | None = None):
        self.vectors, n = np.ascontiguousarray(vectors, dtype=np.float32), len(vectors)
        self.kind, self._faiss_index = kind or self.choose_kind(n), None
        if self.kind == "faiss-flat":
            import faiss

            self._faiss_index = faiss.IndexFlatIP(self.vectors.shape[1])
            self._faiss_index.add(self.vectors)
        _log.debug("stage-1 index: %s over %d photos", self.kind, n)

    @staticmethod
    def choose_kind(n: int) -> str:
        if n < EXACT_MAX:
            return "exact"
        if importlib.util.find_spec("faiss") is None:
            _log.info("FAISS is not installed: exact numpy search over %d photos (pip install 'zse-infer[ann]')", n)
            return "exact"
        return "faiss-flat"

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, D) unit queries -> (scores, rows), each (Q, min(k, N)), best first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self))
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self._faiss_index is not None:
            scores, rows = self._faiss_index.search(queries, k)
            return scores, rows.astype(np.int64)
        sims = queries @ self.vectors.T
        rows = np.stack([top_k_desc(row, k) for row in sims]) if len(sims) else np.zeros((0, k), np.int64)
        return np.take_along_axis(sims, rows, axis=1), rows
