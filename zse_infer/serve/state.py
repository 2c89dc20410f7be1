"""One server's state (model thread, decode pool, batcher, photo table, limits, metrics) and its search batches."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

import numpy as np

from ..errors import GalleryError, require
from . import schemas
from .batcher import Batcher, Job
from .errors import Redactor, bad_request, timed_out
from .images import ImageLimits, decode_sketch
from .photos import PhotoRoots, PhotoTable, display_name
from .settings import ServeSettings
from .uploads import Upload

_log = logging.getLogger(__name__)


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
    """The rerank depth a request gets: ``None`` is the export's default, at most ``max_rerank``; deeper is 422."""
    if rerank is None:
        default = retriever.manifest.default_rerank
        return min(default, max_rerank) if isinstance(default, int) else default
    if rerank == "all":
        size = len(retriever)
        if size > max_rerank:
            limit = f"this server reranks at most {max_rerank} (its --max-rerank): ask for an integer up to that"
            raise bad_request(f"rerank: received 'all' for a gallery of {size} photos; {limit}")
        return rerank
    if isinstance(rerank, int) and rerank > max_rerank:
        raise bad_request(f"rerank: received {rerank}, expected at most {max_rerank} (this server's --max-rerank)")
    return rerank


def run_search_batch(retriever, jobs: list[SearchJob]) -> list[SearchResult | BaseException]:
    """One encoder call for the live sketches, then ranking each: a failure fails alone, an abandoned one is skipped."""
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


#: latency buckets in seconds: from a fast stage-1 lookup to a long reranking
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServeMetrics:
    def __init__(self, gallery_size: Callable[[], float], queue_depth: Callable[[], float]):
        self._prom = prom = require("prometheus_client", "serve", "zse serve metrics")
        self.registry = r = prom.CollectorRegistry()
        counter, histogram = partial(prom.Counter, registry=r), partial(prom.Histogram, buckets=_BUCKETS, registry=r)
        self.requests = counter("zse_requests", "HTTP requests by route and status", ["route", "method", "status"])
        self.latency = histogram("zse_request_seconds", "HTTP request latency by route", ["route"])
        stages = "Time per stage of a search: queue, decode, encode, stage1, stage2"
        self.stage = histogram("zse_stage_seconds", stages, ["stage"])
        sizes = (1, 2, 4, 8, 16, 32, 64, 128)
        self.batch_size = histogram("zse_batch_size", "Sketches encoded per model call", buckets=sizes)
        self.rejected = counter("zse_rejected", "Requests refused for overload (503) or timeout (504)", ["reason"])
        prom.Gauge("zse_queue_depth", "Searches waiting for the model", registry=r).set_function(queue_depth)
        prom.Gauge("zse_gallery_size", "Photos in the gallery", registry=r).set_function(gallery_size)

    def observe_stages(self, timing_ms: dict[str, float]) -> None:
        for stage, ms in timing_ms.items():
            if stage != "total":
                self.stage.labels(stage).observe(ms / 1000)

    def render(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST


def photo_url(public_id: str) -> str:
    return "/v1/photos/" + quote(public_id, safe="")


def _warm_sketch() -> np.ndarray:
    """A white square with a dark diagonal: enough ink to run every graph once."""
    img = np.full((64, 64, 3), 255, np.uint8)
    for i in range(8, 56):
        img[i, i - 1 : i + 2] = 0
    return img


class ServerState:
    def __init__(self, retriever, settings: ServeSettings):
        self.retriever, self.settings, self.ready = retriever, settings, False
        self.roots = PhotoRoots(settings.photo_roots)
        self.photos = PhotoTable(self.roots)
        self.limits = ImageLimits(settings.max_upload_bytes, settings.max_pixels)
        folders = [(getattr(retriever.gallery, "root", None), "the gallery"), (settings.upload_dir, "upload")]
        folders += [(real, label) for label, real in self.roots.roots]
        self.redact = Redactor([(path, label) for path, label in folders if path])
        # The one thread that touches the Retriever (docs/serve.md), and the decoders.
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="zse-model")
        self.decoders = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="zse-decode")
        self.metrics = ServeMetrics(gallery_size=lambda: len(self.photos), queue_depth=lambda: self.batcher.depth)
        self._refreshed = time.monotonic()
        queue = (settings.max_batch, settings.max_delay_ms, settings.max_queue, settings.timeout_s)
        on_batch = self.metrics.batch_size.observe
        self.batcher = Batcher(self._search_batch, self.model_thread, *queue, settings.retry_after_s, on_batch=on_batch)

    def _search_batch(self, jobs):
        """On the model thread: pick up other writers' commits at most every ``refresh_s`` seconds, then search."""
        if self.settings.refresh_s and time.monotonic() - self._refreshed >= self.settings.refresh_s:
            self._refreshed = time.monotonic()
            refresh = getattr(self.retriever, "refresh", None)
            if refresh is not None and self._survive("refresh", refresh):
                self.update_photos()
        return run_search_batch(self.retriever, jobs)

    def update_photos(self) -> None:
        """Rebuild the photo table from the retriever's gallery version (on the model thread)."""
        self._survive("photo table", self.photos.refresh, self.retriever)

    @staticmethod
    def _survive(what: str, fn: Callable[..., Any], *args) -> Any:
        """``fn(*args)``; a gallery failure is logged, and searches go on with the version already open."""
        try:
            return fn(*args)
        except GalleryError as exc:
            _log.warning("gallery %s failed; searches go on with the version already open: %s", what, exc)
            return None

    async def on_model(self, fn: Callable[..., Any], *args, job: Job | None = None):
        """``fn`` on the model thread; 504 if not done in time (never run if not started; ``job`` marked abandoned)."""
        future = asyncio.get_running_loop().run_in_executor(self.model_thread, fn, *args)
        try:
            return await asyncio.wait_for(future, self.settings.timeout_s)
        except TimeoutError:
            if job is not None:
                job.abandoned.set()
            self.metrics.rejected.labels("timeout").inc()
            raise timed_out(self.settings.timeout_s) from None

    async def in_decoders(self, fn: Callable[..., Any], *args):
        return await asyncio.get_running_loop().run_in_executor(self.decoders, fn, *args)

    async def decode_sketch(self, upload: Upload) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        cfg = self.retriever.manifest.preprocess["sketch"]
        rgb = await self.in_decoders(decode_sketch, upload.data, upload.name, cfg, self.limits)
        return rgb, (time.perf_counter() - t0) * 1000

    def hit(self, h) -> schemas.SearchHit:
        """A library Hit as clients see it: a public id, never the server's path."""
        pid = self.photos.public_id(h.id, h.path)
        name, url = display_name(h.path, pid), photo_url(pid)
        return schemas.SearchHit(rank=h.rank, id=pid, name=name, score=h.score, stage=h.stage, photo_url=url)

    def warm_up(self) -> None:
        r = self.retriever
        self.photos.refresh(r)
        if len(r):
            run_search_batch(r, [SearchJob(_warm_sketch(), 1, resolve_rerank(r, None, self.settings.max_rerank))])
        else:
            r.encode([_warm_sketch()], "sketch")

    def close(self) -> None:
        self.model_thread.shutdown(wait=False, cancel_futures=True)
        self.decoders.shutdown(wait=False, cancel_futures=True)
