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


# Two freehand drawings (Quick, Draw! layout) per concept given: a square and a cross.
FREEHAND = ([[0, 50, 50, 0, 0], [0, 0, 50, 50, 0]], [[0, 50], [0, 50]], [[50, 0], [0, 50]])


@pytest.fixture
def freehand_renders():
    """The synthetic renders plus freehand rows (source 'quickdraw') for c0 and c1, drawn as on the pad;
    returns (renders, {row: strokes})."""
    from tools.pack import RenderSet
    from zse_infer.config import get_config
    from zse_infer.strokes import strokes_to_rgb

    base = make_renders()
    pre = get_config("tiny").preprocess["sketch"]
    drawings = {"c0": [FREEHAND[:1], FREEHAND[1:]], "c1": [FREEHAND[:1], FREEHAND[1:]]}
    rows = [(c, d) for c, ds in drawings.items() for d in ds]
    n = len(rows)
    drawn = RenderSet(
        images=np.stack([strokes_to_rgb(list(d), pre) for _, d in rows]),
        concept=np.array([c for c, _ in rows]),
        source=np.full(n, "quickdraw"),
        modality=np.full(n, "sketch"),
        variant=np.full(n, ""),
        ident=np.array([str(i) for i in range(n)]),
        path=np.array([f"quickdraw/{i}" for i in range(n)]),
    )
    return base.concat(drawn), {len(base) + i: list(d) for i, (_, d) in enumerate(rows)}
