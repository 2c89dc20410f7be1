"""Gallery format 2: a Lance dataset of encoded photos (``<gallery>/photos.lance``; layout: docs/galleries.md,
promises: docs/guarantees.md). Row ids are stable through compaction (stage 1 and ``Hit.row`` refer to them); a
trained codec's tables live in the schema metadata, which only the first commit can write; every write ends in
:meth:`Gallery.sync` (Lance does not fsync on local disk)."""

from __future__ import annotations

import fcntl
import functools
import itertools
import json
import logging
import os
import random
import re
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from ...errors import GalleryError, GalleryUnavailableError, InputError, require
from .codecs import Codec, canonical_name
from .location import GalleryLocation, gallery_location, gallery_root
from .snapshot import LANCE_ERRORS, Snapshot, VersionGoneError, lance_io, lance_message

_log = logging.getLogger(__name__)

FORMAT = "zse-gallery"
VERSION = 2
DATASET = "photos.lance"
META_KEY = b"zse_gallery"
TABLES_KEY = b"zse_codec_tables"
FORMAT1_RECORD = "gallery.json"
CREATE_LOCK = ".create.lock"
COMPACT_LOCK = ".compact.lock"
FILTER_CHUNK = 500  #: ids per SQL ``IN (...)`` filter (keeps filter strings short)
COMMIT_ATTEMPTS = 8  #: for commits Lance reports as conflicting; backoff doubles from 50 ms, jittered (~6 s in all)
#: seconds ``compact`` keeps a replaced version: far above a refresh interval plus a query (docs/guarantees.md)
KEEP_VERSIONS_S = 600.0
#: age in days at which ``compact`` removes files no version references (Lance's, with delete_unverified=False)
UNVERIFIED_FILE_AGE_DAYS = 7

T = TypeVar("T")

#: what Lance (pylance 14) says when no dataset is at a URI: "Dataset at path ... was not found"
_NOT_FOUND = re.compile(r"Dataset at path .* was not found|Not found: ", re.S)


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


