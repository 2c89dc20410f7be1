"""uvicorn, with per-connection limits against slow or many clients (each limit: docs/serve-security.md)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from http import HTTPStatus

from ..errors import require
from .settings import LOOPBACK_HOSTS, ServeSettings

_log = logging.getLogger(__name__)

#: how long a refused connection's input is still read (and dropped) before it is closed
_LINGER_S = 1.0


def _response(status: int, kind: str, message: str, extra: str = "") -> bytes:
    payload = json.dumps({"error": {"type": kind, "message": message}}).encode()
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
    return (head + f"content-length: {len(payload)}\r\n{extra}connection: close\r\n\r\n").encode() + payload


def limited_protocol(settings: ServeSettings):
    """uvicorn's HTTP protocol class (httptools where installed, else h11, as uvicorn picks), with these limits."""
    try:
        import httptools  # noqa: F401 - optional in uvicorn: its faster parser
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    full = f"this server holds its limit of {settings.max_connections} connections; retry later"
    busy = _response(503, "overloaded", full, "retry-after: 1\r\n")
    slow = _response(408, "request_timeout", f"request headers: not received within {settings.header_timeout_s:g} s")
    big = _response(431, "headers_too_large", f"request headers: over {settings.max_header_bytes} bytes")

    class LimitedProtocol(Base):
        # A request's headers are complete when uvicorn makes its cycle (both implementations set self.cycle then):
        # the deadline, armed when the connection opens and when a response completes (for the next request; an
        # idle kept-alive connection is closed by uvicorn's keep-alive timer first), waits for a new cycle.
        def connection_made(self, transport) -> None:
            self._header_timer: asyncio.TimerHandle | None = None
            self._send_timer: asyncio.TimerHandle | None = None
            self._refused = False
            super().connection_made(transport)
            if len(self.connections) > settings.max_connections:
                self._refuse(busy)
            else:
                self._await_headers()

        def _await_headers(self) -> None:
            self._stop("_header_timer")
            self._before = self.cycle
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(settings.header_timeout_s, self._headers_late)

        def _stop(self, timer_name: str) -> None:
            timer = getattr(self, timer_name, None)
            if timer is not None:
                timer.cancel()
                setattr(self, timer_name, None)

        def _refuse(self, response: bytes) -> None:
            """Answer and close, dropping input for a moment (unread input would reset the connection first)."""
            self._stop("_header_timer")
            if self._refused or self.transport.is_closing():
                return
            self._refused = True
            self.transport.write(response)
            if len(self.connections) > 2 * settings.max_connections:  # a flood: free the descriptor now
                self.transport.abort()
            elif self.transport.can_write_eof():
                self.transport.write_eof()
                self._header_timer = self.loop.call_later(_LINGER_S, self.transport.close)
            else:
                self.transport.close()

        def eof_received(self):
            if self._refused:
                self.transport.close()
                return False
            return super().eof_received()

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.cycle is self._before:
                self._refuse(slow)

        def data_received(self, data: bytes) -> None:
            if self._refused or self.transport.is_closing():
                return
            super().data_received(data)
            if self._header_timer is not None:
                if self.cycle is not self._before:
                    self._stop("_header_timer")
                else:
                    self._header_bytes += len(data)
                    if self._header_bytes > settings.max_header_bytes:
                        self._refuse(big)

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may start a pipelined request whose headers are already in
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._await_headers()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._send_timer is None:
                self._send_timer = self.loop.call_later(settings.send_timeout_s, self.transport.abort)

        def resume_writing(self) -> None:
            self._stop("_send_timer")
            super().resume_writing()

        def connection_lost(self, exc) -> None:
            self._stop("_header_timer")
            self._stop("_send_timer")
            super().connection_lost(exc)

    return LimitedProtocol


#: file descriptors the process keeps for itself besides connections (gallery files, listeners, logs)
FD_RESERVE = 128


def fit_to_fd_limit(settings: ServeSettings) -> ServeSettings:
    """Room for ``2 * max_connections`` sockets plus :data:`FD_RESERVE` (why and how: docs/serve-security.md)."""
    try:
        import resource
    except ImportError:  # not on this system: nothing to fit
        return settings
    need = 2 * settings.max_connections + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < need:
        fitted = max(1, (soft - FD_RESERVE) // 2)
        message = "this process may open %d files (ulimit -n): serving at most %d connections, not %d"
        _log.warning(message, soft, fitted, settings.max_connections)
        return dataclasses.replace(settings, max_connections=fitted)
    return settings


def effective_settings(settings: ServeSettings, host: str) -> ServeSettings:
    """Bound to loopback, answer only loopback Host names unless told otherwise (:data:`~.settings.LOOPBACK_HOSTS`)."""
    if settings.allowed_hosts is None and host in LOOPBACK_HOSTS:
        return dataclasses.replace(settings, allowed_hosts=LOOPBACK_HOSTS)
    return settings


def build_server(
    retriever, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
):
    """(uvicorn.Server, app) for ``retriever`` on ``host:port``, with every limit in place."""
    uvicorn = require("uvicorn", "serve", "zse serve")
    from .app import create_app

    settings = fit_to_fd_limit(effective_settings(settings, host))
    app = create_app(retriever, settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        http=limited_protocol(settings),
        # uvicorn counts the connection itself and requests still running for clients that left
        limit_concurrency=settings.max_connections + 1,
        timeout_keep_alive=settings.keep_alive_s,
        h11_max_incomplete_event_size=2 * settings.max_header_bytes,  # h11's own guard, behind ours (431)
    )
    return uvicorn.Server(config), app
