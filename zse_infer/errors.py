"""The one error hierarchy of zse-infer: every failure a user can cause is a :class:`ZseError` naming the input and
what was expected; subclasses also derive from the closest built-in exception (``ValueError``, ``ImportError``, ...)."""

from __future__ import annotations

from numbers import Integral
from pathlib import Path
from typing import Any


class ZseError(Exception):
    """Base class of every error raised by zse-infer."""


class ConfigError(ZseError, ValueError):
    """A model or preprocessing configuration is unknown or inconsistent."""


class InputError(ZseError, ValueError):
    """An argument passed by the caller has the wrong type, shape or value."""


class ImageError(InputError):
    """An image could not be read or decoded; ``source`` is the path (or a short description of an in-memory input)."""

    def __init__(self, source: str | Path, reason: str):
        self.source, self.reason = str(source), reason
        super().__init__(f"{self.source}: {reason}")


class ImageNotFoundError(ImageError, FileNotFoundError):
    """The image file does not exist."""


class BlankSketchError(ImageError):
    """A sketch has no ink: nothing darker than the ink threshold."""


class CheckpointError(ZseError):
    """A checkpoint is missing, unreadable, or does not fit the model config."""


class DependencyError(ZseError, ImportError):
    """An optional dependency needed for this operation is not installed."""


class ExportError(ZseError):
    """Exporting a model to ONNX (or building an engine) failed."""


class ManifestError(ZseError):
    """An export folder's manifest is missing, malformed or inconsistent."""


class IntegrityError(ManifestError):
    """A file in an export folder or gallery does not match its recorded hash."""


class BackendError(ZseError):
    """A runtime backend cannot be created or was given unsuitable inputs."""


class GalleryError(ZseError):
    """A gallery on disk is missing, malformed, or cannot be written."""


class GalleryUnavailableError(GalleryError):
    """The gallery store could not be read or written just now, through no fault of the caller (storage I/O error,
    a version compacted away while read, commits that kept conflicting); retrying later normally succeeds (a server
    answers 503 with Retry-After). A plain :class:`GalleryError` is about the gallery's state (empty, missing, ...)."""


def check_int(value: Any, name: str, minimum: int = 1, expected: str = "") -> int:
    """``value`` as an int if it is an integer >= ``minimum`` (numpy's too, never a bool), else :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise InputError(f"{name}: received {value!r}, expected {expected or f'an integer >= {minimum}'}")
    return int(value)


def check_blend(value: Any, name: str, error: type[ZseError] = InputError) -> float:
    """``value`` as a float if it is a number in [0, 1] (the ret-token cosine's share of a score), else ``error``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise error(f"{name}: received {value!r}, expected a number from 0 to 1")
    return float(value)


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency or raise a :class:`DependencyError` naming ``purpose`` and the pip ``extra``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        install = f"Install it with: pip install 'zse-infer[{extra}]'"
        raise DependencyError(
            f"{purpose} needs the '{module}' package, which is not installed ({exc}). {install}"
        ) from exc


class DatasetError(ZseError):
    """A dataset (split lists, class lists, image folders) is missing or malformed."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset folder, split file or listed image does not exist."""


class SplitFileError(DatasetError, ValueError):
    """A line of a split or class list cannot be used; names the file and line number."""

    def __init__(self, path: str | Path, line: int, reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        super().__init__(f"{self.path}, line {line}: {reason}")
