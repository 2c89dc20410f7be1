"""The indexer: reader (ids, fingerprints, what to skip or replace) -> encoder (batches) -> writer (a commit every
``commit_size`` photos); docs/galleries.md, "Indexing and its lifecycle". :meth:`Indexer.index` is the one loop: an
executor (:class:`LocalIndexExecutor`, or ``RayIndexExecutor``: nothing here imports :mod:`zse_infer.distributed`)
yields one :class:`Encoded` per commit chunk, in photo order."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import InputError, ZseError
from ..manifest import ENCODER_INPUT, ENCODER_OUTPUT, Manifest
from ..preprocess import ImageSource, describe_source, is_pil_image, source_path
from ..vectors import l2_normalize
from .gallery.store import Batch, Gallery
from .object_photos import ObjectPhoto, expand_objects, load_photos, photo_name, photo_path
from .photo_sources import expand_sources
from .runners.base import ModelRunners
from .searcher import pack_projections

_log = logging.getLogger(__name__)

COMMIT_SIZE = 256  #: photos encoded per gallery commit while indexing (the granularity at which a stopped run resumes)
UNKNOWN = (-1, -1)  #: the fingerprint (size, mtime_ns) stored for a photo without one (in memory, or not stat'able)


@dataclass
class IndexReport:
    added: int = 0  # new photos and replaced ones
    skipped_existing: int = 0  # stored and unchanged
    replaced: int = 0  # stored, but the file changed: re-encoded
    resumed: int = 0  # kept for callers of format 1; a stopped run's batches are simply stored now
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason) for on_error="skip"


@dataclass
class Encoded:
    """A commit chunk's encoded plan items (``kept``): ``tokens`` to commit, or ``fragments`` written with ``key``."""

    kept: list
    tokens: np.ndarray | None = None
    fragments: list[str] | None = None
    key: int | None = None


class IndexExecutor(Protocol):
    """Encodes an indexing run's commit chunks."""

    #: appended to the progress bar ("" in this process, " on Ray (2 actors)" on Ray)
    where: str

    def check(self, todo: list) -> None: ...

    def encode(
        self, indexer: Indexer, chunks: list[list], batch: int, on_error: str, report: IndexReport, bar
    ) -> Iterator[Encoded]: ...


class LocalIndexExecutor:
    """Encodes in this process, chunk by chunk."""

    where = ""

    def check(self, todo: list) -> None: ...

    def encode(
        self, indexer: Indexer, chunks: list[list], batch: int, on_error: str, report: IndexReport, bar
    ) -> Iterator[Encoded]:
        for chunk in chunks:
            tokens, kept = indexer.encode(chunk, batch, on_error, report, bar)
            if kept:
                yield Encoded(kept, tokens)


def photo_batch(
    ids: Sequence[str],
    paths: Sequence[str | None],
    fingerprints: Sequence[tuple[int, int]],
    tokens: np.ndarray,
    keep_tokens: bool,
    proj: np.ndarray | None = None,
) -> Batch:
    """Gallery rows of encoded photos (the one place rows are made from tokens: here and on Ray workers)."""
    sizes, mtimes = (np.array([f[i] for f in fingerprints], np.int64) for i in (0, 1))
    return Batch(
        list(ids), list(paths), sizes, mtimes, l2_normalize(tokens[:, 0]), tokens if keep_tokens else None, proj
    )


def default_id(source: ImageSource) -> str:
    """A file's absolute, resolved path; an object's URI; an in-memory image's content hash (``content_id``)."""
    return stored_path(source) or content_id(source)


def content_id(source: ImageSource) -> str:
    """``#`` + 128 bits of the SHA-256 of an in-memory image's content (pixels with their shape
    and type, or the encoded bytes): the same image always gets the same id and two different
    images never share one (the old ``#<gallery size + i>`` ids collided: issue 18, item 5)."""
    if isinstance(source, np.ndarray):
        content = f"array {source.dtype.str} {source.shape}\n".encode() + np.ascontiguousarray(source).tobytes()
    elif is_pil_image(source):
        content = f"pil {source.mode} {source.size}\n".encode() + bytes(source.getpalette() or []) + source.tobytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        content = b"bytes\n" + bytes(source)
    else:
        how = "pass ids=, or the image as bytes, an array or a PIL image"
        raise InputError(f"photos: cannot give {describe_source(source)} an id; {how}")
    return "#" + hashlib.sha256(content).hexdigest()[:32]


def fingerprint(source: ImageSource) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, (size, ETag hash) of an object; None when unknown (in memory, unreadable)."""
    if isinstance(source, ObjectPhoto):
        return source.fingerprint
    path = source_path(source)
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (int(st.st_size), int(st.st_mtime_ns))


def _read_file_object(source: ImageSource) -> ImageSource:
    """A binary file object's bytes (read once: hashed for its id, decoded later); other sources as they are."""
    if not hasattr(source, "read") or source_path(source) is not None:
        return source
    data = source.read()
    if not isinstance(data, (bytes, bytearray)):
        raise InputError(f"{describe_source(source)}: file object must be opened in binary mode")
    return bytes(data)


def _unchanged(stored: tuple[int, int], fp: tuple[int, int] | None, by_content: bool) -> bool:
    """A stored photo may be skipped: its id is its content's hash, or its fingerprint is known and unchanged."""
    return by_content or (fp is not None and tuple(stored) == fp)


