"""The server's knobs in one place (the CLI and tests fill them); the limits: docs/serve-security.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

#: The only Host headers a server bound to loopback answers by default (a page on another site that rebinds its DNS
#: name to 127.0.0.1 is same-origin to the browser, but its requests carry its own name in Host).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class ServeSettings:
    max_batch: int = 16  # sketches encoded together
    max_delay_ms: float = 5.0  # how long the first request of a batch waits for company, once there is concurrency
    max_queue: int = 256  # requests waiting for the model beyond this are answered 503
    timeout_s: float = 30.0  # a request not answered by then gets 504
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000  # decoded size limit of every image the server reads (decompression bombs)
    max_rerank: int = 1000  # deepest stage-2 rerank a request may ask for ('all': galleries this small)
    token: str | None = None  # bearer token required on /v1/* when set
    cors: tuple[str, ...] = ()
    allow_writes: bool = False
    upload_dir: Path | None = None  # where POST /v1/photos keeps uploaded files (so they can be served)
    photo_roots: tuple[Path, ...] = ()  # server folders POST /v1/photos may index from; hit ids are relative to them
    allowed_hosts: tuple[str, ...] | None = None  # Host headers answered (None: any; on loopback: LOOPBACK_HOSTS)
    default_k: int = 10
    max_k: int = 1000
    decode_threads: int = 2
    retry_after_s: int = 1
    refresh_s: float = 2.0  # searches see other writers' gallery commits within this many seconds (0: never)
    # Connections (uvicorn; docs/serve-security.md): slow clients are cut off instead of holding one forever.
    max_connections: int = 512  # open connections at once; more are answered 503 and closed at once
    header_timeout_s: float = 10.0  # request line and headers must arrive within this (408 and close)
    max_header_bytes: int = 16 * 1024  # request line and headers together (431 and close)
    body_timeout_s: float = 60.0  # the whole request body must arrive within this (408)
    send_timeout_s: float = 30.0  # a client must take each part of a response within this (else closed)
    keep_alive_s: float = 5.0  # an idle kept-alive connection is closed after this
    title: str = "zse-infer"
    try_drawing: tuple[str, ...] = ()  # what the gallery holds, named on the page ("Try drawing: ...")

    def __post_init__(self):
        at_least_1 = "max_batch max_queue max_upload_bytes max_pixels decode_threads max_k default_k max_rerank"
        for name in (*at_least_1.split(), "max_connections", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise InputError(f"{name}: received {getattr(self, name)}, expected >= 1")
        for name in ("timeout_s", "header_timeout_s", "body_timeout_s", "send_timeout_s", "keep_alive_s"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name}: received {getattr(self, name)}, expected > 0")
        if self.max_delay_ms < 0:
            raise InputError(f"max_delay_ms: received {self.max_delay_ms}, expected >= 0")
        if isinstance(self.try_drawing, str) or not all(isinstance(n, str) for n in self.try_drawing):
            # a bare string would be named letter by letter
            raise InputError(f"try_drawing: received {self.try_drawing!r}, expected a tuple of concept names")


def startup_warnings(settings: ServeSettings, host: str) -> list[str]:
    """What an operator should hear before the server starts (printed by ``zse serve``)."""
    out = []
    if host not in LOOPBACK_HOSTS and not settings.token:
        writes = " and change the gallery" if settings.allow_writes else ""
        advice = "put a reverse proxy with TLS and timeouts in front (docs/serve-security.md)"
        out.append(f"listening on {host} without --token: anyone who can reach it can search{writes}; {advice}")
    if settings.allow_writes and not settings.token:
        out.append(
            "--allow-writes without --token: any program on this machine can change the gallery; browsers are held to "
            "this server's own pages (and --cors origins) by Origin checks only. Set --token to require it on writes."
        )
    return out


def auto_max_batch(retriever) -> int:
    """16 on every device (measured: docs/serve.md); a function, as the place for a device-specific choice."""
    return 16
