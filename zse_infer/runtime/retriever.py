"""``Retriever``: the facade over the indexer, the searcher and the explainer (docs/search.md); no torch here:
everything comes from the export folder's manifest; the gallery is a Lance dataset (:mod:`.gallery.store`)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GalleryError, InputError, check_int
from ..manifest import ENCODER_INPUT, ENCODER_OUTPUT, Manifest
from ..preprocess import ImageSource
from .explainer import DEFAULT_TOP, Explainer, Explanation, Synthesis
from .gallery.location import gallery_location
from .gallery.store import Gallery
from .indexer import COMMIT_SIZE, Indexer, IndexExecutor, IndexReport
from .object_photos import load_photo
from .runners.base import ModelRunners
from .runners.select import open_runners
from .searcher import Searcher

__all__ = ["Hit", "IndexReport", "Retriever"]


@dataclass(frozen=True)
class Hit:
    """One search result. ``score``: the reranked score (0..1) for hits reranked in stage 2 (``stage == 2``), else
    the ret-token cosine; ``row``: the photo's stable row id in the gallery (kept through compaction)."""

    id: str
    path: str | None
    score: float
    rank: int  # 1 = best
    stage: int
    row: int


class Retriever:
    """Index photos into a gallery and search it with sketches (docs/search.md, docs/guarantees.md). Searches,
    ``encode`` and ``relation_scores`` may share one ``Retriever`` across threads: model calls are serialised under a
    lock (TensorRT execution contexts are not re-entrant, and one call already uses every core or the GPU); each search
    reads the one gallery snapshot it started with (retried once if another process's compaction removed it). ``index``,
    ``delete``, ``compact`` and ``refresh`` may run in any thread or process beside searches."""

    def __init__(
        self, export_dir: Path, manifest: Manifest, runners: ModelRunners, gallery: Gallery, relation: str = "auto"
    ):
        self.export_dir = export_dir
        self.manifest = manifest
        self.runners = runners
        self.gallery = gallery
        self._explainer: Explainer | None = None
        self._lock = threading.RLock()  # lazy set-up and gallery snapshot changes
        self._run_lock = threading.RLock()  # model calls
        self.searcher = Searcher(
            manifest, runners, gallery, relation, self.encode, self._lock, self._run_lock, export_dir
        )
        self.indexer = Indexer(manifest, runners, gallery, self._run_lock, self.searcher.photo_side, export_dir)

    @classmethod
    def load(
        cls,
        export_dir: str | os.PathLike,
        gallery: str | os.PathLike | None = None,
        create: bool = False,
        codec: str = "float16",
        backend: str = "auto",
        precision: str | None = None,
        checkpoint: str | os.PathLike | None = None,
        verify: bool = True,
        max_batch: int | None = None,
        threads: int | None = None,
        relation: str = "auto",
        projections: bool = False,
        storage_options: dict[str, str] | None = None,
    ) -> Retriever:
        """Open an export folder (hashes verified) and a gallery (options: docs/search.md). ``gallery``: a folder or an
        object-storage URI (``storage_options`` as Lance takes them); one that holds no gallery is a ``GalleryError``
        unless ``create=True`` (an empty gallery of this model, committed at once); ``None``: a temporary gallery. A
        gallery of another model or token shape is refused. New galleries only: ``codec`` ("float16", "int8", "pq" or
        "none": docs/galleries.md), ``projections=True`` (also store relation-head projections). ``relation``: stage 2's
        graphs, ``"fast"`` (restructured), ``"compat"`` (``relation_head.onnx``) or ``"auto"``."""
        if relation not in ("auto", "fast", "compat"):
            raise InputError(f"relation: received {relation!r}, expected 'auto', 'fast' or 'compat'")
        export_dir = Path(export_dir)
        manifest = Manifest.load(export_dir, verify=verify)
        model_info = cls._model_info(manifest)
        tokens_shape = (manifest.model.num_tokens, manifest.model.width)
        location = None if gallery is None else gallery_location(gallery, storage_options)
        if location is None:
            g = Gallery.create(None, tokens_shape, model_info, codec=codec, projections=projections)
        elif create:
            # Committed now, so other processes see whose gallery it is; an existing one of this model is opened.
            g = Gallery.create(location, tokens_shape, model_info, codec=codec, projections=projections, exist_ok=True)
        elif Gallery.exists(location) or Gallery.is_format1(location):  # format 1: open names the migration command
            g = Gallery.open(location, model=model_info, tokens_shape=tokens_shape)
        else:
            raise GalleryError(
                f"{gallery}: no gallery here; index photos into it first (zse index), or pass create=True"
            )
        runners = open_runners(export_dir, manifest, backend, precision, checkpoint, max_batch, threads)
        return cls(export_dir, manifest, runners, g, relation)

    @staticmethod
    def _model_info(manifest: Manifest) -> dict[str, Any]:
        return {"name": manifest.model.name, "checkpoint_sha256": manifest.source_checkpoint.get("sha256")}

    @property
    def backend(self) -> str:
        return self.runners.backend

    def __len__(self) -> int:
        return len(self.gallery)

    def close(self) -> None:
        self.runners.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def encode(self, images: Sequence[ImageSource], modality: str) -> np.ndarray:
        """Images (paths, PIL images, arrays, bytes) -> float32 tokens (N, T, D)."""
        if modality not in ("sketch", "photo"):
            raise InputError(f"modality: received {modality!r}, expected 'sketch' or 'photo'")
        if not len(images):
            return np.zeros((0, self.manifest.model.num_tokens, self.manifest.model.width), np.float32)
        config = self.manifest.preprocess[modality]
        # s3:// URIs too: a codec-'none' gallery re-encodes its photos from where they were indexed
        pixels = np.stack([load_photo(s, config, self.gallery.storage_options) for s in images])
        with self._run_lock:
            return self.runners.encoder.run({ENCODER_INPUT: pixels})[ENCODER_OUTPUT]

    def relation_scores(self, sketch_tokens: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Relation score of one sketch (T, D) against the given gallery rows (stable row ids), in that order."""
        return self.searcher.relation_scores(sketch_tokens, rows)

    def index(
        self,
        photos: ImageSource | Iterable[ImageSource],
        ids: Sequence[str] | None = None,
        batch_size: int | None = None,
        on_error: str = "raise",
        progress: bool = True,
        commit_size: int = COMMIT_SIZE,
        executor: IndexExecutor | None = None,
    ) -> IndexReport:
        """Encode photos (paths, directories, PIL images, arrays or bytes) into the gallery, one commit per
        ``commit_size`` photos (docs/galleries.md). ``ids`` default to the absolute path, or ``#`` and a content hash
        for in-memory images; a stored id is skipped unless its file changed (or nothing tells that it did not).
        ``on_error="raise"`` raises on the first bad photo (committed batches stay; re-running continues), ``"skip"``
        lists bad photos in the report's ``failed``. ``executor``: e.g. ``RayIndexExecutor`` (docs/ray.md)."""
        return self.indexer.index(photos, ids, batch_size, on_error, progress, commit_size, executor)

    def delete(self, ids: Sequence[str]) -> int:
        """Delete photos by id (one commit); returns how many were deleted."""
        ids = [ids] if isinstance(ids, (str, os.PathLike)) else ids
        return self.gallery.delete([str(i) for i in ids])

    def refresh(self) -> bool:
        """See other processes' commits (a long-lived reader stays on its snapshot until then)."""
        with self._lock:
            return self.gallery.refresh()

    def compact(self, keep_versions_seconds: float | None = None) -> dict[str, Any]:
        """Merge small fragments, drop deleted rows, older rows of ids stored twice, and versions replaced more than
        ``keep_versions_seconds`` ago (default: ``KEEP_VERSIONS_S``, 10 minutes). Safe beside other processes."""
        return self.gallery.compact(keep_versions_seconds)

    def save(self, gallery_dir: str | os.PathLike) -> None:
        """Write the gallery to ``gallery_dir`` (later loads: ``Retriever.load(export, gallery=gallery_dir)``)."""
        with self._lock:
            saved = self.gallery.save(gallery_dir)
            self.gallery = self.searcher.gallery = self.indexer.gallery = saved
            self.searcher.stage1.gallery = saved

    def search(self, sketch: ImageSource, k: int = 10, rerank: int | str | None = None) -> list[Hit]:
        """The ``k`` best gallery photos for one sketch, best first; ``rerank=None``: ``manifest.default_rerank``."""
        return self.search_batch([sketch], k=k, rerank=rerank)[0]

    def search_batch(
        self, sketches: Sequence[ImageSource], k: int = 10, rerank: int | str | None = None
    ) -> list[list[Hit]]:
        check_int(k, "k")
        if isinstance(sketches, (str, os.PathLike, bytes)) or not hasattr(sketches, "__len__"):
            raise InputError("sketches: expected a list of sketches (use search() for one)")
        return [self.search_tokens(t, k, rerank) for t in self.encode(list(sketches), "sketch")]

    def search_tokens(
        self,
        sketch_tokens: np.ndarray,
        k: int = 10,
        rerank: int | str | None = None,
        timing: dict[str, float] | None = None,
    ) -> list[Hit]:
        """Search with an already encoded sketch (T, D); ``timing`` receives the seconds of "stage1" and "stage2"."""
        found = enumerate(self.searcher.search_tokens(sketch_tokens, k, rerank, timing), start=1)
        return [Hit(id=i, path=p, score=s, rank=n, stage=st, row=r) for n, (r, s, st, i, p) in found]

    def _explainer_room(self) -> Explainer:
        """The explainer, fed this retriever's encoder and the gallery's stored tokens."""
        if self._explainer is None:
            self._explainer = Explainer(self.export_dir, self.manifest, self.runners, self.encode, self._stored_tokens)
        return self._explainer

    def _stored_tokens(self, rows) -> np.ndarray:
        # Through the searcher: decoded by the gallery's codec, or re-encoded from the file (codec "none").
        rows = np.asarray(rows, dtype=np.int64)
        return self.searcher.on_snapshot(lambda snap: self.searcher.photo_tokens(snap, rows))

    def explain(
        self,
        sketch: ImageSource,
        hit_or_photo: Hit | ImageSource,
        out: str | os.PathLike | None = None,
        top: int = DEFAULT_TOP,
    ) -> Explanation:
        """Why ``sketch`` matched ``hit_or_photo`` (a :class:`Hit`, whose stored tokens are used, or a photo): anchor
        matches placed on patches, attention heat maps; with ``out``, a PNG of them (docs/explanations.md)."""
        return self._explainer_room().explain(sketch, hit_or_photo, out=out, top=top)

    def synthesize(
        self,
        sketch: ImageSource,
        hits_or_photos: Sequence[Hit | ImageSource],
        out: str | os.PathLike | None = None,
        ink_only: bool = False,
    ) -> Synthesis:
        """The sketch's drawing rebuilt from content patches of one or more hits or photos; ``ink_only``: the stroke
        patches only (default: strokes and what they enclose); with ``out``, a PNG (docs/explanations.md)."""
        return self._explainer_room().synthesize(sketch, hits_or_photos, out=out, ink_only=ink_only)