def check_identity(where, stored_model: dict[str, Any], stored_shape, model: dict[str, Any], tokens_shape) -> None:
    """GalleryError unless ``where``'s gallery (``stored_model``, ``stored_shape``) is ``model``'s, ``tokens_shape``."""
    stored_shape, tokens_shape = tuple(stored_shape), tuple(tokens_shape)
    if stored_shape != tokens_shape or not same_model(stored_model, model):
        raise GalleryError(
            f"{where}: built with model {model_words(stored_model)}, tokens {stored_shape[0]}x{stored_shape[1]}; "
            f"this export is {model_words(model)}, tokens {tokens_shape[0]}x{tokens_shape[1]}. "
            "Re-index the photos with this model into a new gallery."
        )


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
    """Encoded photos in a Lance dataset (``Gallery.create`` or ``Gallery.open``); ``model`` and ``tokens_shape``
    are the identity every later version must keep (refresh and append refuse another model's gallery)."""

    def __init__(
        self,
        location: GalleryLocation | Path,
        tokens_shape,
        model: dict[str, Any],
        codec: Codec,
        projections: bool = False,
        temporary: bool = False,
    ):
        self.location = gallery_location(location)
        #: the local folder, or the URI on object storage (what messages name)
        self.root: Path | str = self.location.local or self.location.uri
        self.tokens_shape, self.model = tuple(tokens_shape), dict(model)
        self.codec, self.projections = codec, projections
        self.proj_shape = (3 * self.tokens_shape[0] - 1, self.tokens_shape[1])
        self.temporary = temporary
        self._snapshot: Snapshot | None = None
        self._tables_text: str | None = None  # the codec tables text self.codec was built from
        # refresh from several threads (a server's searches) pins one version at a time
        self._pin_lock = threading.RLock()
        if temporary:
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.root), True)

    @property
    def uri(self) -> str:
        return self.location.join(DATASET)

    @property
    def storage_options(self) -> dict[str, str]:
        return dict(self.location.storage_options)

    @staticmethod
    def exists(path: str | os.PathLike | GalleryLocation, storage_options: dict[str, str] | None = None) -> bool:
        """A version is committed there (a killed create leaves none); GalleryUnavailableError: unreachable store."""
        location = gallery_location(path, storage_options)
        if location.local is None:
            return _open_remote(location, "opening the gallery") is not None
        versions = location.local / DATASET / "_versions"
        return versions.is_dir() and any(versions.glob("*.manifest"))

    @staticmethod
    def is_format1(path: str | os.PathLike | GalleryLocation, storage_options: dict[str, str] | None = None) -> bool:
        root = gallery_location(path, storage_options).local
        return root is not None and (root / FORMAT1_RECORD).is_file() and not (root / DATASET).exists()

    @classmethod
    def create(
        cls,
        path,
        tokens_shape,
        model: dict[str, Any],
        codec: str = "float16",
        projections: bool = False,
        exist_ok: bool = False,
        storage_options: dict[str, str] | None = None,
    ) -> Gallery:
        """Commit a new, empty gallery at ``path`` now (a temporary folder for None). With ``exist_ok``, one there (or
        created meanwhile) of ``model`` and ``tokens_shape`` is opened instead, keeping its codec and settings."""
        codec_obj = Codec(canonical_name(codec), tuple(tokens_shape))
        if path is None:
            location, temporary = gallery_location(Path(tempfile.mkdtemp(prefix="zse-gallery-"))), True
        else:
            location, temporary = gallery_location(path, storage_options), False
            if exist_ok and cls.exists(location):
                # No lock needed to open one: a server may serve a gallery it cannot write.
                return cls.open(location, model=model, tokens_shape=tokens_shape)
            if cls.is_format1(location):
                message = f"{location}: holds a format-1 gallery; convert it with: zse gallery migrate {location} NEW"
                raise GalleryError(message)
        gallery = cls(location, tokens_shape, model, codec_obj, projections, temporary)
        with gallery._file_lock(CREATE_LOCK):
            if not cls.exists(location):
                try:
                    with lance_io(f"{gallery.uri}: creating the gallery"):
                        _lance().write_dataset(
                            gallery._schema(codec_obj).empty_table(),
                            gallery.uri,
                            mode="create",
                            enable_stable_row_ids=True,
                            commit_message="zse create",
                            storage_options=gallery._options(),
                        )
                except GalleryUnavailableError:
                    # On object storage two creators race without a lock: Lance's create is a
                    # conditional write of version 1, so the loser fails; it opens the winner's.
                    if not (exist_ok and cls.exists(location)):
                        raise
                gallery.sync()
                if location.local is not None:
                    fsync_path(location.local)
                    fsync_path(location.local.parent)
            elif not exist_ok:
                raise GalleryError(f"{location}: already holds a gallery; open it to append")
        gallery.refresh()  # an existing gallery: refused if another model's; its codec and settings adopted
        return gallery

    @classmethod
    def open(
        cls,
        path: str | os.PathLike | GalleryLocation,
        version: int | None = None,
        model: dict[str, Any] | None = None,
        tokens_shape=None,
        storage_options: dict[str, str] | None = None,
    ) -> Gallery:
        """Open the gallery at ``path`` (latest or ``version``); with ``model`` / ``tokens_shape``, refuse another's."""
        root = gallery_location(path, storage_options)
        if cls.is_format1(root):
            raise GalleryError(
                f"{root}: this is a format-1 gallery (gallery.json and shards), which this version no longer reads; "
                f"convert it without re-encoding: zse gallery migrate {root} {root}-v2"
            )
        if not cls.exists(root):
            message = f"{root}: no gallery here (expected {DATASET}; create one with zse index or create=True)"
            raise GalleryError(message)
        ds = cls._dataset(root.join(DATASET), version, root.storage_options)
        meta = cls._read_meta(ds, root)
        stored_model, stored_shape = meta.get("model", {}), tuple(meta["tokens"])
        model = stored_model if model is None else model
        check_identity(root, stored_model, stored_shape, model, stored_shape if tokens_shape is None else tokens_shape)
        gallery = cls(root, stored_shape, stored_model, Codec(canonical_name(meta["codec"]), stored_shape))
        gallery._adopt(ds)
        return gallery

    @staticmethod
    def _dataset(uri: str, version: int | None = None, storage_options: dict[str, str] | None = None):
        with lance_io(f"{uri}: opening the Lance dataset" + (f" at version {version}" if version is not None else "")):
            return _lance().dataset(str(uri), version=version, storage_options=storage_options or None)

    def _options(self) -> dict[str, str] | None:
        return self.location.storage_options or None

    def _latest(self):
        return self._dataset(self.uri, None, self.location.storage_options)

    @staticmethod
    def _read_meta(ds, root: object) -> dict[str, Any]:
        raw = (ds.schema.metadata or {}).get(META_KEY)
        try:
            meta = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            meta = {}
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            message = f"{root}: the dataset's schema metadata does not describe a zse-infer gallery (format 2)"
            raise GalleryError(message)
        return meta

    @contextmanager
    def _file_lock(self, name: str) -> Iterator[None]:
        """An exclusive lock on ``<gallery>/<name>`` between processes and threads, released when the holder is killed.
        ``CREATE_LOCK``: two Lance creates racing on local disk both reported success while one was lost (measured);
        ``COMPACT_LOCK``: see ``compact``. None on object storage (a lock would span one machine): commits there are
        conditional writes whose losers fail and are handled (``create``, ``_first_trained_commit``) or retried."""
        if self.location.local is None:
            yield
            return
        try:
            folder = self.location.local
            folder.mkdir(parents=True, exist_ok=True)
            lock = open(folder / name, "a+")  # noqa: SIM115 - held by the with below
        except OSError as exc:
            raise GalleryError(f"{self.root}: cannot create the gallery folder ({exc.strerror or exc})") from exc
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:  # explicitly: a forked child holding the descriptor would otherwise keep the lock
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _schema(self, codec: Codec):
        import pyarrow as pa

        d = self.tokens_shape[1]
        fields = [pa.field("id", pa.string(), nullable=False), pa.field("path", pa.string())]
        fields += [pa.field(name, pa.int64()) for name in ("size", "mtime_ns", "batch")]
        fields.append(pa.field("ret", pa.list_(pa.float32(), d)))
        if codec.stores_tokens:
            fields.append(pa.field("tokens", pa.binary(codec.nbytes)))
        if self.projections:
            fields.append(pa.field("proj", pa.binary(2 * self.proj_shape[0] * d)))
        meta = {"format": FORMAT, "version": VERSION, "model": self.model, "tokens": list(self.tokens_shape)}
        meta |= {"codec": codec.name, "codec_bytes": codec.nbytes, "projections": self.projections}
        return pa.schema(
            fields, metadata={META_KEY: json.dumps(meta).encode(), TABLES_KEY: codec.tables_text().encode()}
        )

    @property
    def snapshot(self) -> Snapshot | None:  # the pinned version
        return self._snapshot

    @property
    def version(self) -> int:
        return self._snapshot.version if self._snapshot is not None else 0

    def refresh(self) -> bool:
        """Move to the latest version; True when it changed. GalleryError for another model's (the pin stays)."""
        with self._pin_lock:
            latest = self._latest_or_gone()
            if self._snapshot is not None and latest.version == self._snapshot.version:
                return False
            self._adopt(latest)
            return True

    def _latest_or_gone(self):
        """The latest version; GalleryError when the gallery was removed (on object storage opening is the test)."""
        if self.location.local is None:
            ds = _open_remote(self.location, "opening the latest version")
        else:
            ds = self._latest() if self.exists(self.location) else None
        if ds is None:
            raise GalleryError(f"{self.root}: no gallery here any more (its {DATASET} was removed)")
        return ds

    def _adopt(self, ds) -> None:
        """Pin ``ds`` once it is this model's, adopting codec and settings from its schema (whoever wrote them)."""
        meta = self._read_meta(ds, self.root)
        check_identity(self.root, meta.get("model", {}), meta["tokens"], self.model, self.tokens_shape)
        tables = (ds.schema.metadata or {}).get(TABLES_KEY, b"").decode()
        if meta["codec"] != self.codec.name or tables != self._tables_text:
            codec = Codec.from_metadata(meta["codec"], meta["tokens"], tables)
            if codec.needs_training:
                with lance_io(f"{ds.uri} (version {ds.version})"):
                    rows = ds.count_rows()
                if rows:
                    raise GalleryError(
                        f"{self.root}: holds {rows} photos but no tables for its codec {codec.name} "
                        "(damaged schema metadata)"
                    )
            self.codec, self._tables_text = codec, tables
        self.projections = bool(meta.get("projections"))
        self._snapshot = Snapshot(ds, self.codec)

    def read(self, work: Callable[[Snapshot], T]) -> T:
        """``work(snapshot)`` on the pinned version; run once more on the latest if a compaction removed it."""
        snap = self._require()
        try:
            return work(snap)
        except VersionGoneError:
            if self._snapshot is snap:  # another thread may have refreshed meanwhile
                self.refresh()
            message = "%s: version %d was removed by a compaction while it was read; retrying on version %d"
            _log.info(message, self.root, snap.version, self.version)
            return work(self._require())

    def __len__(self) -> int:
        return len(self._snapshot) if self._snapshot is not None else 0

    @property
    def ids(self) -> list[str]:
        return list(self._snapshot.ids) if self._snapshot is not None else []

    @property
    def paths(self) -> list[str | None]:
        return list(self._snapshot.paths) if self._snapshot is not None else []

    def ret_matrix(self) -> np.ndarray:
        if self._snapshot is None:
            return np.zeros((0, self.tokens_shape[1]), np.float32)
        return self._snapshot.ret_matrix()

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
        snap = self._require()
        with lance_io(f"{self.uri} (version {snap.version})"):
            fragments, versions = len(snap.ds.get_fragments()), len(snap.ds.versions())
        info: dict[str, Any] = {"path": str(self.root), "format": VERSION, "photos": len(self), "version": self.version}
        info |= {"model": model_words(self.model), "tokens": list(self.tokens_shape), "codec": self.codec.name}
        info |= {"bytes_per_photo": self.codec.nbytes, "projections": self.projections}
        return info | {"fragments": fragments, "versions": versions}

    def _retry(self, what: str, attempt: Callable[[], T]) -> T:
        """``attempt()``, storage errors retried (Lance reports a conflicting commit as one); not GalleryError."""
        failed = 0
        while True:
            try:
                with lance_io(f"{self.uri}: {what}"):
                    return attempt()
            except GalleryUnavailableError as exc:
                failed += 1
                if failed == COMMIT_ATTEMPTS:
                    message = f"{self.uri}: {what} failed after {COMMIT_ATTEMPTS} attempts ({exc})"
                    raise GalleryUnavailableError(message) from exc
                # Back off, doubling and jittered so that two writers do not retry in step.
                time.sleep(0.05 * 2 ** (failed - 1) * (0.5 + random.random()))

    def append(self, batch: Batch, replace: bool = False) -> int:
        """Commit ``batch`` as one new version and return it; ``replace`` then deletes older rows of its ids."""
        self._check(batch)  # before the retried commit: a malformed batch is the caller's error, not the store's
        key = new_key()
        return self._commit_keyed(key, lambda: self._append_once(batch, key), batch.ids, replace)

    def write_fragments(self, batch: Batch, key: int) -> list[str]:
        """Write ``batch`` as uncommitted Lance fragments and return their metadata (JSON, about 1 KB each): what a
        Ray worker hands the driver to commit with ``key`` (:meth:`commit_fragments`); ``compact`` removes strays."""
        self._check(batch)
        if self.codec.needs_training or self.projections:
            raise GalleryError(
                f"{self.root}: fragments are written for trained, projection-free galleries only "
                "(commit the first rows through append)"
            )
        with lance_io(f"{self.uri}: writing fragments"):
            fragments = _lance().fragment.write_fragments(
                self._arrow(batch, key), self.uri, storage_options=self._options(), enable_stable_row_ids=True
            )
        return [json.dumps(f.to_json()) for f in fragments]

    def commit_fragments(self, fragments: Sequence[str], key: int, ids: Sequence[str], replace: bool = False) -> int:
        """Commit :meth:`write_fragments`' output (``key``, rows ``ids``) as one Append, once; returns the version."""
        lance = _lance()
        metas = [lance.FragmentMetadata.from_json(f) for f in fragments]

        def attempt():
            self.refresh()  # the latest version: refused if another model's
            return lance.LanceDataset.commit(
                self.uri,
                lance.LanceOperation.Append(metas),
                read_version=self.version,
                storage_options=self._options(),
                commit_message="zse index (fragments)",
            )

        return self._commit_keyed(key, attempt, ids, replace)

    def _commit_keyed(self, key: int, attempt: Callable[[], Any], ids: Sequence[str], replace: bool) -> int:
        """``attempt()`` (a commit of rows ``ids`` with ``batch`` = ``key``), retried but never committed twice: a
        retry first looks for a commit of ``key`` that landed before its error (a lost reply from the object store).
        ``replace``: rows of ``ids`` committed before it are then deleted. Returns the new version."""
        tries = itertools.count()

        def once():
            if next(tries):
                latest = self._latest()
                if latest.count_rows(filter=f"batch = {key}"):
                    _log.info("%s: commit %d had landed before its error; not committed again", self.uri, key)
                    return latest
            return attempt()

        ds = self._retry("commit", once)
        if replace:
            self._delete_older(ds, key, ids)
        self.refresh()
        return self.version

    def _delete_older(self, ds, key: int, ids: Sequence[str]) -> None:
        with lance_io(f"{self.uri}: reading back commit {key}"):
            mine = ds.to_table(columns=[], filter=f"batch = {key}", with_row_id=True).column("_rowid").to_numpy()
        if len(mine):
            self._delete_where([f"id IN ({_sql_list(c)}) AND _rowid < {int(mine.min())}" for c in _chunks(list(ids))])

    def _check(self, batch: Batch) -> None:
        n, (t, d) = len(batch.ids), self.tokens_shape
        want: dict[str, tuple[tuple | None, tuple]] = {
            "paths": ((len(batch.paths),), (n,)),
            "sizes": (np.shape(batch.sizes), (n,)),
            "mtimes": (np.shape(batch.mtimes), (n,)),
            "ret": (np.shape(batch.ret), (n, d)),
        }
        if batch.tokens is not None or self.codec.stores_tokens:
            want["tokens"] = (np.shape(batch.tokens) if batch.tokens is not None else None, (n, t, d))
        if self.projections:
            want["proj"] = (np.shape(batch.proj) if batch.proj is not None else None, (n, *self.proj_shape))
        for name, (got, expected) in want.items():
            if got is None or tuple(got) != expected:
                message = f"batch.{name}: received shape {got}, expected {expected} ({n} photos, tokens {t}x{d})"
                raise InputError(message)

    def _append_once(self, batch: Batch, key: int):
        self.refresh()  # the latest version: refused if another model's; codec tables another process trained
        if self.codec.needs_training:
            ds = self._first_trained_commit(batch, key)
            if ds is not None:
                return ds
        table, options = self._arrow(batch, key), self._options()
        return _lance().write_dataset(
            table, self.uri, mode="append", commit_message="zse index", storage_options=options
        )

    def _first_trained_commit(self, batch: Batch, key: int):
        """The first rows, with the codec trained on them and its tables (schema metadata: an append cannot change
        it), as an Overwrite of the empty dataset; ``max_retries=0``: with retries an Overwrite was measured to land
        over a concurrent Append (the caller's retry appends). None when another process trained it first."""
        lance = _lance()
        with self._file_lock(CREATE_LOCK):
            self.refresh()
            if not self.codec.needs_training:
                return None
            if len(self):
                raise GalleryError(
                    f"{self.root}: holds photos but no tables for its codec {self.codec.name} (damaged schema metadata)"
                )
            codec = Codec(self.codec.name, self.tokens_shape)
            codec.train(cast(np.ndarray, batch.tokens))  # _check: present where the codec stores tokens
            table, options = self._arrow(batch, key, codec), self._options()
            fragments = lance.fragment.write_fragments(
                table, self.uri, storage_options=options, enable_stable_row_ids=True
            )
            return lance.LanceDataset.commit(
                self.uri,
                lance.LanceOperation.Overwrite(table.schema, fragments),
                read_version=self.version,
                max_retries=0,
                enable_stable_row_ids=True,
                storage_options=options,
                commit_message=f"zse index (codec {codec.name} trained)",
            )

    def _arrow(self, batch: Batch, key: int, codec: Codec | None = None):
        """``batch`` as an Arrow table in this gallery's schema, tokens encoded by ``codec`` (or the gallery's)."""
        import pyarrow as pa

        codec, n, d = codec or self.codec, len(batch.ids), self.tokens_shape[1]
        cols = {"id": pa.array(batch.ids, pa.string()), "path": pa.array(batch.paths, pa.string())}
        cols |= {"size": pa.array(batch.sizes, pa.int64()), "mtime_ns": pa.array(batch.mtimes, pa.int64())}
        ret = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(batch.ret, np.float32).reshape(-1)), d)
        cols |= {"batch": pa.array(np.full(n, key, np.int64)), "ret": ret}
        if codec.stores_tokens:
            cols["tokens"] = _fixed_binary(codec.encode(cast(np.ndarray, batch.tokens)))
        if self.projections:
            cols["proj"] = _fixed_binary(np.ascontiguousarray(batch.proj, np.float16).view(np.uint8).reshape(n, -1))
        return pa.table(cols, schema=self._schema(codec))

    def delete(self, ids: Sequence[str]) -> int:
        """Delete photos by id; returns how many rows were deleted."""
        ids = [str(i) for i in ids]
        if not ids:
            return 0
        self.refresh()
        # Lance's own count of the rows it deleted: a size difference around the delete also
        # counts other writers' commits in between (it answered 0 for a delete beside an append).
        deleted = self._delete_where([f"id IN ({_sql_list(c)})" for c in _chunks(ids)])
        self.refresh()
        self.sync()
        return deleted

    def _delete_where(self, filters: list[str]) -> int:
        """Delete the rows each filter matches (one commit per filter); returns how many."""
        deleted = 0
        for where in filters:
            result = self._retry("delete", functools.partial(self._delete_once, where))
            count = result["num_deleted_rows"] if isinstance(result, dict) else getattr(result, "num_deleted_rows", 0)
            deleted += int(count)
        return deleted

    def _delete_once(self, where: str):
        return self._latest().delete(where)

    def dedupe(self) -> int:
        """Delete older rows of ids stored twice (two writers of one id, a crash mid-replacement); returns how many."""
        self.refresh()
        stale = self._require().stale_row_ids().tolist()
        self._delete_where([f"_rowid IN ({', '.join(map(str, c))})" for c in _chunks(stale)])
        self.refresh()
        return len(stale)

    def compact(self, keep_versions_seconds: float | None = None) -> dict[str, Any]:
        """Merge fragments, drop deleted rows and duplicate ids, remove versions replaced ``keep_versions_seconds`` ago
        (``KEEP_VERSIONS_S``) and killed writers' files older than ``UNVERIFIED_FILE_AGE_DAYS``. Safe beside others."""
        keep = KEEP_VERSIONS_S if keep_versions_seconds is None else float(keep_versions_seconds)
        if not keep >= 0:
            raise InputError(f"keep_versions_seconds: received {keep_versions_seconds!r}, expected a number >= 0")
        # One compaction at a time: Lance lets only one of two compactors' Rewrite commits land ("preempted
        # by concurrent transaction Rewrite"); a second compactor waits here, then finds little to do.
        with self._file_lock(COMPACT_LOCK):
            duplicates = self.dedupe()
            # compact_files commits a Rewrite; a concurrent delete of the same fragments conflicts and is retried.
            metrics = self._retry("compaction", self._latest().optimize.compact_files)
            stats = self._retry("removing old versions", lambda: self._remove_old_versions(keep))
            self.refresh()
            self.sync()
        result = {name: getattr(metrics, name, None) for name in ("fragments_removed", "fragments_added")}
        result["old_versions_removed"] = getattr(stats, "old_versions", 0)
        return result | {"bytes_removed": getattr(stats, "bytes_removed", 0), "duplicates_removed": duplicates}

    def _remove_old_versions(self, keep: float):
        """Lance's cleanup_old_versions, ``delete_unverified=False`` (``True`` deleted a live writer's new files:
        issue 18, item 1); only versions whose successor is older than ``keep`` (their age for readers) are passed."""
        ds = self._latest()
        versions = sorted(ds.versions(), key=lambda v: v["version"])
        horizon = time.time() - keep
        # Lance's timestamps are naive local times: .timestamp() reads them as such.
        old = [v["version"] for v, newer in itertools.pairwise(versions) if newer["timestamp"].timestamp() <= horizon]
        # With no old version, pass the latest (never removed; an empty list is refused): the
        # sweep of week-old files of killed writers still runs (measured on pylance 14.0.2).
        return ds.cleanup_old_versions(
            older_than=timedelta(seconds=keep), versions=old or [ds.version], delete_unverified=False
        )

    def sync(self, since: float | None = None) -> None:
        """fsync the dataset's files (modified at or after ``since``, a time.time()) and folders: Lance does not."""
        if self.location.local is None:
            return  # an object store acknowledges a PUT once it is durable
        try:
            fsync_tree(self.location.local / DATASET, since)
        except OSError as exc:
            message = f"{self.uri}: cannot make the commit durable (fsync: {exc.strerror or exc})"
            raise GalleryUnavailableError(message) from exc

    def save(self, path: str | os.PathLike) -> Gallery:
        """Copy the committed gallery to ``path`` (an empty or missing folder) and return it. Manifests go first: the
        files a copied version references were written before it, so they are there when copied next."""
        target = gallery_root(path)
        if self.location.local is None:
            raise GalleryError(
                f"{self.root}: save copies a local gallery; copy one on object storage with the store's own tools "
                "(e.g. aws s3 sync), or index into the URI directly"
            )
        root = self.location.local
        if target == root:
            return self
        if target.exists() and any(target.iterdir()):
            raise GalleryError(f"{target}: exists and is not empty; refusing to write into it")
        tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
        skip = shutil.ignore_patterns("*.tmp", "*.lock", ".lock", ".tmp*")
        try:
            shutil.copytree(root / DATASET / "_versions", tmp / DATASET / "_versions", ignore=skip)
            shutil.copytree(root, tmp, ignore=skip, dirs_exist_ok=True)
            fsync_tree(tmp)
            if target.exists():
                target.rmdir()
            os.replace(tmp, target)
            fsync_path(target.parent)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            message = f"{target}: cannot write the copy of {self.root} ({exc.strerror or exc})"
            raise GalleryUnavailableError(message) from exc
        return Gallery.open(target)


