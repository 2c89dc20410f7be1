"""Prometheus metrics of one server (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import require

#: latency buckets in seconds: from a fast stage-1 lookup to a long reranking
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServeMetrics:
    def __init__(self, gallery_size: Callable[[], float], queue_depth: Callable[[], float]):
        self._prom = prom = require("prometheus_client", "serve", "zse serve metrics")
        self.registry = r = prom.CollectorRegistry()
        self.requests = prom.Counter(
            "zse_requests", "HTTP requests by route and status", ["route", "method", "status"], registry=r
        )
        self.latency = prom.Histogram(
            "zse_request_seconds", "HTTP request latency by route", ["route"], buckets=_BUCKETS, registry=r
        )
        stages = "Time per stage of a search: queue, decode, encode, stage1, stage2"
        self.stage = prom.Histogram("zse_stage_seconds", stages, ["stage"], buckets=_BUCKETS, registry=r)
        self.batch_size = prom.Histogram(
            "zse_batch_size", "Sketches encoded per model call", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r
        )
        self.rejected = prom.Counter(
            "zse_rejected", "Requests refused for overload (503) or timeout (504)", ["reason"], registry=r
        )
        prom.Gauge("zse_queue_depth", "Searches waiting for the model", registry=r).set_function(queue_depth)
        prom.Gauge("zse_gallery_size", "Photos in the gallery", registry=r).set_function(gallery_size)

    def observe_stages(self, timing_ms: dict[str, float]) -> None:
        for stage, ms in timing_ms.items():
            if stage != "total":
                self.stage.labels(stage).observe(ms / 1000)

    def render(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
