"""Gallery format 2: one Lance dataset of encoded photos, plus the persisted stage-1 index.

Layout::

    <gallery>/
      photos.lance/    the Lance dataset (versions, fragments, deletion files)
      stage1/          the persisted stage-1 index of large galleries (see stage1.py)

Columns of ``photos.lance``: ``id`` (string, unique), ``path`` (absolute path or URI, null
for in-memory photos), ``size`` / ``mtime_ns`` (the file's fingerprint when indexed: a
changed file is re-encoded), ``batch`` (int64, one random value per commit: what an
indexing run wrote), ``ret`` (FixedSizeList<float32>[D], token 0 L2-normalised: stage 1),
``tokens`` (fixed-size binary, the codec's bytes; absent for codec ``none``) and, for
galleries created with ``projections=True``, ``proj`` (float16 relation-head projections).
The schema metadata names the format, the model (name + checkpoint sha256), the token shape
and the codec with its trained tables: a gallery describes itself.

Why Lance: appends are commits of new immutable fragments, optimistic and retried, so two
processes appending at once both land (tests/runtime/test_gallery_store.py; the first
commit, which creates the dataset, is serialised by a file lock: racing creates could lose one);
every commit is a new version, so a reader pinned to a version sees one consistent snapshot
until it calls :meth:`Gallery.refresh`; a killed writer leaves only whole commits (files of
an unfinished commit are unreferenced and removed by ``compact()``). Row ids are *stable*
(``enable_stable_row_ids``): a photo keeps its row id through compaction, which is what the
persisted stage-1 index and :class:`~zse_infer.runtime.retriever.Hit.row` refer to.

Why paths stay in the token table (no separate metadata table): a photo's id defaults to
its absolute path, so a moved photo is a new photo, and a second table could not be
committed atomically with the first (Lance commits one dataset at a time): a crash between
the two would leave photos without paths. User metadata belongs with the caller's own ids.

Durability: Lance does not fsync on local disk. A commit is atomic (the new manifest is
renamed into place) but after a power loss the newest versions' files may be empty or
missing; :meth:`Gallery.sync` fsyncs every file of the dataset and is called at the end
of each ``index``/``delete``/``compact`` so that a finished call survives power loss.
Batches committed by a run that was still going when the power failed may be lost; the
next ``index`` re-encodes them. Our own side files (the stage-1 index) are written to a
temporary file, fsynced, renamed and the folder fsynced.

Format-1 galleries (``gallery.json`` + shards) are refused with the migration command
named: ``zse gallery migrate OLD NEW`` converts one without re-encoding.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import GalleryError, require
from .codecs import Codec, canonical_name
from .snapshot import Snapshot

_log = logging.getLogger(__name__)

FORMAT = "zse-gallery"
VERSION = 2
DATASET = "photos.lance"
META_KEY = b"zse_gallery"
TABLES_KEY = b"zse_codec_tables"
FORMAT1_RECORD = "gallery.json"
#: ids per SQL ``IN (...)`` filter (keeps filter strings short)
FILTER_CHUNK = 500
#: attempts for commits that Lance reports as conflicting (deletes racing other deletes)
COMMIT_ATTEMPTS = 5


def _lance():
    return require("lance", "runtime", "the gallery store (Lance)")


def _sql_list(values: Sequence[str]) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


def model_words(model: dict[str, Any]) -> str:
    """A model identity in plain words: 'zse_demo (checkpoint 1a2b3c4d...)'."""
    sha = model.get("checkpoint_sha256")
    return f"{model.get('name') or 'an unnamed model'}" + (f" (checkpoint {sha[:8]}...)" if sha else "")


def same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("checkpoint_sha256") and b.get("checkpoint_sha256"):
        return a["checkpoint_sha256"] == b["checkpoint_sha256"]
    return a.get("name") == b.get("name")


@dataclass
class Batch:
    """Rows to append: one commit."""

    ids: list[str]
    paths: list[str | None]
    sizes: np.ndarray  # int64, -1 where unknown
    mtimes: np.ndarray  # int64, -1 where unknown
    ret: np.ndarray  # (n, D) float32 unit
    tokens: np.ndarray | None  # (n, T, D) float32 (encoded with the gallery's codec at commit)
    proj: np.ndarray | None = None  # (n, 3T-1, D) float32


class Gallery:
    """Encoded photos in a Lance dataset. ``Gallery.create`` (nothing is written until the
    first commit, so a failed first ``index`` leaves no empty gallery) or ``Gallery.open``."""

    def __init__(self, root: Path, tokens_shape, model: dict[str, Any], codec: Codec, projections: bool = False, temporary: bool = False):
        self.root = Path(root)
        self.tokens_shape = tuple(tokens_shape)
        self.model = dict(model)
        self.codec = codec
        self.projections = projections
        n, d = self.tokens_shape
        self.proj_shape = (3 * n - 1, d)
        self.temporary = temporary
        self._snapshot: Snapshot | None = None
        if temporary:
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.root), True)

    @property
    def uri(self) -> str:
        return str(self.root / DATASET)

    # ------------------------------------------------------------------ creation and opening
    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        """A committed dataset is there (a first commit killed midway leaves files but no version)."""
        versions = Path(path) / DATASET / "_versions"
        return versions.is_dir() and any(versions.glob("*.manifest"))

    @staticmethod
    def is_format1(path: str | os.PathLike) -> bool:
        return (Path(path) / FORMAT1_RECORD).is_file() and not (Path(path) / DATASET).exists()

    @classmethod
    def create(cls, path, tokens_shape, model: dict[str, Any], codec: str = "float16", projections: bool = False) -> "Gallery":
        codec_obj = Codec(canonical_name(codec), tuple(tokens_shape))
        if path is None:
            return cls(Path(tempfile.mkdtemp(prefix="zse-gallery-")), tokens_shape, model, codec_obj, projections, temporary=True)
        root = Path(path).absolute()
        if cls.exists(root):
            raise GalleryError(f"{root}: already holds a gallery; open it to append")
        if cls.is_format1(root):
            raise GalleryError(f"{root}: holds a format-1 gallery; convert it with: zse gallery migrate {root} NEW")
        return cls(root, tokens_shape, model, codec_obj, projections)

    @classmethod
    def open(cls, path: str | os.PathLike, version: int | None = None) -> "Gallery":
        root = Path(path).absolute()
        if cls.is_format1(root):
            raise GalleryError(
                f"{root}: this is a format-1 gallery (gallery.json and shards), which this version no longer reads; "
                f"convert it without re-encoding: zse gallery migrate {root} {root}-v2"
            )
        if not cls.exists(root):
            raise GalleryError(f"{root}: no gallery here (expected {DATASET}; create one with zse index or create=True)")
        ds = cls._dataset(root / DATASET, version)
        meta = cls._read_meta(ds, root)
        codec = Codec.from_metadata(meta["codec"], meta["tokens"], ds.schema.metadata.get(TABLES_KEY, b"").decode())
        gallery = cls(root, meta["tokens"], meta.get("model", {}), codec, bool(meta.get("projections")))
        gallery._snapshot = Snapshot(ds, codec)
        return gallery

    @staticmethod
    def _dataset(uri: Path, version: int | None = None):
        try:
            return _lance().dataset(str(uri), version=version)
        except (OSError, ValueError, RuntimeError) as exc:
            raise GalleryError(f"{uri}: cannot open the Lance dataset ({exc})") from exc

    @staticmethod
    def _read_meta(ds, root: Path) -> dict[str, Any]:
        raw = (ds.schema.metadata or {}).get(META_KEY)
        try:
            meta = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            meta = {}
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise GalleryError(f"{root}: the dataset's schema metadata does not describe a zse-infer gallery (format 2)")
        return meta

    def _schema(self):
        import pyarrow as pa

        t, d = self.tokens_shape
        fields = [
            pa.field("id", pa.string(), nullable=False),
            pa.field("path", pa.string()),
            pa.field("size", pa.int64()),
            pa.field("mtime_ns", pa.int64()),
            pa.field("batch", pa.int64()),
            pa.field("ret", pa.list_(pa.float32(), d)),
        ]
        if self.codec.stores_tokens:
            fields.append(pa.field("tokens", pa.binary(self.codec.nbytes)))
        if self.projections:
            fields.append(pa.field("proj", pa.binary(2 * self.proj_shape[0] * d)))
        meta = {"format": FORMAT, "version": VERSION, "model": self.model, "tokens": list(self.tokens_shape),
                "codec": self.codec.name, "codec_bytes": self.codec.nbytes, "projections": self.projections}
        return pa.schema(fields, metadata={META_KEY: json.dumps(meta).encode(), TABLES_KEY: self.codec.tables_text().encode()})

    # ------------------------------------------------------------------ reading
    @property
    def snapshot(self) -> Snapshot | None:
        """The pinned version (None before the first commit)."""
        return self._snapshot

    @property
    def version(self) -> int:
        return self._snapshot.version if self._snapshot else 0

    def refresh(self) -> bool:
        """Move to the latest committed version; True when it changed."""
        if not self.exists(self.root):
            return False
        try:
            latest = self._dataset(self.root / DATASET)
        except GalleryError:
            if self._snapshot is None:  # a first commit still being written by another process
                return False
            raise
        if self._snapshot is not None and latest.version == self._snapshot.version:
            return False
        if self._snapshot is None:
            # Another process created it: adopt its codec (trained tables) and settings.
            meta = self._read_meta(latest, self.root)
            self.codec = Codec.from_metadata(meta["codec"], meta["tokens"], latest.schema.metadata.get(TABLES_KEY, b"").decode())
            self.projections = bool(meta.get("projections"))
        self._snapshot = Snapshot(latest, self.codec)
        return True

    def __len__(self) -> int:
        return len(self._snapshot) if self._snapshot else 0

    @property
    def ids(self) -> list[str]:
        return list(self._snapshot.ids) if self._snapshot else []

    @property
    def paths(self) -> list[str | None]:
        return list(self._snapshot.paths) if self._snapshot else []

    def ret_matrix(self) -> np.ndarray:
        return self._snapshot.ret_matrix() if self._snapshot else np.zeros((0, self.tokens_shape[1]), np.float32)

    def tokens(self, rowids) -> np.ndarray:
        return self._require().tokens(rowids)

    def projections_of(self, rowids) -> np.ndarray:
        if not self.projections:
            raise GalleryError(f"{self.root}: this gallery stores no projections (create it with projections=True)")
        return self._require().projections(rowids, self.proj_shape)

    def _require(self) -> Snapshot:
        if self._snapshot is None:
            raise GalleryError(f"{self.root}: the gallery is empty: index photos first")
        return self._snapshot

    def info(self) -> dict[str, Any]:
        snap = self._snapshot
        return {
            "path": str(self.root), "format": VERSION, "photos": len(self), "version": self.version,
            "model": model_words(self.model), "tokens": list(self.tokens_shape), "codec": self.codec.name,
            "bytes_per_photo": self.codec.nbytes, "projections": self.projections,
            "fragments": len(snap.ds.get_fragments()) if snap else 0,
            "versions": len(snap.ds.versions()) if snap else 0,
        }

    # ------------------------------------------------------------------ writing
    def append(self, batch: Batch, replace: bool = False) -> int:
        """Commit ``batch`` as one new version and return that version. With ``replace``, rows
        of the same ids committed before this one are then deleted (newest wins, also when
        two processes write one id at once: each deletes only rows older than its own)."""
        lance = _lance()
        key = secrets.randbits(62)
        for attempt in range(COMMIT_ATTEMPTS):
            if self._snapshot is None:
                self.refresh()  # another process may have created the gallery: adopt its codec
            creating = self._snapshot is None
            try:
                ds = self._create(lance, batch, key) if creating else None
                if ds is None:  # appending (also when another process created it first: with its codec)
                    ds = lance.write_dataset(self._arrow(batch, key), self.uri, mode="append", commit_message="zse index")
                break
            except (OSError, ValueError, RuntimeError) as exc:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise GalleryError(f"{self.uri}: commit failed after {COMMIT_ATTEMPTS} attempts ({exc})") from exc
                if creating and self.codec.name.startswith("pca"):
                    self.codec.tables = None
                time.sleep(0.05 * (attempt + 1))
        if replace:
            mine = ds.to_table(columns=[], filter=f"batch = {key}", with_row_id=True).column("_rowid").to_numpy()
            if len(mine):
                floor = int(mine.min())
                self._delete_where([f"id IN ({_sql_list(c)}) AND _rowid < {floor}" for c in _chunks(batch.ids)])
        self.refresh()
        return self.version

    def _create(self, lance, batch: Batch, key: int):
        """The first commit, under a file lock: two Lance creates racing on local disk can
        both report success while one of them is lost (measured), so creation is serialised
        and the second process finds the dataset and appends instead (returns None)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".create.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.exists(self.root):
                    self.refresh()
                    return None
                if self.codec.needs_training:
                    self.codec.train(batch.tokens)
                return lance.write_dataset(self._arrow(batch, key), self.uri, mode="create", enable_stable_row_ids=True,
                                           commit_message="zse index")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _arrow(self, batch: Batch, key: int):
        import pyarrow as pa

        n = len(batch.ids)
        d = self.tokens_shape[1]
        cols = {
            "id": pa.array(batch.ids, pa.string()),
            "path": pa.array(batch.paths, pa.string()),
            "size": pa.array(batch.sizes, pa.int64()),
            "mtime_ns": pa.array(batch.mtimes, pa.int64()),
            "batch": pa.array(np.full(n, key, np.int64)),
            "ret": pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(batch.ret, np.float32).reshape(-1)), d),
        }
        if self.codec.stores_tokens:
            cols["tokens"] = _fixed_binary(self.codec.encode(batch.tokens))
        if self.projections:
            cols["proj"] = _fixed_binary(np.ascontiguousarray(batch.proj, np.float16).view(np.uint8).reshape(n, -1))
        return pa.table(cols, schema=self._schema())

    def delete(self, ids: Sequence[str]) -> int:
        """Delete photos by id; returns how many rows were deleted."""
        ids = [str(i) for i in ids]
        if not self.exists(self.root) or not ids:
            return 0
        self.refresh()
        before = len(self)
        self._delete_where([f"id IN ({_sql_list(c)})" for c in _chunks(ids)])
        self.refresh()
        self.sync()
        return before - len(self)

    def _delete_where(self, filters: list[str]) -> None:
        for where in filters:
            for attempt in range(COMMIT_ATTEMPTS):
                try:
                    self._dataset(self.root / DATASET).delete(where)
                    break
                except (OSError, ValueError, RuntimeError) as exc:  # a conflicting concurrent commit
                    if attempt == COMMIT_ATTEMPTS - 1:
                        raise GalleryError(f"{self.uri}: delete failed after {COMMIT_ATTEMPTS} attempts ({exc})") from exc
                    time.sleep(0.05 * (attempt + 1))

    def dedupe(self) -> int:
        """Delete older rows of ids stored twice (left by two writers of one id, or a crash
        between a replacement's append and delete); returns how many rows were deleted."""
        self.refresh()
        if not self._snapshot:
            return 0
        ids, rowids = self._snapshot.ids, self._snapshot.row_ids()
        newest: dict[str, int] = {}
        stale = []
        for i, r in sorted(zip(ids, rowids.tolist()), key=lambda x: x[1]):
            if i in newest:
                stale.append(newest[i])
            newest[i] = r
        for start in range(0, len(stale), FILTER_CHUNK):
            self._delete_where([f"_rowid IN ({', '.join(map(str, stale[start:start + FILTER_CHUNK]))})"])
        self.refresh()
        return len(stale)

    def compact(self, keep_versions_seconds: float = 0.0) -> dict[str, Any]:
        """Merge small fragments (one per indexing batch), drop deleted rows, remove old versions
        (older than ``keep_versions_seconds``: readers pinned to them lose them) and files left
        by killed writers."""
        from datetime import timedelta

        if not self.exists(self.root):
            return {}
        duplicates = self.dedupe()
        ds = self._dataset(self.root / DATASET)
        metrics = ds.optimize.compact_files()
        ds = self._dataset(self.root / DATASET)
        stats = ds.cleanup_old_versions(older_than=timedelta(seconds=keep_versions_seconds), delete_unverified=True)
        self.refresh()
        self.sync()
        return {"fragments_removed": getattr(metrics, "fragments_removed", None), "fragments_added": getattr(metrics, "fragments_added", None),
                "old_versions_removed": getattr(stats, "old_versions", None), "bytes_removed": getattr(stats, "bytes_removed", None),
                "duplicates_removed": duplicates}

    def sync(self, since: float | None = None) -> None:
        """fsync the dataset's files (modified at or after ``since``, a time.time(); all by
        default) and its folders: Lance does not fsync on local disk."""
        if self.exists(self.root):
            fsync_tree(self.root / DATASET, since)

    def save(self, path: str | os.PathLike) -> "Gallery":
        """Copy the committed gallery to ``path`` (an empty or missing folder) and return it."""
        target = Path(path).absolute()
        if target == self.root:
            return self
        if target.exists() and any(target.iterdir()):
            raise GalleryError(f"{target}: exists and is not empty; refusing to write into it")
        if not self.exists(self.root):
            return Gallery.create(target, self.tokens_shape, self.model, self.codec.name, self.projections)
        tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
        shutil.copytree(self.root, tmp, ignore=shutil.ignore_patterns("*.tmp", "*.lock", ".lock"))
        fsync_tree(tmp)
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
        return Gallery.open(target)


def _chunks(ids: Sequence[str]):
    for start in range(0, len(ids), FILTER_CHUNK):
        yield list(ids[start : start + FILTER_CHUNK])


def _fixed_binary(rows: np.ndarray):
    import pyarrow as pa

    rows = np.ascontiguousarray(rows, np.uint8)
    width = rows.shape[1]
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(rows), [None, pa.py_buffer(rows.tobytes())])


def fsync_tree(root: Path, since: float | None = None) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                if since is not None and os.stat(path).st_mtime < since - 1:  # 1 s: coarse file-system clocks
                    continue
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                # Another writer's temporary file (e.g. _versions/.tmpXXXX), renamed or removed
                # since the listing: it is that writer's to make durable.
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(folder))


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
