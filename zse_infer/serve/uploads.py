"""Reading a request (its image, or its JSON body against a schema) and who may send what (docs/serve-security.md):
:class:`ClientLimits` (how much, how long), :class:`HostCheck` (DNS rebinding), :func:`check_write_origin` (CSRF)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from .errors import ServeError, bad_request, forbidden, json_response, too_large, unsupported, validation_message
from .images import from_base64
from .settings import ServeSettings

#: room for multipart boundaries and JSON around a file (base64 adds a third)
_FRAMING = 64 * 1024
M = TypeVar("M", bound=BaseModel)


@dataclass
class Upload:
    data: bytes
    name: str  # how messages name it: "upload 'cat.png'", "JSON field 'image'", "request body"
    fields: dict[str, str] = field(default_factory=dict)  # other (text) fields of the form or JSON body


def upload_name(filename: str | None, fallback: str) -> str:
    """A client's file name, fit for a message: printable, at most 80 characters."""
    text = re.sub(r"[\x00-\x1f\x7f]", "?", filename or fallback)
    return f"upload '{text[:80]}'"


class ClientLimits:
    """ASGI middleware: a body over the limit is 413, one not in within ``body_timeout_s`` 408 (raised on reading)."""

    def __init__(self, app, max_upload_bytes: int, body_timeout_s: float):
        self.app, self.max_upload_bytes, self.body_timeout_s = app, max_upload_bytes, body_timeout_s
        self.limit = max_upload_bytes * 4 // 3 + _FRAMING  # a base64 JSON body of a file at the limit still fits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        received = 0
        deadline = time.monotonic() + self.body_timeout_s

        async def limited_receive():
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                late = f"request body: not received within {self.body_timeout_s:g} s"
                raise ServeError(408, "request_timeout", late, {"Connection": "close"}) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    limit = self.max_upload_bytes
                    raise too_large(f"request body: over {received} bytes, expected an upload of at most {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


def content_type(request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_json(request, model: type[M]) -> M:
    """The JSON body as ``model`` (a pydantic model); 422 naming the field when it does not fit."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise bad_request("JSON body: " + validation_message(exc.errors(include_url=False))) from None


async def read_upload(request, file_field: str, max_bytes: int, text_fields: tuple[str, ...] = ()) -> Upload:
    """The image in ``file_field`` of a multipart form, or ``image`` of a JSON body, or a raw image body."""
    ctype = content_type(request)
    if ctype == "multipart/form-data":
        form = await request.form(max_files=4, max_fields=16, max_part_size=64 * 1024)
        part = form.get(file_field)
        if part is None or isinstance(part, str):
            raise bad_request(f"multipart field '{file_field}': missing, expected an image file")
        data = await part.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str) and k in text_fields}
        name = upload_name(part.filename, file_field)
    elif ctype == "application/json":
        try:
            payload = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"JSON body: not valid JSON ({exc})") from exc
        if not isinstance(payload, dict):
            raise bad_request('JSON body: expected an object {"image": "<base64>"}')
        data = from_base64(payload.get("image"), "image", max_bytes)
        fields = {k: str(payload[k]) for k in text_fields if payload.get(k) is not None}
        name = "JSON field 'image'"
    elif ctype.startswith("image/") or ctype == "application/octet-stream":
        data, fields, name = await request.body(), {}, "request body"
    else:
        raise unsupported(
            f"Content-Type: received {ctype or 'none'!r}, expected multipart/form-data (field '{file_field}'), "
            'application/json ({"image": base64}) or an image/* body'
        )
    if len(data) > max_bytes:
        raise too_large(f"{name}: {len(data)} bytes, expected at most {max_bytes} bytes")
    return Upload(data, name, fields)


#: what Sec-Fetch-Site says for a request from the server's own pages, or typed by the user
_OWN = ("same-origin", "none")


def _host_name(host: str) -> str:
    """'example.com:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class HostCheck:
    """ASGI middleware: 400 for a Host header outside ``allowed_hosts`` (names, without ports)."""

    def __init__(self, app, allowed_hosts: tuple[str, ...]):
        self.app, self.allowed = app, {_host_name(h) for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if _host_name(host) not in self.allowed:
                hint = "(start the server with --allowed-host NAME to answer another name)"
                message = f"Host: received {host[:100]!r}, expected one of {sorted(self.allowed)} {hint}"
                return await json_response(ServeError(400, "invalid_host", message))(scope, receive, send)
        await self.app(scope, receive, send)


def check_write_origin(headers, settings: ServeSettings) -> None:
    """Refuse (403) a write a browser sends from another origin, unless a token is required."""
    if settings.token is not None:
        return
    origin = headers.get("origin")
    if origin is not None and origin in settings.cors:
        return
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in _OWN:
        refused = f"Sec-Fetch-Site: {site[:40]}"
    elif origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        refused = f"Origin: {origin[:100]}"
    else:
        return
    allowed = "writes come from this server's own pages, from an origin named with --cors, or with --token"
    raise forbidden(f"cross-origin write refused ({refused}): {allowed}")
