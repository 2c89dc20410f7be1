"""One server's state: the retriever on its model thread, the decode pool, the batcher, the photo
table, the image limits and the metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import numpy as np

from ..errors import GalleryError
from . import schemas
from .batcher import Batcher, Job
from .errors import Redactor, timed_out
from .images import ImageLimits, decode_sketch
from .metrics import ServeMetrics
from .photos import PhotoRoots, PhotoTable, display_name
from .search import SearchJob, resolve_rerank, run_search_batch
from .settings import ServeSettings
from .uploads import Upload

_log = logging.getLogger(__name__)


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
        self.retriever = retriever
        self.settings = settings
        self.ready = False
        self.roots = PhotoRoots(settings.photo_roots)
        self.photos = PhotoTable(self.roots)
        self.limits = ImageLimits(settings.max_upload_bytes, settings.max_pixels)
        folders = [
            (getattr(retriever.gallery, "root", None), "the gallery"),
            (settings.upload_dir, "upload"),
            *((real, label) for label, real in self.roots.roots),
        ]
        self.redact = Redactor([(path, label) for path, label in folders if path])
        # The one thread that touches the Retriever (docs/serve.md), and the decoders.
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="zse-model")
        self.decoders = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="zse-decode")
        self.metrics = ServeMetrics(gallery_size=lambda: len(self.photos), queue_depth=lambda: self.batcher.depth)
        self._refreshed = time.monotonic()
        self.batcher = Batcher(
            self._search_batch,
            self.model_thread,
            settings.max_batch,
            settings.max_delay_ms,
            settings.max_queue,
            settings.timeout_s,
            settings.retry_after_s,
            on_batch=self.metrics.batch_size.observe,
        )

    def _search_batch(self, jobs):
        """On the model thread: first pick up other writers' commits (other replicas, a
        ``zse index`` beside the server) at most every ``refresh_s`` seconds, then search."""
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
        """``fn(*args)``; a gallery failure is logged and searches go on with the version already
        open (kept by the store for minutes after a newer one), instead of failing requests."""
        try:
            return fn(*args)
        except GalleryError as exc:
            _log.warning("gallery %s failed; searches go on with the version already open: %s", what, exc)
            return None

    async def on_model(self, fn: Callable[..., Any], *args, job: Job | None = None):
        """Run ``fn`` on the model thread, answering 504 if it does not finish in time (not
        started yet: it never runs; ``job``: marked abandoned, for ``fn`` to stop between steps)."""
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
        return schemas.SearchHit(
            rank=h.rank, id=pid, name=display_name(h.path, pid), score=h.score, stage=h.stage, photo_url=photo_url(pid)
        )

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
