"""``Retriever``: the thin batched runtime pipelines use.

    from zse_infer import Retriever
    r = Retriever.load("engines/zse_vit_b16", gallery="gallery/")
    r.index(["photos/"])                      # encode and store photos (appends, atomically)
    hits = r.search("sketch.png", k=10, rerank=100)

Search is two-stage: stage 1 ranks the whole gallery by ret-token cosine
similarity; stage 2 reranks the top ``rerank`` candidates with the relation
head and returns them by relation score. ``rerank=0`` is stage 1 only;
``rerank="all"`` is the official exhaustive ranking.

No torch here: everything comes from the export folder's manifest.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .gallery.stage1_index import RetIndex
from ..errors import GalleryError, InputError, ZseError
from .gallery.format1 import Gallery
from ..manifest import ENCODER_INPUT, ENCODER_OUTPUT, HEAD_INPUTS, HEAD_OUTPUT, Manifest
from .explainer import DEFAULT_TOP, Explainer, Explanation, Synthesis
from ..preprocess import ImageSource, describe_source, image_to_rgb, load_image, source_path
from .runners.base import ModelRunners
from .runners.select import open_runners
from .photo_sources import expand_sources
from ..vectors import l2_normalize

_log = logging.getLogger(__name__)

#: candidates scored per relation-head call in stage 2 (bounds memory for rerank="all")
RERANK_CHUNK = 256
#: photos encoded and written per gallery shard while indexing (the resume granularity)
SHARD_SIZE = 256


@dataclass(frozen=True)
class Hit:
    """One search result. ``score`` is the relation score (0..1) for hits reranked in
    stage 2 (``stage == 2``) and the ret-token cosine similarity for stage-1-only hits."""

    id: str
    path: str | None
    score: float
    rank: int  # 1 = best
    stage: int
    row: int  # row in the gallery


@dataclass
class IndexReport:
    added: int = 0
    skipped_existing: int = 0
    resumed: int = 0
    failed: list[tuple[str, str]] = None  # (source, reason) for on_error="skip"

    def __post_init__(self):
        self.failed = self.failed or []


class Retriever:
    def __init__(self, export_dir: Path, manifest: Manifest, runners: ModelRunners, gallery: Gallery):
        self.export_dir = export_dir
        self.manifest = manifest
        self.runners = runners
        self.gallery = gallery
        self._index: RetIndex | None = None
        self._index_size = -1
        self._explainer = None
        self._relation_mode = "auto"
        self._fast: dict | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(
        cls,
        export_dir: str | os.PathLike,
        gallery: str | os.PathLike | None = None,
        backend: str = "auto",
        precision: str | None = None,
        checkpoint: str | os.PathLike | None = None,
        verify: bool = True,
        max_batch: int | None = None,
        threads: int | None = None,
        relation: str = "auto",
        projections: bool = False,
    ) -> "Retriever":
        """Open an export folder (hashes verified) and optionally a gallery folder.

        A ``gallery`` path that holds no gallery yet is created. ``relation``: how
        stage 2 scores pairs: ``"fast"`` (the restructured graphs: per-image
        projections once, see :mod:`zse_infer.model.fast_relation`), ``"compat"``
        (``relation_head.onnx``, one pair per row) or ``"auto"`` (fast where the
        folder has the graphs and ONNX Runtime runs them). ``projections=True``
        creates a new gallery that also stores each photo's relation-head
        projections (about 3x the token storage) so reranking skips that work.
        """
        if relation not in ("auto", "fast", "compat"):
            raise InputError(f"relation: received {relation!r}, expected 'auto', 'fast' or 'compat'")
        export_dir = Path(export_dir)
        manifest = Manifest.load(export_dir, verify=verify)
        runners = open_runners(export_dir, manifest, backend, precision, checkpoint, max_batch, threads)
        model_info = cls._model_info(manifest)
        tokens_shape = (manifest.model.num_tokens, manifest.model.width)
        if gallery is not None and (Path(gallery) / "gallery.json").is_file():
            g = Gallery.open(gallery)
            if g.tokens_shape != tokens_shape or not _same_model(g.model, model_info):
                raise GalleryError(
                    f"{gallery}: built with model {g.model} tokens {g.tokens_shape}; this export folder is "
                    f"{model_info} tokens {tokens_shape}. Re-index the photos with this model."
                )
        else:
            g = Gallery.create(gallery, tokens_shape, model_info, projections=projections)
        retriever = cls(export_dir, manifest, runners, g)
        retriever._relation_mode = relation
        return retriever

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

    # ------------------------------------------------------------------ encoding
    def _preprocess(self, sources: Sequence[ImageSource], modality: str) -> np.ndarray:
        config = self.manifest.preprocess[modality]
        return np.stack([load_image(s, config) for s in sources])

    def encode(self, images: Sequence[ImageSource], modality: str) -> np.ndarray:
        """Images (paths, PIL images, arrays, bytes) -> float32 tokens (N, T, D)."""
        if modality not in ("sketch", "photo"):
            raise InputError(f"modality: received {modality!r}, expected 'sketch' or 'photo'")
        if not len(images):
            return np.zeros((0, self.manifest.model.num_tokens, self.manifest.model.width), np.float32)
        pixels = self._preprocess(images, modality)
        return self.runners.encoder.run({ENCODER_INPUT: pixels})[ENCODER_OUTPUT]

    def _fast_runners(self) -> dict | None:
        """Runners of the restructured relation graphs, or None where the compatibility graph is used."""
        if self._fast is None:
            roles = ("relation_sketch", "relation_photo", "relation_pair")
            have = all(self.manifest.find_graphs(r) for r in roles)
            # The restructured graphs are fp32: an int8/fp16 deployment reranks with its own relation head.
            usable = (
                have and self.runners.backend.startswith("onnxruntime") and self.runners.precision == "fp32"
                and self._relation_mode != "compat"
            )
            if self._relation_mode == "fast" and not usable:
                raise InputError(
                    "relation='fast' needs the relation_sketch/photo/pair graphs (re-export with this version) "
                    f"and the ONNX Runtime backend (this retriever runs {self.runners.backend})"
                )
            if not usable:
                self._fast = {}
            else:
                from .runners.onnxruntime_backend import OrtRunner

                providers = self.runners.encoder.providers
                self._fast = {r: OrtRunner(self.manifest.select_graph(r, ("fp32",), ("plain",)), self.export_dir, providers) for r in roles}
        return self._fast or None

    def _photo_side(self, photo_tokens: np.ndarray) -> dict[str, np.ndarray]:
        return self._fast_runners()["relation_photo"].run({"photo_tokens": photo_tokens})

    def relation_scores(self, sketch_tokens: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Relation score of one sketch (T, D) against the given gallery rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        scores = np.empty(len(rows), dtype=np.float32)
        fast = self._fast_runners()
        sketch = np.ascontiguousarray(sketch_tokens[None], dtype=np.float32)
        if fast:
            # Once per query: the sketch's projections, broadcast over every candidate.
            sketch_side = {"sketch_tokens": sketch, **fast["relation_sketch"].run({"sketch_tokens": sketch})}
        n = self.manifest.model.num_tokens
        for start in range(0, len(rows), RERANK_CHUNK):
            chunk = rows[start : start + RERANK_CHUNK]
            photo = self.gallery.tokens(chunk)
            if not fast:
                tiled = np.ascontiguousarray(np.broadcast_to(sketch, photo.shape))
                out = self.runners.relation_head.run({HEAD_INPUTS[0]: tiled, HEAD_INPUTS[1]: photo})
            else:
                if self.gallery.projections:
                    proj = self.gallery.projections_of(chunk)  # computed at index time
                    photo_side = {"photo_k": proj[:, :n], "photo_q": proj[:, n : 2 * n - 1], "photo_v": proj[:, 2 * n - 1 :]}
                    photo_side = {k: np.ascontiguousarray(v) for k, v in photo_side.items()}
                else:
                    photo_side = self._photo_side(photo)
                out = fast["relation_pair"].run({**sketch_side, "photo_tokens": photo, **photo_side})
            scores[start : start + len(chunk)] = out[HEAD_OUTPUT]
        return scores

    # ------------------------------------------------------------------ indexing
    def index(
        self,
        photos: ImageSource | Iterable[ImageSource],
        ids: Sequence[str] | None = None,
        batch_size: int | None = None,
        on_error: str = "raise",
        progress: bool = True,
        shard_size: int = SHARD_SIZE,
    ) -> IndexReport:
        """Encode photos and append them to the gallery (atomically; resumable).

        ``photos``: paths, directories (expanded recursively), PIL images, arrays
        or bytes. ``ids`` default to the path (or ``#<n>`` for in-memory images).
        Photos whose id is already stored are skipped. ``on_error="raise"``
        raises on the first bad photo, naming it, and leaves the gallery as it
        was; ``"skip"`` skips bad photos and lists them in the report.
        ``shard_size`` photos are written per shard: the granularity at which an
        interrupted run resumes.
        """
        if on_error not in ("raise", "skip"):
            raise InputError(f"on_error: received {on_error!r}, expected 'raise' or 'skip'")
        sources = expand_sources(photos)
        if ids is not None:
            ids = [str(i) for i in ids]
            if len(ids) != len(sources):
                raise InputError(f"ids: received {len(ids)} ids for {len(sources)} photos")
        else:
            base = len(self.gallery)
            ids = [source_path(s) or f"#{base + i}" for i, s in enumerate(sources)]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise InputError(f"ids: duplicates in this call: {dupes}")
        batch = batch_size or self.runners.encoder.max_batch
        if batch < 1 or shard_size < 1:
            raise InputError(f"batch_size and shard_size: received {batch_size}/{shard_size}, expected >= 1")

        from tqdm.auto import tqdm

        report = IndexReport()
        gallery = self.gallery
        with gallery.writing():
            adopted = gallery.read_pending()
            done = gallery.id_set() | {i for s in adopted for i in s.ids}
            report.resumed = sum(s.count for s in adopted)
            todo = [(s, i) for s, i in zip(sources, ids) if i not in done]
            report.skipped_existing = len(sources) - len(todo)
            if report.resumed:
                _log.info("resuming: %d photos from an interrupted run are adopted, not re-encoded", report.resumed)
            written = []
            bar = tqdm(total=len(todo), desc="indexing", unit="photo", disable=not progress)
            try:
                for start in range(0, len(todo), shard_size):
                    part = todo[start : start + shard_size]
                    tokens, kept = self._encode_part(part, batch, on_error, report, bar)
                    if kept:
                        proj = self._projections_for(tokens) if gallery.projections else None
                        shard = gallery.write_shard(tokens, [i for _, i in kept], [source_path(s) for s, _ in kept], proj)
                        written.append(shard)
                        # Record progress so a killed run resumes from here.
                        gallery.write_pending([*adopted, *written])
                gallery.commit([*adopted, *written])
            except BaseException:
                # Leave the gallery as it was: drop this call's shards, keep earlier pending ones.
                gallery.discard(written)
                gallery.write_pending(adopted)
                raise
            finally:
                bar.close()
        report.added = sum(s.count for s in written) + report.resumed
        if report.failed:
            _log.warning("indexing skipped %d unreadable photos: %s", len(report.failed), report.failed[:5])
        return report

    def _projections_for(self, tokens: np.ndarray) -> np.ndarray:
        """The photo side of the relation head, (n, 3T-1, D): keys | queries | values."""
        if not self._fast_runners():
            raise GalleryError("this gallery stores projections, which needs the relation_photo graph and ONNX Runtime")
        side = self._photo_side(tokens.astype(np.float16).astype(np.float32))  # from the tokens as stored
        return np.concatenate([side["photo_k"], side["photo_q"], side["photo_v"]], axis=1)

    def _encode_part(self, part, batch: int, on_error: str, report: IndexReport, bar):
        config = self.manifest.preprocess["photo"]
        kept, tokens = [], []
        for start in range(0, len(part), batch):
            pixels, ok = [], []
            for source, pid in part[start : start + batch]:
                try:
                    pixels.append(load_image(source, config))
                    ok.append((source, pid))
                except ZseError as exc:
                    if on_error == "raise":
                        raise
                    report.failed.append((describe_source(source), str(exc)))
            if pixels:
                out = self.runners.encoder.run({ENCODER_INPUT: np.stack(pixels)})[ENCODER_OUTPUT]
                tokens.append(out)
                kept.extend(ok)
            bar.update(len(part[start : start + batch]))
        if not kept:
            return None, []
        return np.concatenate(tokens), kept

    def save(self, gallery_dir: str | os.PathLike) -> None:
        """Write the gallery to ``gallery_dir`` (later loads: ``Retriever.load(export, gallery=gallery_dir)``)."""
        self.gallery = self.gallery.save(gallery_dir)

    # ------------------------------------------------------------------ search
    def _ret_index(self) -> RetIndex:
        if self._index is None or self._index_size != len(self.gallery):
            self._index = RetIndex(self.gallery.ret_matrix())
            self._index_size = len(self.gallery)
        return self._index

    def _parse_rerank(self, rerank: int | str | None) -> int:
        n = len(self.gallery)
        if rerank is None:  # the caller did not choose: the depth the export folder records
            rerank = self.manifest.default_rerank
        if rerank == "all":
            return n
        if isinstance(rerank, bool) or not isinstance(rerank, (int, np.integer)) or rerank < 0:
            raise InputError(f"rerank: received {rerank!r}, expected an integer >= 0 or 'all'")
        return min(int(rerank), n)

    def search(self, sketch: ImageSource, k: int = 10, rerank: int | str | None = None) -> list[Hit]:
        """The ``k`` best gallery photos for one sketch, best first."""
        return self.search_batch([sketch], k=k, rerank=rerank)[0]

    def search_batch(self, sketches: Sequence[ImageSource], k: int = 10, rerank: int | str | None = None) -> list[list[Hit]]:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k: received {k!r}, expected an integer >= 1")
        if isinstance(sketches, (str, os.PathLike, bytes)) or not hasattr(sketches, "__len__"):
            raise InputError("sketches: expected a list of sketches (use search() for one)")
        tokens = self.encode(list(sketches), "sketch")
        return [self.search_tokens(t, k, rerank) for t in tokens]

    def search_tokens(self, sketch_tokens: np.ndarray, k: int = 10, rerank: int | str | None = None) -> list[Hit]:
        """Search with an already encoded sketch (T, D)."""
        n = len(self.gallery)
        if n == 0:
            raise GalleryError("the gallery is empty: index photos first")
        n_rerank = self._parse_rerank(rerank)
        depth = min(max(k, n_rerank), n)
        query = l2_normalize(sketch_tokens[0])[None]
        cos, rows = self._ret_index().search(query, depth)
        cos, rows = cos[0], rows[0]
        hits: list[tuple[int, float, int]] = []  # (row, score, stage)
        if n_rerank:
            candidates = rows[:n_rerank]
            scores = self.relation_scores(sketch_tokens, candidates)
            # Highest relation score first; equal scores keep their stage-1 order.
            order = np.lexsort((np.arange(len(scores)), -scores.astype(np.float64)))
            hits = [(int(candidates[i]), float(scores[i]), 2) for i in order]
        hits += [(int(r), float(c), 1) for r, c in zip(rows[n_rerank:], cos[n_rerank:])]
        results = []
        for rank, (row, score, stage) in enumerate(hits[:k], start=1):
            pid, path = self.gallery.row_info(row)
            results.append(Hit(id=pid, path=path, score=score, rank=rank, stage=stage, row=row))
        return results


    # ------------------------------------------------------------------ explanations
    def _explainer_room(self) -> Explainer:
        """The explainer, fed this retriever's encoder and the gallery's stored tokens."""
        if self._explainer is None:
            self._explainer = Explainer(
                self.export_dir, self.manifest, self.runners, encode=self.encode, stored_tokens=lambda rows: self.gallery.tokens(rows)
            )
        return self._explainer

    def _photo_tokens_and_image(self, item: "Hit | ImageSource") -> tuple[np.ndarray, np.ndarray]:
        """Tokens (T, D) and the RGB image the encoder saw, for a Hit (stored tokens) or a photo."""
        tokens, image, _ = self._explainer_room().photo(item)
        return tokens, image

    def _explain_outputs(self, sketch_tokens: np.ndarray, photo_tokens: np.ndarray) -> dict[str, np.ndarray]:
        return self._explainer_room().outputs(sketch_tokens, photo_tokens)

    def explain(self, sketch: ImageSource, hit_or_photo: "Hit | ImageSource", out: str | os.PathLike | None = None, top: int = DEFAULT_TOP) -> Explanation:
        """Why ``sketch`` matched a photo: anchor matches placed on patches, attention heat maps.

        ``hit_or_photo``: a :class:`Hit` from :meth:`search` (its stored tokens are used) or a
        photo. With ``out``, a PNG is written: sketch and photo side by side with the ``top``
        clearest matches as numbered markers (on strokes and on the object only), a colour
        scale, and the attention heat maps below.
        """
        return self._explainer_room().explain(sketch, hit_or_photo, out=out, top=top)

    def synthesize(
        self, sketch: ImageSource, hits_or_photos: "Sequence[Hit | ImageSource]", out: str | os.PathLike | None = None, ink_only: bool = False
    ) -> Synthesis:
        """The sketch's drawing rebuilt from content patches of the matched photos.

        ``hits_or_photos``: one or more hits or photos (e.g. the top-k of a search); each
        connected part of the drawing takes the photo that fits it best. ``ink_only``
        replaces only the stroke patches (default: strokes and what they enclose). With
        ``out``, a PNG is written: the sketch and the synthesis (at least 448 px), and the
        source photos with the patches used outlined. See :mod:`.synthesis` for the choice.
        """
        return self._explainer_room().synthesize(sketch, hits_or_photos, out=out, ink_only=ink_only)


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("checkpoint_sha256") and b.get("checkpoint_sha256"):
        return a["checkpoint_sha256"] == b["checkpoint_sha256"]
    return a.get("name") == b.get("name")
