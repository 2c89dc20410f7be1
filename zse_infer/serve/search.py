"""What the model thread runs for a batch of searches: one encoder call, then each query's two stages.

Built on the public ``Retriever`` methods only (``encode``, ``search_tokens``,
``relation_scores``): stage 1 is ``search_tokens(rerank=0)`` (the
ret-token ranking, deep enough for the reranking), stage 2 is
``relation_scores`` over its first candidates, ordered exactly as
``Retriever.search_tokens`` orders them (highest relation score first, ties
in stage-1 order). Splitting the two lets the server time each stage.

Stage-2 batches are still one relation-head call set per query: sharing
relation-head batches across the queries of a batch needs a searcher entry
point that takes several sketches (``relation_scores_batch(tokens[N], rows[N, R])``);
see the report in docs-snippets/serve.md.
"""

from __future__ import annotations

import dataclasses
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
    n = len(retriever)
    n_rerank = n if rerank == "all" else min(int(rerank), n)
    t0 = time.perf_counter()
    # Validation of k / rerank and the empty-gallery error come from the library itself.
    first = retriever.search_tokens(tokens, k=max(k, n_rerank, 1) if n else k, rerank=0)
    t1 = time.perf_counter()
    if not n_rerank:
        return first[:k], t1 - t0, 0.0
    candidates = first[:n_rerank]
    scores = np.asarray(retriever.relation_scores(tokens, np.array([h.row for h in candidates], dtype=np.int64)))
    order = np.lexsort((np.arange(len(scores)), -scores.astype(np.float64)))
    ranked = [dataclasses.replace(candidates[i], score=float(scores[i]), stage=2) for i in order] + first[n_rerank:]
    hits = [dataclasses.replace(h, rank=r) for r, h in enumerate(ranked[:k], start=1)]
    return hits, t1 - t0, time.perf_counter() - t1


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
