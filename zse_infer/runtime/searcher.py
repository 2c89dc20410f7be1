"""The searcher (stage 1: ret-token kNN; stage 2: relation-head rerank) and the one implementation of each ranking
(docs/spec.md) for search, evaluation and training: scores come from a callable ``score(query_index, columns)``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..errors import GalleryError, InputError, check_int
from ..manifest import HEAD_INPUTS, HEAD_OUTPUT, Manifest
from ..vectors import l2_normalize
from .gallery.stage1 import Stage1Cache
from .gallery.store import Gallery, Snapshot
from .runners.base import ModelRunners
from .runners.select import relation_scores

#: candidates scored per relation-head call in stage 2 (bounds memory for rerank="all")
RERANK_CHUNK = 256

ScoreFn = Callable[[int, np.ndarray], np.ndarray]
T = TypeVar("T")


def ret_token_distances(sketch_ret: np.ndarray, photo_ret: np.ndarray) -> np.ndarray:
    """(Q, N) L2 distances of L2-normalised ret-tokens (the official "sa" ranking)."""
    cos = l2_normalize(sketch_ret) @ l2_normalize(photo_ret).T
    # |a - b| for unit vectors, monotone in -cos.
    return np.sqrt(np.maximum(2.0 - 2.0 * cos, 0.0))


def ret_token_cosine(ret_distance: np.ndarray) -> np.ndarray:
    """The cosines behind :func:`ret_token_distances` (its inverse: ``|a - b|^2 = 2 - 2 cos``)."""
    return 1.0 - np.asarray(ret_distance, np.float64) ** 2 / 2.0


def blend_scores(relation: np.ndarray, cosine: np.ndarray | None, blend: float) -> np.ndarray:
    """Reranked scores: ``(1 - blend) * relation + blend * (1 + cosine) / 2``, in [0, 1]; ``blend`` 0 (the official
    ranking) is the relation score alone and ignores ``cosine``; an export may record another (docs/search.md)."""
    relation = np.asarray(relation, np.float64)
    return (1.0 - blend) * relation + blend * (1.0 + np.asarray(cosine, np.float64)) / 2.0 if blend else relation


def rerank_order(scores: np.ndarray) -> np.ndarray:
    """Order of reranked candidates: highest (blended) score first, equal scores in stage-1 order."""
    return np.lexsort((np.arange(len(scores)), -np.asarray(scores, np.float64)))


def two_stage_distances(ret_distance: np.ndarray, rerank: int, score: ScoreFn, blend: float = 0.0) -> np.ndarray:
    """(Q, N): the top ``rerank`` of each ret-token row get minus their :func:`blend_scores` (in [-1, 0]);
    the rest 1 + ret distance (in [1, 3]), i.e. behind every reranked photo, in ret-token order."""
    distance = 1.0 + np.asarray(ret_distance, np.float64)
    k = min(int(rerank), distance.shape[1])
    for q in range(distance.shape[0]):
        top = np.argsort(ret_distance[q], kind="stable")[:k]
        if k:
            cosine = ret_token_cosine(ret_distance[q, top]) if blend else None
            distance[q, top] = -blend_scores(score(q, top), cosine, blend)
    return distance


def exhaustive_distances(n_queries: int, n_gallery: int, score: ScoreFn) -> np.ndarray:
    """(Q, N) minus the relation score of every pair (the official "rn" ranking)."""
    cols = np.arange(n_gallery)
    rows = [-np.asarray(score(q, cols), np.float64) for q in range(n_queries)]
    return np.stack(rows) if rows else np.zeros((0, n_gallery))


# A gallery created with projections=True stores each photo's relation_photo outputs as one
# (3N - 1, D) array: photo_k (N rows), photo_q (N - 1: token 0's query row is never used), photo_v (N).
def pack_projections(side: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([side["photo_k"], side["photo_q"], side["photo_v"]], axis=1)


def unpack_projections(proj: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """The three float32 parts of packed projections (float16 as stored, or float32): one conversion pass each."""
    parts = {"photo_k": proj[:, :n], "photo_q": proj[:, n : 2 * n - 1], "photo_v": proj[:, 2 * n - 1 :]}
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in parts.items()}


@dataclass(eq=False)
class Searcher:
    """Stage 1 over a gallery snapshot, stage 2 with the relation head; thread-safe as ``Retriever`` describes."""

    manifest: Manifest
    runners: ModelRunners
    gallery: Gallery
    relation: str
    encode: Callable[[list, str], np.ndarray]  # for codec "none": re-encode candidates from their files
    lock: threading.RLock
    run_lock: threading.RLock
    export_dir: Any = None

    def __post_init__(self) -> None:
        self.stage1 = Stage1Cache(self.gallery)
        self._fast: dict | None = None

    def fast_runners(self) -> dict | None:
        """Runners of the restructured relation graphs on this backend, or None where the compatibility graph runs."""
        with self.lock:
            if self._fast is None:
                from .runners.select import open_relation_runners

                fast = None
                if self.relation != "compat":
                    fast = open_relation_runners(self.export_dir, self.manifest, self.runners)
                if self.relation == "fast" and fast is None:
                    raise InputError(
                        "relation='fast' needs the relation_sketch/photo/pair graphs (re-export with this version; "
                        "for TensorRT, their engines: zse-export build) on an fp32 ONNX Runtime or TensorRT backend "
                        f"(this retriever runs {self.runners.backend}, {self.runners.precision})"
                    )
                self._fast = fast or {}
            return self._fast or None

    def photo_side(self, photo_tokens: np.ndarray) -> dict[str, np.ndarray]:
        fast = self.fast_runners()
        if fast is None:  # callers ask only when projections are stored, which needs these graphs
            raise InputError("photo-side projections need the relation_photo graph (re-export with this version)")
        with self.run_lock:
            return fast["relation_photo"].run({"photo_tokens": photo_tokens})

    def photo_tokens(self, snap: Snapshot, rowids: np.ndarray) -> np.ndarray:
        """Tokens of the given rows: decoded from the gallery, or re-encoded from their files for codec "none"."""
        if snap.codec.stores_tokens:
            return snap.tokens(rowids)
        paths = snap.take(rowids, ["path"])["path"]
        missing = [i for i, p in zip(rowids.tolist(), paths, strict=True) if p is None]
        if missing:
            problem = "indexed from memory into a codec-'none' gallery, so they cannot be re-encoded"
            raise GalleryError(f"rows {missing[:5]}: {problem}")
        return self.encode(paths, "photo")

    def relation_scores(self, sketch_tokens: np.ndarray, rowids, snap: Snapshot | None = None) -> np.ndarray:
        """Relation score of one sketch (T, D) against the given gallery rows (stable row ids), in that order."""
        if snap is None:
            return self.on_snapshot(lambda pinned: self.relation_scores(sketch_tokens, rowids, pinned))
        rowids = np.asarray(rowids, dtype=np.int64)
        scores = np.empty(len(rowids), dtype=np.float32)
        fast = self.fast_runners()
        sketch = np.ascontiguousarray(sketch_tokens[None], dtype=np.float32)
        if fast:
            with self.run_lock:  # once per query: the sketch's projections, broadcast over every candidate
                sketch_side = fast["relation_sketch"].run({"sketch_tokens": sketch})
        stored = bool(fast) and self.gallery.projections  # computed at index time
        proj: np.ndarray | None
        for start in range(0, len(rowids), RERANK_CHUNK):
            chunk = rowids[start : start + RERANK_CHUNK]
            if stored and snap.codec.stores_tokens:  # read with the tokens, in one sorted take
                photo, proj = snap.tokens_and_projections(chunk, self.gallery.proj_shape)
            else:
                photo = self.photo_tokens(snap, chunk)
                proj = snap.projections(chunk, self.gallery.proj_shape) if stored else None
            if not fast:
                tiled = np.ascontiguousarray(np.broadcast_to(sketch, photo.shape))
                feeds = {HEAD_INPUTS[0]: tiled, HEAD_INPUTS[1]: photo}
                with self.run_lock:
                    chunk_scores = self.runners.relation_head.run(feeds)[HEAD_OUTPUT]
            else:
                photo_side = unpack_projections(proj, self.manifest.model.num_tokens) if proj is not None else None
                with self.run_lock:
                    chunk_scores = relation_scores(fast, sketch, photo, photo_side, sketch_side)
            scores[start : start + len(chunk)] = chunk_scores
        return scores

    def on_snapshot(self, work: Callable[[Snapshot], T]) -> T:
        """``work(snapshot)`` on the gallery's pinned, non-empty version (retried as Gallery.read says)."""

        def checked(snap: Snapshot):
            if len(snap) == 0:
                raise GalleryError("the gallery is empty: index photos first")
            return work(snap)

        return self.gallery.read(checked)

    def parse_rerank(self, rerank: int | str | None, n: int) -> int:
        rerank = self.manifest.default_rerank if rerank is None else rerank
        return n if rerank == "all" else min(check_int(rerank, "rerank", 0, "an integer >= 0 or 'all'"), n)

    def search_tokens(
        self, sketch_tokens: np.ndarray, k: int, rerank: int | str | None, timing: dict[str, float] | None = None
    ) -> list[tuple[int, float, int, str, str | None]]:
        """(rowid, score, stage, id, path) of the ``k`` best rows for one encoded sketch (T, D)."""

        def search(snap: Snapshot) -> list[tuple[int, float, int, str, str | None]]:
            t0 = time.perf_counter()
            n_rerank = self.parse_rerank(rerank, len(snap))
            depth = min(max(k, n_rerank), len(snap))
            query = l2_normalize(sketch_tokens[0])[None]
            with self.lock:
                index = self.stage1.index_for(snap)
            cos, rowids = index.search(query, depth)
            found = rowids[0] >= 0  # an approximate index may find fewer than asked
            cos, rowids = cos[0][found], rowids[0][found]
            n_rerank = min(n_rerank, len(rowids))
            t1 = time.perf_counter()
            hits: list[tuple[int, float, int]] = []
            if n_rerank:
                candidates = rowids[:n_rerank]
                relation = self.relation_scores(sketch_tokens, candidates, snap)
                scores = blend_scores(relation, cos[:n_rerank], self.manifest.default_blend)
                hits = [(int(candidates[i]), float(scores[i]), 2) for i in rerank_order(scores)]
            hits = (hits + [(int(r), float(c), 1) for r, c in zip(rowids[n_rerank:], cos[n_rerank:], strict=True)])[:k]
            if timing is not None:
                timing.update(stage1=t1 - t0, stage2=time.perf_counter() - t1)
            info = snap.take(np.array([h[0] for h in hits], np.int64), ["id", "path"])
            return [(r, s, st, i, p) for (r, s, st), i, p in zip(hits, info["id"], info["path"], strict=True)]

        return self.on_snapshot(search)
