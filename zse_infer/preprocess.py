"""Images (path, bytes, binary file, PIL image or uint8 array) -> the encoder's float32 (3, size, size) input, without
torch, exactly as the official code (docs/spec.md, "Preprocessing"); failures are :class:`~.errors.ImageError`."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

from .config import PreprocessConfig
from .errors import BlankSketchError, ConfigError, ImageError, ImageNotFoundError, InputError

if TYPE_CHECKING:
    from PIL import Image as PILImage

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray | Any

DEFAULT_PREPROCESS = {"sketch": PreprocessConfig(kind="sketch"), "photo": PreprocessConfig(kind="photo")}


def describe_source(source: ImageSource) -> str:
    """A short, human-readable name for an image source, used in error messages and hit paths."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<bytes: {len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {tuple(source.shape)} {source.dtype}>"
    if is_pil_image(source):
        return f"<PIL image {source.mode} {source.size[0]}x{source.size[1]}>"
    if hasattr(source, "read"):
        return f"<file {getattr(source, 'name', type(source).__name__)}>"
    return f"<{type(source).__name__}>"


def source_path(source: ImageSource) -> str | None:
    """The file path of a source, or None for in-memory input."""
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else None


def is_pil_image(obj: Any) -> TypeGuard[PILImage.Image]:
    from PIL import Image

    return isinstance(obj, Image.Image)


