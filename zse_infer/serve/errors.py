"""Every failure as JSON ``{"error": {"type", "message"}}`` with the right status (docs/serve-security.md)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from functools import partial
from typing import Any

from ..errors import BlankSketchError, GalleryError, GalleryUnavailableError, ImageError, InputError, ZseError

_log = logging.getLogger(__name__)


class ServeError(Exception):
    """An HTTP failure with a status, a short machine-readable type and a message for people."""

    def __init__(self, status: int, type: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.type, self.message, self.headers = status, type, message, headers or {}


# the common kinds: each takes the message
bad_request = partial(ServeError, 422, "invalid_request")
forbidden = partial(ServeError, 403, "forbidden")
not_found = partial(ServeError, 404, "not_found")
gone = partial(ServeError, 410, "gone")
unsupported = partial(ServeError, 415, "unsupported_media_type")
internal_error = partial(ServeError, 500, "server_error", "internal error (logged on the server)")


def too_large(message: str) -> ServeError:
    return ServeError(413, "payload_too_large", message, {"Connection": "close"})


def queue_full(retry_after_s: int) -> ServeError:
    return ServeError(503, "overloaded", "the request queue is full; retry later", {"Retry-After": str(retry_after_s)})


def timed_out(seconds: float) -> ServeError:
    return ServeError(504, "timeout", f"the request was not answered within {seconds:g} s")


class Redactor:
    """Replaces the server's folders in messages with the names clients know (``the gallery``, a root's label)."""

    def __init__(self, names: Iterable[tuple[str | os.PathLike, str]]):
        pairs = []
        for path, label in names:
            for spelling in {os.fspath(path), os.path.realpath(path), os.path.abspath(path)}:
                pairs.append((spelling.rstrip(os.sep) or os.sep, label))
        self._pairs = sorted(pairs, key=lambda p: -len(p[0]))  # the longest (innermost) folder first

    def __call__(self, message: str) -> str:
        for path, label in self._pairs:
            message = message.replace(path, label)
        return message


def from_zse_error(exc: ZseError, retry_after_s: int, redact: Redactor) -> ServeError:
    """Our library errors, as HTTP: bad input (422), refused by the gallery's state (409), store unavailable (503)."""
    text = redact(str(exc))
    if isinstance(exc, BlankSketchError):
        return ServeError(422, "blank_sketch", text)
    if isinstance(exc, ImageError):
        return ServeError(422, "invalid_image", text)
    if isinstance(exc, InputError):
        return ServeError(422, "invalid_request", text)
    if isinstance(exc, GalleryUnavailableError):
        # What failed in the storage layer is for the log, not for the client.
        _log.warning("gallery unavailable (answered 503): %s", exc)
        message = f"the gallery cannot be read or written just now; retry in {retry_after_s} s"
        return ServeError(503, "gallery_unavailable", message, {"Retry-After": str(retry_after_s)})
    if isinstance(exc, GalleryError):
        return ServeError(409, "gallery_conflict", text)
    _log.error("library error answered 500: %r", exc)
    return internal_error()


def validation_message(errors: Iterable[Any]) -> str:
    """Pydantic's error list as one line naming each field ("paths: Input should be a valid list")."""
    parts = []
    for e in errors:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
    return "; ".join(parts) or "invalid request"


def json_response(err: ServeError):
    from fastapi.responses import JSONResponse

    body = {"error": {"type": err.type, "message": err.message}}
    return JSONResponse(body, status_code=err.status, headers=err.headers)


_HTTP_KINDS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def install_handlers(app, retry_after_s: int, redact: Redactor) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def on_error(request, exc):
        if isinstance(exc, ZseError):
            exc = from_zse_error(exc, retry_after_s, redact)
        elif isinstance(exc, RequestValidationError):
            exc = bad_request(validation_message(exc.errors()))
        elif isinstance(exc, HTTPException):
            kind = _HTTP_KINDS.get(exc.status_code, "http_error")
            exc = ServeError(exc.status_code, kind, str(exc.detail), dict(exc.headers or {}))
        return json_response(exc)  # a ServeError as it is

    for handled in (ServeError, ZseError, RequestValidationError, HTTPException):
        app.add_exception_handler(handled, on_error)


class CatchAll:
    """Outermost ASGI middleware: an unhandled exception is a logged 500 that keeps the connection (Starlette's not)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            if started:
                raise
            _log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            await json_response(internal_error())(scope, receive, send)
