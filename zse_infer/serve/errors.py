"""Every failure as JSON ``{"error": {"type", "message"}}`` with the right status.

Bad input is never a 500: our own :class:`~zse_infer.errors.ZseError` kinds map
to 4xx here, FastAPI's validation errors become 422, unknown routes 404.
Anything else is a bug and answers 500 with a generic message (logged).
"""

from __future__ import annotations

import logging

from ..errors import BlankSketchError, GalleryError, ImageError, InputError, ZseError

_log = logging.getLogger(__name__)


class ServeError(Exception):
    """An HTTP failure with a status, a short machine-readable type and a message for people."""

    def __init__(self, status: int, type: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ServeError:
    return ServeError(422, "invalid_request", message)


def not_found(message: str) -> ServeError:
    return ServeError(404, "not_found", message)


def too_large(message: str) -> ServeError:
    return ServeError(413, "payload_too_large", message)


def queue_full(retry_after_s: int) -> ServeError:
    return ServeError(503, "overloaded", "the request queue is full; retry later", {"Retry-After": str(retry_after_s)})


def timed_out(seconds: float) -> ServeError:
    return ServeError(504, "timeout", f"the request was not answered within {seconds:g} s")


def from_zse_error(exc: ZseError) -> ServeError:
    """Our library errors, as HTTP: what the caller sent was wrong (422), or the state of the gallery (409)."""
    if isinstance(exc, BlankSketchError):
        return ServeError(422, "blank_sketch", str(exc))
    if isinstance(exc, ImageError):
        return ServeError(422, "invalid_image", str(exc))
    if isinstance(exc, InputError):
        return ServeError(422, "invalid_request", str(exc))
    if isinstance(exc, GalleryError):
        return ServeError(409, "gallery", str(exc))
    return ServeError(500, "server_error", str(exc))


def body(type: str, message: str) -> dict:
    return {"error": {"type": type, "message": message}}


def install_handlers(app) -> None:
    """Register the JSON error handlers on a FastAPI app."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def respond(err: ServeError) -> JSONResponse:
        return JSONResponse(body(err.type, err.message), status_code=err.status, headers=err.headers)

    async def on_serve_error(request, exc: ServeError):
        return respond(exc)

    async def on_zse_error(request, exc: ZseError):
        return respond(from_zse_error(exc))

    async def on_validation(request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return respond(bad_request("; ".join(parts) or "invalid request"))

    async def on_http(request, exc: HTTPException):
        kinds = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        return respond(ServeError(exc.status_code, kinds.get(exc.status_code, "http_error"), str(exc.detail), dict(exc.headers or {})))

    async def on_other(request, exc: Exception):
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        return respond(ServeError(500, "server_error", "internal error (logged on the server)"))

    app.add_exception_handler(ServeError, on_serve_error)
    app.add_exception_handler(ZseError, on_zse_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_other)