class Indexer:
    def __init__(
        self,
        manifest: Manifest,
        runners: ModelRunners,
        gallery: Gallery,
        run_lock: threading.RLock,
        photo_side: Callable[[np.ndarray], dict] | None = None,
        export_dir: Path | None = None,
    ):
        self.export_dir = export_dir  # what workers elsewhere re-open (executors)
        self.manifest, self.runners, self.gallery, self.run_lock = manifest, runners, gallery, run_lock
        self.photo_side = photo_side  # for galleries that store relation-head projections

    def plan(self, photos, ids: Sequence[str] | None):
        """-> (todo [(source, id, fingerprint, replace)], skipped count)."""
        sources = [_read_file_object(s) for s in expand_objects(expand_sources(photos), self.gallery.storage_options)]
        by_content = ids is None
        if ids is not None:
            ids = [str(i) for i in ids]
            if len(ids) != len(sources):
                raise InputError(f"ids: received {len(ids)} ids for {len(sources)} photos")
        else:
            ids = [default_id(s) for s in sources]
        dupes = [i for i, c in Counter(ids).items() if c > 1]
        if dupes:
            listed = ", ".join(sorted(dupes)[:5])
            if by_content:
                raise InputError(f"photos: the same file or image given more than once in this call (ids {listed})")
            raise InputError(f"ids: duplicates in this call: {listed}")
        if not self.gallery.codec.stores_tokens:
            memory = [describe_source(s) for s in sources if photo_path(s) is None]
            if memory:
                message = f"photos: received in-memory images ({memory[0]}); a codec-'none' gallery needs photo files"
                raise InputError(message)
        self.gallery.refresh()
        stored = self.gallery.snapshot.fingerprints() if self.gallery.snapshot is not None else {}
        todo, skipped = [], 0
        for source, pid in zip(sources, ids, strict=False):
            fp = fingerprint(source)
            if pid in stored and _unchanged(stored[pid], fp, by_content and photo_path(source) is None):
                skipped += 1
            else:
                todo.append((source, pid, fp or UNKNOWN, pid in stored))
        return todo, skipped

    def encode(self, part, batch: int, on_error: str, report: IndexReport, bar):
        config = self.manifest.preprocess["photo"]
        kept, tokens = [], []
        for start in range(0, len(part), batch):
            pixels, ok, items = [], [], part[start : start + batch]
            loaded_all = load_photos([i[0] for i in items], config, self.gallery.storage_options)
            for item, loaded in zip(items, loaded_all, strict=True):
                if isinstance(loaded, ZseError):
                    if on_error == "raise":
                        raise loaded
                    report.failed.append((photo_name(item[0]), str(loaded)))
                else:
                    pixels.append(loaded)
                    ok.append(item)
            if pixels:
                with self.run_lock:
                    tokens.append(self.runners.encoder.run({ENCODER_INPUT: np.stack(pixels)})[ENCODER_OUTPUT])
                kept.extend(ok)
            bar.update(len(items))
        return (np.concatenate(tokens) if kept else None), kept

    def write(self, tokens: np.ndarray, kept) -> None:
        proj = None
        if self.gallery.projections:
            if self.photo_side is None:
                raise InputError("this gallery stores projections: the indexer needs photo_side to compute them")
            proj = pack_projections(self.photo_side(tokens.astype(np.float16).astype(np.float32)))  # as stored
        keep_tokens = self.gallery.codec.stores_tokens or self.gallery.codec.needs_training
        batch = photo_batch(
            [k[1] for k in kept], [stored_path(k[0]) for k in kept], [k[2] for k in kept], tokens, keep_tokens, proj
        )
        self.gallery.append(batch, replace=any(k[3] for k in kept))

    def commit(self, encoded: Encoded, report: IndexReport) -> None:
        """One commit of encoded photos (tokens, or fragments workers wrote), counted in ``report``."""
        kept, replace = encoded.kept, any(k[3] for k in encoded.kept)
        if encoded.fragments is not None and encoded.key is not None:
            self.gallery.commit_fragments(encoded.fragments, encoded.key, [k[1] for k in kept], replace=replace)
        elif encoded.tokens is not None:
            self.write(encoded.tokens, kept)
        report.added += len(kept)
        report.replaced += sum(1 for k in kept if k[3])

    def batch_size(self, on_error: str, batch_size: int | None, commit_size: int) -> int:
        """The encoder batch for these arguments, after checking them (any executor)."""
        if on_error not in ("raise", "skip"):
            raise InputError(f"on_error: received {on_error!r}, expected 'raise' or 'skip'")
        batch = batch_size or self.runners.encoder.max_batch
        if batch < 1 or commit_size < 1:
            raise InputError(f"batch_size and commit_size: received {batch_size}/{commit_size}, expected >= 1")
        return batch

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
        """Plan (skip stored, unchanged photos), have ``executor`` encode the rest by chunks, commit each in order."""
        executor = executor or LocalIndexExecutor()
        batch = self.batch_size(on_error, batch_size, commit_size)
        todo, skipped = self.plan(photos, ids)
        report = IndexReport(skipped_existing=skipped)
        executor.check(todo)
        if not todo:  # no empty progress bar (issue 20): the caller reports what was already stored
            _log.info("nothing new to index: %d photo(s) already stored and unchanged", skipped)
            return report
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"indexing{executor.where}", unit="photo", disable=not progress)
        started = time.time()
        chunks = [todo[start : start + commit_size] for start in range(0, len(todo), commit_size)]
        try:
            for encoded in executor.encode(self, chunks, batch, on_error, report, bar):
                self.commit(encoded, report)
        finally:
            bar.close()
            self.gallery.sync(since=started)  # Lance does not fsync: make what this call committed durable
        if report.failed:
            _log.warning("indexing skipped %d unreadable photos (listed in the report)", len(report.failed))
        return report


def stored_path(source: ImageSource) -> str | None:
    if isinstance(source, ObjectPhoto):
        return source.uri
    path = source_path(source)
    return str(Path(path).resolve()) if path is not None else None
