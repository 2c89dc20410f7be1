"""Synthetic images for tests and benchmarks (no data download needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_photo_files(folder: Path, n: int, size: int = 48, seed: int = 0) -> list[Path]:
    """``n`` small random colour images written as PNG files (synthetic photos for indexing tests)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"photo_{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths
