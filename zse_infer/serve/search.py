"""What the model thread runs for a batch of searches: one encoder call, then each query's two stages.

Built on the public ``Retriever`` methods (``encode``, then ``search_tokens``
per query, which reports each stage's time): the ranking itself is the
searcher's one implementation, shared with ``Retriever.search``.

Stage-2 batches are still one relation-head call set per query: sharing
relation-head batches across the queries of a batch needs a searcher entry
point that takes several sketches (``relation_scores_batch(tokens[N], rows[N, R])``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class SearchJob:
    image: np.ndarray  # decoded RGB sketch
    k: int
    rerank: int | str


@dataclass
class SearchResult:
    hits: list  # list[Hit]
    timing_ms: dict[str, float]


def resolve_rerank(retriever, rerank: int | str | None) -> int | str:
    """``None``: the export's recorded default (``manifest.default_rerank``), else 100."""
    if rerank is not None:
        return rerank
    return getattr(getattr(retriever, "manifest", None), "default_rerank", 100)


def two_stage(retriever, tokens: np.ndarray, k: int, rerank: int | str) -> tuple[list, float, float]:
    """One query's hits, with the seconds spent in stage 1 and stage 2."""
    timing: dict[str, float] = {}
    hits = retriever.search_tokens(tokens, k=k, rerank=rerank, timing=timing)
    return hits, timing.get("stage1", 0.0), timing.get("stage2", 0.0)


def run_search_batch(retriever, jobs: list[SearchJob]) -> list[SearchResult | BaseException]:
    """Encode every sketch in one call, then rank each; a failing query fails alone."""
    from ..errors import InputError

    t0 = time.perf_counter()
    tokens = retriever.encode([j.image for j in jobs], "sketch")
    encode_ms = (time.perf_counter() - t0) * 1000
    out: list[SearchResult | BaseException] = []
    for job, t in zip(jobs, tokens):
        try:
            if not isinstance(job.rerank, str) and job.rerank < 0:
                raise InputError(f"rerank: received {job.rerank!r}, expected an integer >= 0 or 'all'")
            hits, s1, s2 = two_stage(retriever, t, job.k, job.rerank)
            out.append(SearchResult(hits, {"encode": encode_ms, "stage1": s1 * 1000, "stage2": s2 * 1000}))
        except Exception as exc:  # noqa: BLE001 - handed to that request's future; the others still answer
            out.append(exc)
    return out
