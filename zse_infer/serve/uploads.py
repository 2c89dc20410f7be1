"""Reading a request: its image (multipart, base64 JSON or a raw body) or its JSON body against a
schema; and :class:`ClientLimits`, which bounds how much a client may send and how long it may take."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import ServeError, bad_request, too_large, unsupported, validation_message
from .images import from_base64

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
    """ASGI middleware: a request body over the size limit answers 413, one not received within
    ``body_timeout_s`` 408 (ServeErrors raised where the body is read); slow headers: :mod:`.server`."""

    def __init__(self, app, max_upload_bytes: int, body_timeout_s: float):
        self.app = app
        self.limit = max_upload_bytes * 4 // 3 + _FRAMING  # a base64 JSON body of a file at the limit still fits
        self.max_upload_bytes = max_upload_bytes
        self.body_timeout_s = body_timeout_s

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