def _read_bytes(source: ImageSource) -> bytes:
    """The encoded bytes of a path / bytes / file-object source."""
    name = describe_source(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageNotFoundError(name, "file not found")
        if path.is_dir():
            raise ImageError(name, "is a directory, expected an image file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageError(name, f"cannot be read ({exc.strerror or exc})") from exc
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise InputError(f"{name}: file object must be opened in binary mode")
        data = bytes(data)
    else:
        expected = "expected a path, bytes, a binary file, a PIL image or a numpy array"
        raise InputError(f"image source: {expected}, received {type(source).__name__}")
    if not data:
        raise ImageError(name, "is empty (0 bytes), expected an image")
    return data


def _open_pil(data: bytes, name: str) -> PILImage.Image:
    """Open and fully decode encoded bytes with PIL; truncated or foreign data raise ImageError."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # PIL decodes lazily: force it so truncation shows up here
    except Image.DecompressionBombError as exc:
        raise ImageError(name, f"image is too large ({exc})") from exc
    except Image.UnidentifiedImageError:
        # PIL's own message names its BytesIO buffer ("<_io.BytesIO object at 0x...>"), not the file.
        expected = "expected an image file (PNG, JPEG, BMP, GIF, TIFF or WebP)"
        raise ImageError(name, f"not an image that Pillow can read: received {_sniff(data)}, {expected}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(name, f"is not a readable image ({_without_buffer(exc)})") from exc
    return image


def _sniff(data: bytes) -> str:
    """What the bytes look like, for the message: text shows its first line, binary its size."""
    try:
        first = data[:200].decode("utf-8").strip().splitlines()
    except UnicodeDecodeError:
        return f"{len(data)} bytes of binary data in no known image format"
    return f"text ({len(data)} bytes, starting {first[0][:30]!r})" if first else f"{len(data)} bytes of whitespace"


def _without_buffer(exc: Exception) -> str:
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the file", str(exc))


def _array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    """An HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) uint8 array -> contiguous HxWx3 RGB uint8."""
    if array.dtype != np.uint8:
        raise InputError(f"{name}: expected a uint8 image array, received dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        shapes = "(H, W), (H, W, 3) or (H, W, 4)"
        raise InputError(f"{name}: expected an image array of shape {shapes}, received {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def _normalise(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """HxWx3 uint8 -> (3,H,W) float32, in float32 in the order of torchvision's ToTensor + Normalize, so the
    result is bit-identical to the official pipeline."""
    mean, std = np.asarray(config.mean, dtype=np.float32), np.asarray(config.std, dtype=np.float32)
    x = (rgb.astype(np.float32) / np.float32(255.0) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def photo_to_rgb(source: ImageSource, config: PreprocessConfig) -> np.ndarray:
    """The resized HxWx3 uint8 RGB photo, before normalisation (used by explanations too)."""
    from PIL import Image

    name = describe_source(source)
    if is_pil_image(source):
        image = source
    elif isinstance(source, np.ndarray):
        _array_to_rgb(source, name)  # validates dtype and shape
        image = Image.fromarray(source[:, :, 0] if source.ndim == 3 and source.shape[2] == 1 else source)
    else:
        image = _open_pil(_read_bytes(source), name)
    try:
        # Resize *before* convert('RGB'), with PIL's default filter: the official order.
        resized = image.resize((config.size, config.size)).convert("RGB")
    except (OSError, ValueError) as exc:
        raise ImageError(name, f"cannot be resized or converted to RGB ({exc})") from exc
    return np.asarray(resized, dtype=np.uint8)


def load_photo(source: ImageSource, config: PreprocessConfig | None = None) -> np.ndarray:
    """A photo as float32 (3, size, size), exactly as the official test loader computes it."""
    config = _config_for(config, "photo")
    return _normalise(photo_to_rgb(source, config), config)


def _decode_sketch(source: ImageSource, name: str) -> np.ndarray:
    """Sketch pixels as HxWx3 uint8 RGB, decoded by OpenCV as the official code does."""
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, name)
    if is_pil_image(source):
        return _array_to_rgb(np.asarray(source.convert("RGB")), name)
    import cv2

    data = _read_bytes(source)
    # Decode once with PIL to reject truncated files: OpenCV silently fills the
    # missing part of a truncated JPEG with grey and returns an image.
    _open_pil(data, name)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(name, "OpenCV cannot decode this image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def sketch_to_rgb(source: ImageSource, config: PreprocessConfig) -> np.ndarray:
    """The cropped, resized and padded HxWx3 uint8 sketch, before normalisation."""
    import cv2

    name = describe_source(source)
    rgb = _decode_sketch(source, name)
    h, w = rgb.shape[:2]
    # 1. crop to the ink. Slicing as the official code does: the end index is
    #    `max + margin` (exclusive), so the box grows margin-1 px after the ink.
    ink_y, ink_x = np.nonzero(rgb.sum(axis=2, dtype=np.int64) <= config.ink_threshold)
    if ink_y.size == 0:
        no_ink = f"sketch has no ink (no pixel with R+G+B <= {config.ink_threshold})"
        raise BlankSketchError(name, f"{no_ink}; expected dark strokes on a light background")
    m = config.crop_margin
    crop = rgb[max(0, ink_y.min() - m) : min(h, ink_y.max() + m), max(0, ink_x.min() - m) : min(w, ink_x.max() + m)]
    # 2. resize keeping the aspect ratio, long side = size. Same float expression
    #    as the official code (int(size / ratio)) so rounding matches.
    (ch, cw), size = crop.shape[:2], config.size
    ratio = ch / cw
    if ch > cw:
        new_w, new_h = max(1, int(size / ratio)), size
    else:
        new_w, new_h = size, max(1, int(size * ratio))
    resized = cv2.resize(crop, (new_w, new_h))  # cv2 default: bilinear
    # 3. pad the short side to a square with the image's maximum value (the odd pixel after).
    side = max(resized.shape[:2])
    pad = [((side - n) // 2, side - n - (side - n) // 2) for n in resized.shape[:2]] + [(0, 0)]
    return np.pad(resized, pad, mode="constant", constant_values=resized.max())


def load_sketch(source: ImageSource, config: PreprocessConfig | None = None) -> np.ndarray:
    """A sketch as float32 (3, size, size), exactly as the official test loader computes it."""
    config = _config_for(config, "sketch")
    return _normalise(sketch_to_rgb(source, config), config)


_LOADERS = {"sketch": load_sketch, "photo": load_photo}
_TO_RGB = {"sketch": sketch_to_rgb, "photo": photo_to_rgb}


def _config_for(config: PreprocessConfig | None, modality: str) -> PreprocessConfig:
    if config is None:
        return DEFAULT_PREPROCESS[modality]
    if not isinstance(config, PreprocessConfig):
        raise ConfigError(f"preprocess config: expected a PreprocessConfig, received {type(config).__name__}")
    if config.kind != modality:
        raise ConfigError(f"preprocess config is for {config.kind!r} images, expected {modality!r}")
    return config


def load_image(source: ImageSource, config: PreprocessConfig) -> np.ndarray:
    """Dispatch on ``config.kind``: a sketch or photo as float32 (3, size, size)."""
    if config.kind not in _LOADERS:
        raise ConfigError(f"preprocess kind {config.kind!r}: expected 'sketch' or 'photo'")
    return _LOADERS[config.kind](source, config)


def image_to_rgb(source: ImageSource, config: PreprocessConfig) -> np.ndarray:
    """The uint8 RGB image exactly as the encoder sees it (before normalisation)."""
    return _TO_RGB[_config_for(config, config.kind).kind](source, config)


def load_batch(sources: Iterable[ImageSource], config: PreprocessConfig) -> np.ndarray:
    """Several images as one float32 (N, 3, size, size) array."""
    arrays = [load_image(s, config) for s in sources]
    return np.stack(arrays) if arrays else np.zeros((0, 3, config.size, config.size), dtype=np.float32)
