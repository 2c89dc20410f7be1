"""Turning what callers pass (paths, directories, list files, in-memory images) into a flat list."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import numpy as np

from ..errors import InputError
from ..preprocess import ImageSource, is_pil_image
from .gallery.location import URI_SCHEME

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def _is_single(source) -> bool:
    one = (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)
    return isinstance(source, one) or is_pil_image(source) or hasattr(source, "read")


def list_images(directory: str | os.PathLike) -> list[str]:
    """Image files below ``directory``, recursively, in sorted (reproducible) order."""
    found = [p for p in Path(directory).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return [str(p) for p in sorted(found)]


def expand_sources(sources: ImageSource | Iterable[ImageSource]) -> list[ImageSource]:
    """One source or many -> a list; directories are expanded to the images below them."""
    items = [sources] if _is_single(sources) else list(cast(Iterable[ImageSource], sources))
    out: list[ImageSource] = []
    for item in items:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            images = list_images(item)
            if not images:
                raise InputError(f"{item}: directory holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
            out.extend(images)
        else:
            out.append(item)
    return out


def read_list_file(path: str | os.PathLike) -> list[str]:
    """Image paths, one a line ('#' comments, blanks ignored), relative ones to the list file's folder; URIs kept."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: list file not found")
    lines = [raw.strip() for raw in path.read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    # s3://bucket/key stays as it is (as a Path it would lose a '/'); an absolute path replaces the folder
    return [line if URI_SCHEME.match(line) else str(path.parent / line) for line in lines]
