"""Token codecs: each photo's (T, D) tokens as a fixed-size byte row (docs/galleries.md, "Token codecs"). A PCA
codec is trained on the first committed batch only (thousands of token vectors: stable; retraining would change every
stored row), its tables committed with those rows (``Gallery._first_trained_commit``)."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass

import numpy as np

from ...errors import GalleryError, InputError

CODEC_NAMES = ("float16", "int8", "pq", "none")
DEFAULT_PCA = 32
#: photos' tokens used to train a PCA codec (at most; the first batch usually has fewer)
TRAIN_MAX_PHOTOS = 4096


def canonical_name(name: str) -> str:
    """User-facing codec name -> canonical ("pq" -> "pca32-sq8"); InputError for unknown names."""
    if name == "pq":
        return f"pca{DEFAULT_PCA}-sq8"
    if name in ("float16", "int8", "none") or re.fullmatch(r"pca[1-9][0-9]*-sq8", str(name)):
        return name
    raise InputError(f"codec: received {name!r}, expected one of {', '.join(CODEC_NAMES)} (or pca<K>-sq8)")


@dataclass
class Codec:
    name: str
    tokens_shape: tuple[int, int]
    tables: dict[str, np.ndarray] | None = None  # trained codecs only

    @property
    def stores_tokens(self) -> bool:
        return self.name != "none"

    @property
    def needs_training(self) -> bool:
        return self.name.startswith("pca") and self.tables is None

    @property
    def components(self) -> int:
        return int(self.name[3:].split("-")[0])

    @property
    def nbytes(self) -> int:
        t, d = self.tokens_shape
        pca = t * self.components if self.name.startswith("pca") else 0
        return {"float16": 2 * t * d, "int8": t * d + 4 * t}.get(self.name, pca)

    def train(self, tokens: np.ndarray) -> None:
        """Fit the PCA and component ranges on (n, T, D) tokens (in numpy: FAISS's PCA drops the mean decoding adds)."""
        if not self.name.startswith("pca"):
            return
        d, k = self.tokens_shape[1], self.components
        if k > d:
            raise InputError(f"codec {self.name}: {k} components, but tokens have only {d} dimensions")
        x = np.asarray(tokens[:TRAIN_MAX_PHOTOS], np.float64).reshape(-1, d)
        mean = x.mean(axis=0)
        # Eigenvectors of the covariance, largest variance first.
        values, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False))
        basis = vectors[:, np.argsort(values)[::-1][:k]].T.astype(np.float32)  # (k, D)
        proj = (x - mean).astype(np.float32) @ basis.T
        lo, hi = proj.min(axis=0), proj.max(axis=0)
        margin = 0.05 * (hi - lo) + 1e-6  # later photos may reach slightly further than the first batch
        ranges = {"lo": (lo - margin).astype(np.float32), "hi": (hi + margin).astype(np.float32)}
        self.tables = {"mean": mean.astype(np.float32), "basis": basis, **ranges}

    def encode(self, tokens: np.ndarray) -> np.ndarray:
        """(n, T, D) float -> (n, nbytes) uint8."""
        tokens = np.asarray(tokens, np.float32)
        n = len(tokens)
        if self.name == "float16":
            return tokens.astype(np.float16).view(np.uint8).reshape(n, -1)
        if self.name == "int8":
            scale = np.abs(tokens).max(axis=2) / 127.0  # (n, T)
            safe = np.where(scale > 0, scale, 1.0)[..., None]
            q = np.clip(np.rint(tokens / safe), -127, 127).astype(np.int8)
            scales = scale.astype(np.float32).view(np.uint8).reshape(n, -1)
            return np.concatenate([scales, q.view(np.uint8).reshape(n, -1)], axis=1)
        if self.name.startswith("pca"):
            tb = self._tables()
            proj = (tokens - tb["mean"]) @ tb["basis"].T  # (n, T, k)
            unit = (proj - tb["lo"]) / (tb["hi"] - tb["lo"])
            return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8).reshape(n, -1)
        raise GalleryError(f"codec {self.name!r} stores no tokens")

    def decode(self, rows: np.ndarray) -> np.ndarray:
        """(n, nbytes) uint8 -> (n, T, D) float32."""
        rows = np.ascontiguousarray(rows, np.uint8)
        n, (t, d) = len(rows), self.tokens_shape
        if self.name == "float16":
            return rows.view(np.float16).reshape(n, t, d).astype(np.float32)
        if self.name == "int8":
            scale = rows[:, : 4 * t].copy().view(np.float32).reshape(n, t, 1)
            return rows[:, 4 * t :].view(np.int8).reshape(n, t, d).astype(np.float32) * scale
        if self.name.startswith("pca"):
            tb = self._tables()
            unit = rows.reshape(n, t, -1).astype(np.float32) / 255.0
            proj = tb["lo"] + unit * (tb["hi"] - tb["lo"])
            return proj @ tb["basis"] + tb["mean"]
        raise GalleryError(f"codec {self.name!r} stores no tokens")

    def _tables(self) -> dict[str, np.ndarray]:
        if self.tables is None:
            raise GalleryError(f"codec {self.name}: not trained yet (it is trained on the gallery's first batch)")
        return self.tables

    def tables_text(self) -> str:
        """The trained tables as text for the schema metadata ('' when there are none)."""
        if not self.tables:
            return ""
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **self.tables)
        return base64.b64encode(buf.getvalue()).decode("ascii")

    @classmethod
    def from_metadata(cls, name: str, tokens_shape: tuple[int, int], tables_text: str) -> Codec:
        """The codec a gallery's schema metadata describes (its tables, once trained)."""
        codec = cls(canonical_name(name), (int(tokens_shape[0]), int(tokens_shape[1])))
        if tables_text:
            with np.load(io.BytesIO(base64.b64decode(tables_text)), allow_pickle=False) as npz:
                codec.tables = {k: npz[k] for k in npz.files}
        return codec  # untrained (no tables) while its gallery is still empty: the first rows train it
