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
    """``None``: the export's recorded default (``manifest.default_rerank``)."""
    return retriever.manifest.default_rerank if rerank is None else rerank


def run_search_batch(retriever, jobs: list[SearchJob]) -> list[SearchResult | BaseException]:
    """Encode every sketch in one call, then rank each (the searcher checks k and rerank);
    a failing query fails alone."""
    t0 = time.perf_counter()
    tokens = retriever.encode([j.image for j in jobs], "sketch")
    encode_ms = (time.perf_counter() - t0) * 1000
    out: list[SearchResult | BaseException] = []
    for job, t in zip(jobs, tokens):
        try:
            seconds: dict[str, float] = {}
            hits = retriever.search_tokens(t, k=job.k, rerank=job.rerank, timing=seconds)
            out.append(SearchResult(hits, {"encode": encode_ms, **{stage: s * 1000 for stage, s in seconds.items()}}))
        except Exception as exc:  # noqa: BLE001 - handed to that request's future; the others still answer
            out.append(exc)
    return out
