"""A gallery of encoded photos on disk: the fixed layout is the interface.

Layout, version 1 (everything but ``gallery.json`` lives in ``shards/``)::

    <gallery>/
      gallery.json                  the commit record (written atomically, last)
      pending.json                  shards of an indexing run that has not committed (resume state)
      .lock                         held while a process writes
      shards/<name>.tokens.npy      float16 (n, tokens, width): all encoder tokens, memory-mapped
      shards/<name>.ret.npy         float32 (n, width): token 0, L2-normalised (stage-1 search)
      shards/<name>.meta.json       {"ids": [...], "paths": [... or null]}
      shards/<name>.proj.npy        optional float16 (n, 3N-1, width): the photo side of the relation
                                    head (keys N | queries N-1 | values N), for galleries created with
                                    projections=True (reranking then skips that per-candidate work)

``gallery.json``::

    {"format": "zse-gallery", "version": 1, "count": N,
     "tokens": [197, 768], "token_dtype": "float16",
     "model": {"name": "zse_vit_b16", "checkpoint_sha256": "..."},
     "shards": [{"name": "000000-1a2b3c", "count": n, "sha256": {"tokens": ..., "ret": ..., "meta": ...}}]}

Why this shape: shards are immutable once written, so appending never rewrites
old data, and a reader memory-maps them (a gallery larger than RAM works). A
write becomes visible only when ``gallery.json`` is replaced (``os.replace`` of
a fully written temp file), so a crash or an error midway leaves the previous
gallery readable and intact. Shards finished by an interrupted run are listed
in ``pending.json``; the next indexing run adopts them instead of encoding
those photos again, and commits them with its own.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import secrets
import shutil
import tempfile
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ...errors import GalleryError, IntegrityError
from ...manifest import read_json, write_bytes_atomic, write_json_atomic
from ...vectors import l2_normalize

_log = logging.getLogger(__name__)

FORMAT = "zse-gallery"
VERSION = 1
RECORD = "gallery.json"
PENDING = "pending.json"
SHARD_DIR = "shards"
TOKEN_DTYPE = np.float16
PARTS = ("tokens", "ret", "meta")


@dataclass
class Shard:
    name: str
    count: int
    sha256: dict[str, str]
    ids: list[str] = field(default_factory=list, repr=False)
    paths: list[str | None] = field(default_factory=list, repr=False)
    tokens: np.ndarray | None = field(default=None, repr=False)  # memmap (n, T, D) float16
    ret: np.ndarray | None = field(default=None, repr=False)  # (n, D) float32, unit norm
    proj: np.ndarray | None = field(default=None, repr=False)  # memmap (n, 3T-1, D) float16, optional

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "count": self.count, "sha256": dict(self.sha256)}


def _part_path(root: Path, name: str, part: str) -> Path:
    suffix = ".meta.json" if part == "meta" else f".{part}.npy"
    return root / SHARD_DIR / f"{name}{suffix}"


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


class Gallery:
    """Encoded photos: ids, source paths, tokens (float16) and normalised ret-tokens.

    Open an existing folder with :meth:`open`, or create one with :meth:`create`
    (``path=None`` keeps it in a temporary folder until :meth:`save`).
    """

    def __init__(
        self, root: Path, tokens_shape: tuple[int, int], model: dict[str, Any], temporary: bool = False, projections: bool = False
    ):
        self.root = root
        self.tokens_shape = tuple(tokens_shape)
        self.model = dict(model)
        self.projections = projections
        self.parts = PARTS + (("proj",) if projections else ())
        n, d = self.tokens_shape
        self.proj_shape = (3 * n - 1, d)
        self.shards: list[Shard] = []
        self.temporary = temporary
        self._ret_matrix: np.ndarray | None = None
        self._offsets: np.ndarray | None = None
        self._id_set: set[str] | None = None
        if temporary:
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(root), True)

    # ------------------------------------------------------------------ creation and loading
    @classmethod
    def create(
        cls, path: str | os.PathLike | None, tokens_shape: tuple[int, int], model: dict[str, Any], projections: bool = False
    ) -> "Gallery":
        """A new empty gallery at ``path`` (must not hold one), or in a temporary folder."""
        if path is None:
            root = Path(tempfile.mkdtemp(prefix="zse-gallery-"))
            gallery = cls(root, tokens_shape, model, temporary=True, projections=projections)
        else:
            root = Path(path)
            if (root / RECORD).exists():
                raise GalleryError(f"{root}: already holds a gallery; open it with Gallery.open to append")
            gallery = cls(root, tokens_shape, model, projections=projections)
        (root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        gallery._commit([])
        return gallery

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Gallery":
        root = Path(path)
        record_path = root / RECORD
        if not record_path.is_file():
            raise GalleryError(f"{root}: no {RECORD}; expected a gallery folder written by zse-infer")
        record = read_json(record_path, GalleryError)
        if record.get("format") != FORMAT or record.get("version") != VERSION:
            raise GalleryError(
                f"{record_path}: format {record.get('format')!r} version {record.get('version')!r}; "
                f"expected {FORMAT!r} version {VERSION}"
            )
        try:
            gallery = cls(root, tuple(record["tokens"]), record.get("model", {}), projections="proj" in record.get("parts", PARTS))
            gallery.shards = [gallery._load_shard(s["name"], int(s["count"]), s.get("sha256", {})) for s in record["shards"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise GalleryError(f"{record_path}: malformed gallery record ({exc})") from exc
        if sum(s.count for s in gallery.shards) != record.get("count"):
            raise GalleryError(f"{record_path}: shard counts do not add up to count {record.get('count')}")
        return gallery

    def _load_shard(self, name: str, count: int, sha: dict[str, str]) -> Shard:
        paths = {p: _part_path(self.root, name, p) for p in self.parts}
        for part, path in paths.items():
            if not path.is_file():
                raise GalleryError(f"{path}: shard file listed in {RECORD} is missing")
        try:
            tokens = np.load(paths["tokens"], mmap_mode="r", allow_pickle=False)
            ret = np.load(paths["ret"], allow_pickle=False)
            meta = json.loads(paths["meta"].read_text())
            proj = np.load(paths["proj"], mmap_mode="r", allow_pickle=False) if self.projections else None
        except (OSError, ValueError, json.JSONDecodeError) as exc:
            raise GalleryError(f"{self.root / SHARD_DIR}: shard {name} is unreadable ({exc})") from exc
        expect_tokens = (count, *self.tokens_shape)
        if tokens.shape != expect_tokens or tokens.dtype != TOKEN_DTYPE:
            raise GalleryError(
                f"{paths['tokens']}: received {tokens.dtype} {tokens.shape}, expected float16 {expect_tokens}"
            )
        if ret.shape != (count, self.tokens_shape[1]) or len(meta.get("ids", [])) != count:
            raise GalleryError(f"{self.root / SHARD_DIR}: shard {name} parts disagree on the row count {count}")
        if proj is not None and proj.shape != (count, *self.proj_shape):
            raise GalleryError(f"{paths['proj']}: received shape {proj.shape}, expected {(count, *self.proj_shape)}")
        return Shard(name, count, dict(sha), list(meta["ids"]), list(meta["paths"]), tokens, ret, proj)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return sum(s.count for s in self.shards)

    @property
    def ids(self) -> list[str]:
        return [i for s in self.shards for i in s.ids]

    @property
    def paths(self) -> list[str | None]:
        return [p for s in self.shards for p in s.paths]

    def id_set(self) -> set[str]:
        if self._id_set is None:
            self._id_set = set(self.ids)
        return self._id_set

    def ret_matrix(self) -> np.ndarray:
        """(N, D) float32 unit ret-tokens of all photos (cached until the next append)."""
        if self._ret_matrix is None:
            parts = [s.ret for s in self.shards]
            self._ret_matrix = np.concatenate(parts) if parts else np.zeros((0, self.tokens_shape[1]), np.float32)
        return self._ret_matrix

    def _locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._offsets is None:
            self._offsets = np.cumsum([0] + [s.count for s in self.shards])
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise GalleryError(f"row index out of range for a gallery of {len(self)} photos")
        shard = np.searchsorted(self._offsets, rows, side="right") - 1
        return shard, rows - self._offsets[shard]

    def tokens(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """float32 (len(rows), T, D) tokens of the given gallery rows, in the order given."""
        return self._gather(rows, "tokens", self.tokens_shape)

    def projections_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """float32 (len(rows), 3T-1, D) stored photo-side projections (galleries with projections=True)."""
        if not self.projections:
            raise GalleryError(f"{self.root}: this gallery stores no projections (create it with projections=True)")
        return self._gather(rows, "proj", self.proj_shape)

    def _gather(self, rows, part: str, shape: tuple[int, int]) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *shape), dtype=np.float32)
        shard_idx, local = self._locate(rows)
        for s in np.unique(shard_idx):
            mask = shard_idx == s
            order = np.argsort(local[mask])  # sorted reads are kinder to the page cache
            out_rows = np.flatnonzero(mask)[order]
            out[out_rows] = getattr(self.shards[s], part)[local[mask][order]]
        return out

    def row_info(self, row: int) -> tuple[str, str | None]:
        shard, local = self._locate(np.array([row]))
        s = self.shards[int(shard[0])]
        return s.ids[int(local[0])], s.paths[int(local[0])]

    def verify(self) -> None:
        """Recompute every shard file's sha256 against the record (slow: reads all tokens)."""
        from ...manifest import sha256_file

        for shard in self.shards:
            for part in self.parts:
                path = _part_path(self.root, shard.name, part)
                if shard.sha256.get(part) and sha256_file(path) != shard.sha256[part]:
                    raise IntegrityError(f"{path}: sha256 does not match {RECORD}")

    # ------------------------------------------------------------------ writing
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the gallery's write lock: one writing process at a time."""
        lock_path = self.root / ".lock"
        with open(lock_path, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise GalleryError(f"{self.root}: another process is writing this gallery") from exc
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write_shard(
        self, tokens: np.ndarray, ids: Sequence[str], paths: Sequence[str | None], proj: np.ndarray | None = None
    ) -> Shard:
        """Write one immutable shard (not yet visible to readers: call :meth:`commit`)."""
        n = len(ids)
        if tokens.shape != (n, *self.tokens_shape) or len(paths) != n:
            raise GalleryError(f"shard of {n} ids received tokens {tokens.shape}, expected {(n, *self.tokens_shape)}")
        if self.projections and (proj is None or proj.shape != (n, *self.proj_shape)):
            got = None if proj is None else proj.shape
            raise GalleryError(f"shard of {n} ids received projections {got}, expected {(n, *self.proj_shape)}")
        name = f"{len(self) + n:09d}-{secrets.token_hex(4)}"
        tok16 = np.ascontiguousarray(tokens, dtype=TOKEN_DTYPE)
        # Normalise the stored float16 token 0, so stage 1 ranks exactly what stage 2 reads.
        ret = l2_normalize(tok16[:, 0].astype(np.float32))
        meta = json.dumps({"ids": list(ids), "paths": list(paths)}).encode()
        sha = {
            "tokens": write_bytes_atomic(_part_path(self.root, name, "tokens"), _npy_bytes(tok16)),
            "ret": write_bytes_atomic(_part_path(self.root, name, "ret"), _npy_bytes(ret)),
            "meta": write_bytes_atomic(_part_path(self.root, name, "meta"), meta),
        }
        if self.projections:
            sha["proj"] = write_bytes_atomic(_part_path(self.root, name, "proj"), _npy_bytes(proj.astype(TOKEN_DTYPE)))
        return self._load_shard(name, n, sha)

    def read_pending(self) -> list[Shard]:
        """Shards finished by an indexing run that never committed (crash, kill); unreadable ones are dropped."""
        path = self.root / PENDING
        if not path.is_file():
            return []
        try:
            entries = json.loads(path.read_text()).get("shards", [])
        except (OSError, json.JSONDecodeError, AttributeError):
            _log.warning("%s: unreadable, ignoring unfinished shards", path)
            return []
        shards = []
        for e in entries:
            try:
                shards.append(self._load_shard(e["name"], int(e["count"]), e.get("sha256", {})))
            except (GalleryError, KeyError, TypeError, ValueError) as exc:
                _log.warning("dropping unfinished shard %s: %s", e.get("name"), exc)
        return shards

    def write_pending(self, shards: Sequence[Shard]) -> None:
        if shards:
            write_json_atomic(self.root / PENDING, {"shards": [s.entry() for s in shards]})
        else:
            (self.root / PENDING).unlink(missing_ok=True)

    def commit(self, new_shards: Sequence[Shard]) -> None:
        """Make ``new_shards`` part of the gallery (one atomic replace of gallery.json)."""
        self._commit([*self.shards, *new_shards])
        (self.root / PENDING).unlink(missing_ok=True)
        self.remove_orphans()

    def _commit(self, shards: list[Shard]) -> None:
        record = {
            "format": FORMAT,
            "version": VERSION,
            "count": sum(s.count for s in shards),
            "tokens": list(self.tokens_shape),
            "token_dtype": np.dtype(TOKEN_DTYPE).name,
            "parts": list(self.parts),
            "model": self.model,
            "shards": [s.entry() for s in shards],
        }
        write_json_atomic(self.root / RECORD, record)
        self.shards = shards
        self._ret_matrix = self._offsets = self._id_set = None

    def discard(self, shards: Sequence[Shard]) -> None:
        for s in shards:
            for part in self.parts:
                _part_path(self.root, s.name, part).unlink(missing_ok=True)

    def remove_orphans(self) -> None:
        """Delete shard files neither committed nor pending (left by a crash mid-write)."""
        keep = {s.name for s in self.shards} | {s.name for s in self.read_pending()}
        for path in (self.root / SHARD_DIR).iterdir():
            name = path.name.split(".")[0]
            if name and name not in keep and not path.name.startswith("."):
                path.unlink(missing_ok=True)
            elif path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)

    def save(self, path: str | os.PathLike) -> "Gallery":
        """Copy the committed gallery to ``path`` (replacing a gallery there atomically) and return it."""
        target = Path(path)
        if target.resolve() == self.root.resolve():
            return self
        if target.exists() and any(target.iterdir()) and not (target / RECORD).is_file():
            raise GalleryError(f"{target}: exists, is not empty and holds no gallery; refusing to write into it")
        (target / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        for s in self.shards:
            for part in self.parts:
                src, dst = _part_path(self.root, s.name, part), _part_path(target, s.name, part)
                if not dst.exists():
                    tmp = dst.with_name(f".{dst.name}.tmp")
                    shutil.copyfile(src, tmp)
                    os.replace(tmp, dst)
        saved = Gallery(target, self.tokens_shape, self.model, projections=self.projections)
        saved._commit([saved._load_shard(s.name, s.count, s.sha256) for s in self.shards])
        saved.remove_orphans()
        return saved
