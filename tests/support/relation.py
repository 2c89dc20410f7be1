"""Checking the restructured relation head (``relation_sketch/photo/pair``) against the plain relation head."""

from __future__ import annotations

import numpy as np


def rerank_gap(fast, runners, manifest, photos: int, seed: int = 0) -> float:
    """Max abs difference between ``relation_scores`` on ``fast`` and ``runners.relation_head`` on the same pairs.

    One random sketch's tokens against ``photos`` random photos' tokens (the model's token count and width).
    """
    from zse_infer.runtime.runners.select import relation_scores

    rng = np.random.default_rng(seed)
    n, d = manifest.model.num_tokens, manifest.model.width
    sketch = rng.standard_normal((1, n, d)).astype(np.float32)
    photo_tokens = rng.standard_normal((photos, n, d)).astype(np.float32)
    got = relation_scores(fast, sketch, photo_tokens)
    pairs = {"sketch_tokens": np.repeat(sketch, photos, 0), "photo_tokens": photo_tokens}
    want = runners.relation_head.run(pairs)["score"]
    return float(np.abs(got - want).max())
