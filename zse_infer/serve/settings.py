"""The server's knobs, in one place (the CLI and tests fill them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServeSettings:
    max_batch: int = 16  # sketches encoded together
    max_delay_ms: float = 5.0  # how long the first request of a batch waits for company, once there is concurrency
    max_queue: int = 256  # requests waiting for the model beyond this are answered 503
    timeout_s: float = 30.0  # a request not answered by then gets 504
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000  # decoded size limit (decompression bombs below PIL's own limit)
    token: str | None = None  # bearer token required on /v1/* when set
    cors: tuple[str, ...] = ()
    allow_writes: bool = False
    upload_dir: Path | None = None  # where POST /v1/photos keeps uploaded files (so they can be served)
    photo_roots: tuple[Path, ...] = ()  # server-side folders POST /v1/photos may index from
    default_k: int = 10
    max_k: int = 1000
    decode_threads: int = 2
    retry_after_s: int = 1
    refresh_s: float = 2.0  # searches see other writers' gallery commits within this many seconds (0: never)
    title: str = "zse-infer"
    try_drawing: tuple[str, ...] = ()  # what the gallery holds, named on the page ("Try drawing: ..."); empty: nothing said

    def __post_init__(self):
        from ..errors import InputError

        for name in ("max_batch", "max_queue", "max_upload_bytes", "max_pixels", "decode_threads", "max_k", "default_k"):
            if getattr(self, name) < 1:
                raise InputError(f"{name}: received {getattr(self, name)}, expected >= 1")
        if self.max_delay_ms < 0 or self.timeout_s <= 0:
            raise InputError(f"max_delay_ms/timeout_s: received {self.max_delay_ms}/{self.timeout_s}, expected >= 0 / > 0")
        if isinstance(self.try_drawing, str) or not all(isinstance(n, str) for n in self.try_drawing):
            # a bare string would be named letter by letter
            raise InputError(f"try_drawing: received {self.try_drawing!r}, expected a tuple of concept names")


def auto_max_batch(retriever) -> int:
    """16 on every device. The batcher waits for company only while the last batch had some, so a
    lone client pays no delay, and under load encoder calls are shared: on the 2-core CPU about
    as fast as batching off at 1-4 clients and 1.1-1.2x faster at 16 (benchmarks/results/serve.md);
    on a GPU the encoder gains far more from a batch. Kept as a function: the place for a
    device-specific choice."""
    return 16