def new_key() -> int:
    """A commit's key (the ``batch`` column of its rows): random, so writers never share one."""
    return secrets.randbits(62)


def _open_remote(location: GalleryLocation, what: str):
    """The latest version of the dataset at ``location`` on object storage; None when there is none."""
    uri = location.join(DATASET)
    try:
        return _lance().dataset(uri, storage_options=location.storage_options or None)
    except LANCE_ERRORS as exc:
        if _NOT_FOUND.search(lance_message(exc)):
            return None
        with lance_io(f"{uri}: {what}"):
            raise


def _chunks(ids: Sequence) -> list[list]:
    return [list(ids[start : start + FILTER_CHUNK]) for start in range(0, len(ids), FILTER_CHUNK)]


def _fixed_binary(rows: np.ndarray):
    import pyarrow as pa

    rows = np.ascontiguousarray(rows, np.uint8)
    width = rows.shape[1]
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(rows), [None, pa.py_buffer(rows.tobytes())])


def fsync_tree(root: Path, since: float | None = None) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_path(os.path.join(folder, name), since)
        fsync_path(folder)


def fsync_path(path: str | os.PathLike, since: float | None = None) -> None:
    """fsync a file or folder unless modified before ``since``; one gone meanwhile (another writer's) is skipped."""
    try:
        if since is not None and os.stat(path).st_mtime < since - 1:  # 1 s: coarse file-system clocks
            return
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
