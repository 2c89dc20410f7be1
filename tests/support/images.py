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


def make_shape_dataset(
    root: Path, classes=("circle", "square", "cross"), sketches: int = 2, photos: int = 3, size: int = 96
) -> Path:
    """A tiny folder-per-class set: line-drawn shapes as sketches, filled coloured shapes as photos."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)

    def draw(kind: str, img, fill, outline, width):
        d = ImageDraw.Draw(img)
        m = int(rng.integers(10, 25))
        box = [m, m, size - m, size - m]
        if kind == "circle":
            d.ellipse(box, fill=fill, outline=outline, width=width)
        elif kind == "square":
            d.rectangle(box, fill=fill, outline=outline, width=width)
        else:
            d.line([box[0], box[1], box[2], box[3]], fill=outline, width=width + 4)
            d.line([box[0], box[3], box[2], box[1]], fill=outline, width=width + 4)

    for kind in classes:
        (root / "sketch" / kind).mkdir(parents=True, exist_ok=True)
        (root / "photo" / kind).mkdir(parents=True, exist_ok=True)
        for j in range(sketches):
            img = Image.new("RGB", (size, size), "white")
            draw(kind, img, None, (0, 0, 0), 3)
            img.save(root / "sketch" / kind / f"{j}.png")
        for j in range(photos):
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            img = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(150, 256, 3)))
            draw(kind, img, color, color, 3)
            img.save(root / "photo" / kind / f"{j}.jpg")
    return root
