"""What the model thread runs for a batch of searches (:func:`run_search_batch`), and the rerank depth of one."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .batcher import Job
from .errors import bad_request, timed_out


@dataclass
class SearchJob(Job):
    image: np.ndarray  # decoded RGB sketch
    k: int
    rerank: int | str


@dataclass
class SearchResult:
    hits: list  # list[Hit]
    timing_ms: dict[str, float]


def resolve_rerank(retriever, rerank: int | str | None, max_rerank: int) -> int | str:
    """The rerank depth a request gets: ``None`` is the export's recorded default (at most ``max_rerank``);
    a deeper one than ``max_rerank``, or ``'all'`` in a larger gallery, is refused (422)."""
    if rerank is None:
        default = retriever.manifest.default_rerank
        return min(default, max_rerank) if isinstance(default, int) else default
    if rerank == "all":
        size = len(retriever)
        if size > max_rerank:
            raise bad_request(
                f"rerank: received 'all' for a gallery of {size} photos; this server reranks at most "
                f"{max_rerank} (its --max-rerank): ask for an integer up to that"
            )
        return rerank
    if isinstance(rerank, int) and rerank > max_rerank:
        raise bad_request(f"rerank: received {rerank}, expected at most {max_rerank} (this server's --max-rerank)")
    return rerank


def run_search_batch(retriever, jobs: list[SearchJob]) -> list[SearchResult | BaseException]:
    """Encode every live sketch in one call, then rank each through ``Retriever.search_tokens`` (the searcher's
    one ranking, which checks k and rerank); a failing query fails alone, an abandoned one is skipped."""
    out: list[SearchResult | BaseException] = [timed_out(0)] * len(jobs)
    live = [i for i, j in enumerate(jobs) if not j.abandoned.is_set()]
    if not live:
        return out
    t0 = time.perf_counter()
    tokens = retriever.encode([jobs[i].image for i in live], "sketch")
    encode_ms = (time.perf_counter() - t0) * 1000
    for i, t in zip(live, tokens, strict=False):
        job = jobs[i]
        if job.abandoned.is_set():
            continue
        try:
            seconds: dict[str, float] = {}
            hits = retriever.search_tokens(t, k=job.k, rerank=job.rerank, timing=seconds)
            out[i] = SearchResult(hits, {"encode": encode_ms, **{stage: s * 1000 for stage, s in seconds.items()}})
        except Exception as exc:  # noqa: BLE001 - handed to that request's future; the others still answer
            out[i] = exc
    return out
