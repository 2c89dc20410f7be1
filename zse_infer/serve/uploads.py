"""Reading a request's image: a multipart file field, a JSON body with base64, or a raw image body.

Sizes are enforced twice: :class:`BodyLimit` stops reading a request body
that grows past the limit (whatever its framing), and each decoded file is
checked against ``max_upload_bytes`` itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .decode import from_base64
from .errors import ServeError, bad_request, too_large

#: room for multipart boundaries and JSON around a file (base64 adds a third)
_FRAMING = 64 * 1024


@dataclass
class Upload:
    data: bytes
    name: str
    fields: dict[str, str] = field(default_factory=dict)  # other (text) fields of the form or JSON body


class BodyLimit:
    """ASGI middleware: a request body longer than ``limit`` bytes answers 413 (ServeError) when read."""

    def __init__(self, app, max_upload_bytes: int):
        self.app = app
        self.limit = max_upload_bytes * 4 // 3 + _FRAMING  # a base64 JSON body of a file at the limit still fits
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise too_large(f"request body: over {received} bytes, expected an upload of at most {self.max_upload_bytes} bytes")
            return message

        await self.app(scope, limited, send)


async def read_upload(request, file_field: str, max_bytes: int, text_fields: tuple[str, ...] = ()) -> Upload:
    """The image in ``file_field`` of a multipart form, or ``image`` of a JSON body, or a raw image body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=4, max_fields=16, max_part_size=64 * 1024)
        part = form.get(file_field)
        if part is None or isinstance(part, str):
            raise bad_request(f"multipart field '{file_field}': missing, expected an image file")
        data = await part.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str) and k in text_fields}
        name = f"upload '{part.filename or file_field}'"
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
        raise ServeError(
            415, "unsupported_media_type",
            f"Content-Type: received {ctype or 'none'!r}, expected multipart/form-data (field '{file_field}'), "
            "application/json ({\"image\": base64}) or an image/* body",
        )
    if len(data) > max_bytes:
        raise too_large(f"{name}: {len(data)} bytes, expected at most {max_bytes} bytes")
    return Upload(data, name, fields)
