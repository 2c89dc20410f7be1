"""Synthetic render sets for training/evaluation tests (random pixels, no files)."""

import numpy as np
import pytest

SOURCES_BY_MODALITY = (
    ("tabler", "sketch"),
    ("lucide", "sketch"),
    ("fluent-emoji-high-contrast", "sketch"),
    ("twemoji", "photo"),
    ("noto", "photo"),
    ("fluent-emoji-flat", "photo"),
)


def make_renders(size: int = 64, concepts: int = 4, seed: int = 0):
    from tools.pack import RenderSet

    rng = np.random.default_rng(seed)
    rows = [(f"c{c}", s, m) for c in range(concepts) for s, m in SOURCES_BY_MODALITY]
    n = len(rows)
    return RenderSet(
        images=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        concept=np.array([r[0] for r in rows]),
        source=np.array([r[1] for r in rows]),
        modality=np.array([r[2] for r in rows]),
        variant=np.array([""] * n),
        ident=np.array(["x"] * n),
        path=np.array([f"{r[1]}/{r[0]}.png" for r in rows]),
    )


@pytest.fixture
def renders():
    return make_renders()
