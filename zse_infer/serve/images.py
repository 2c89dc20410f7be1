"""The one gate for every image the server reads (docs/serve-security.md): Pillow restricted to :data:`OPENERS`."""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image

from ..errors import BlankSketchError, ImageError
from ..preprocess import _decode_sketch, sketch_to_rgb  # the library's own decoder: one implementation
from .errors import ServeError, bad_request, too_large

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageFormat:
    name: str  # Pillow's format name
    media_type: str  # what GET /v1/photos/{id} answers with
    suffix: str  # what an upload in this format is stored as


#: The formats the server reads. MPO is how Pillow names the JPEGs of many phone cameras.
_MEDIA = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
_SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "TIFF": ".tif"}  # the others: "." + the media subtype
FORMATS = {name: ImageFormat(name, f"image/{kind}", _SUFFIXES.get(name, f".{kind}")) for name, kind in _MEDIA.items()}
#: the decoders Pillow may try (its JPEG decoder answers "MPO" for a multi-picture JPEG)
OPENERS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
EXPECTED = "PNG, JPEG, WebP, GIF, BMP or TIFF"


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int


def invalid(name: str, reason: str, kind: str = "invalid_image") -> ServeError:
    return ServeError(422, kind, f"{name}: {reason}")


def _no_reprs(text: str) -> str:
    """Library messages sometimes name a buffer by its Python repr ('<_io.BytesIO object at 0x...>')."""
    return re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "the file", text)


def _describe(head: bytes) -> str:
    """What bytes that are no image look like, for the message."""
    try:
        text = head[:200].decode("utf-8").strip()
    except UnicodeDecodeError:
        return "binary data in no known image format"
    if text.lower().startswith(("<svg", "<?xml")):
        return "SVG/XML text (vector drawings are not read: export it as PNG)"
    return f"text starting {text.splitlines()[0][:30]!r}" if text else "whitespace"


def open_image(data: bytes, name: str, limits: ImageLimits):
    """A Pillow image of ``data``, only its header read: an allowed format within ``limits.max_pixels``, else 422."""
    if not data:
        raise invalid(name, "is empty (0 bytes), expected an image")
    try:
        image = Image.open(io.BytesIO(data), formats=OPENERS)
    except Image.UnidentifiedImageError:
        unknown = f"is not an image this server reads: received {_describe(data[:200])}, expected {EXPECTED}"
        raise invalid(name, unknown) from None
    except Image.DecompressionBombError as exc:
        raise invalid(name, f"image is too large ({_no_reprs(str(exc))})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise invalid(name, f"is not a readable image ({_no_reprs(str(exc))})") from None
    w, h = image.size
    if w * h > limits.max_pixels:
        image.close()
        raise invalid(name, f"image is {w}x{h} pixels, expected at most {limits.max_pixels} pixels")
    return image


def check_image(data: bytes, name: str, limits: ImageLimits, decode: bool = True) -> ImageFormat:
    """The format of an image after the gate: header, pixel count, then the whole image decoded (``decode=False``
    stops after the header: the caller's decoder reads the rest), so a broken file is refused naming the upload."""
    if len(data) > limits.max_bytes:
        raise too_large(f"{name}: {len(data)} bytes, expected at most {limits.max_bytes} bytes")
    with open_image(data, name, limits) as image:
        fmt = FORMATS[image.format]
        if decode:
            try:
                image.load()
            except Exception as exc:  # noqa: BLE001 - any decoder failure on these bytes is bad input, not a server error
                reason = _no_reprs(str(exc)) or type(exc).__name__
                raise invalid(name, f"cannot be decoded as {fmt.name} ({reason})") from None
    return fmt


def sniff(stream: BinaryIO) -> ImageFormat | None:
    """The format of a stored file from its header (None: not one of ours); leaves ``stream`` at 0."""
    try:
        with Image.open(stream, formats=OPENERS) as image:
            fmt = FORMATS.get(image.format or "")
    except Exception:  # noqa: BLE001 - whatever it is, it is not served as an image
        fmt = None
    stream.seek(0)
    return fmt


def decode_sketch(data: bytes, name: str, config, limits: ImageLimits) -> np.ndarray:
    """Bytes -> HxWx3 uint8 RGB, checked to be a readable sketch with ink. Raises :class:`ServeError`."""
    check_image(data, name, limits, decode=False)
    try:
        rgb = _decode_sketch(data, name)
        height, width = rgb.shape[:2]
        if height * width > limits.max_pixels:  # OpenCV sniffs formats on its own: hold it to the limit
            raise ImageError(name, f"decodes to {width}x{height} pixels, expected at most {limits.max_pixels}")
        sketch_to_rgb(rgb, config)  # the blank-sketch check (and any crop/resize failure) happens here, not in a batch
        return rgb
    except BlankSketchError as exc:
        raise invalid(name, exc.reason, "blank_sketch") from None
    except ImageError as exc:  # it may name the array or the buffer: name the upload instead
        raise invalid(name, _no_reprs(exc.reason)) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure on uploaded bytes is bad input, not a server error
        _log.info("undecodable upload %s: %r", name, exc)
        raise invalid(name, f"cannot be decoded as an image ({type(exc).__name__})") from None


def from_base64(text: object, field: str, max_bytes: int) -> bytes:
    if not isinstance(text, str) or not text:
        raise bad_request(f"{field}: expected a base64 string (optionally a data: URL)")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) * 3 // 4 > max_bytes + 3:
        raise too_large(f"{field}: about {len(text) * 3 // 4} bytes decoded, expected at most {max_bytes}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(f"{field}: not valid base64 ({exc})") from exc
