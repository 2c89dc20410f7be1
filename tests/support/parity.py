"""The parity weights of docs/spec.md ("Parity vectors"), rebuilt without PyTorch's RNG.

For every official key: ``default_rng(crc32(key) ^ seed).standard_normal(shape)``
(float64), scaled by a rule that depends on the key, then cast to float32.
The official code run on these weights produced ``golden/official_seed1.npz``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def read_key_list(path: str | Path) -> list[tuple[str, tuple[int, ...]]]:
    """``official_state_dict.tsv`` -> [(key, shape)]; lines are ``key<TAB>AxBxC<TAB>dtype``."""
    keys = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        key, shape, *_ = line.split("\t")
        keys.append((key, tuple(int(d) for d in shape.split("x"))))
    return keys


def parity_tensor(key: str, shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(zlib.crc32(key.encode()) ^ seed).standard_normal(shape)
    last = key.rsplit(".", 1)[-1]
    if last == "a" or ("norm" in key and key.endswith(".weight")):
        x = 1 + 0.02 * x
    elif len(shape) >= 2 and not key.endswith(("pos_embedding", ".cls")):
        x = x / math.sqrt(math.prod(shape[1:]))
    else:
        x = 0.02 * x
    return x.astype(np.float32)


def parity_state_dict(keys: Iterable[tuple[str, tuple[int, ...]]], seed: int = 1) -> dict[str, np.ndarray]:
    """An official-layout state dict (numpy float32) for the given keys."""
    return {key: parity_tensor(key, shape, seed) for key, shape in keys}
