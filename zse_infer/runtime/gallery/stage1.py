"""Stage 1 for a gallery snapshot: exact below ``APPROX_MIN`` photos, above it an IVF-Flat index
(labels: stable Lance row ids) kept in ``<gallery>/stage1/`` (``ivf.json`` names the folder holding
``ivf.faiss`` and ``rowids.npy``) and updated incrementally: docs/galleries.md ("Stage 1 at scale"),
docs/cluster.md on object storage. Both index only the newest row of each id.

Why IVF-Flat and not HNSW: IVF supports removal (deletes) and incremental adds without a rebuild,
trains in seconds at 1M, and its file loads in well under a second (``benchmarks/gallery_scale.py``).
Stage 2 reranks the candidates, so a rare miss deep in the candidate list costs little.
"""

from __future__ import annotations

import fcntl
import importlib.util
import io
import json
import logging
import secrets
from pathlib import Path

import numpy as np

from ...errors import ZseError
from .stage1_index import RetIndex

_log = logging.getLogger(__name__)

APPROX_MIN = 1_000_000
STAGE1_DIR = "stage1"
NPROBE = 16
#: recall@100 (against exact search) the IVF index is tuned to reach by raising nprobe
TARGET_RECALL = 0.95
#: photos sampled to train the coarse quantiser, and queries sampled to measure recall
TRAIN_SAMPLE = 50_000
RECALL_QUERIES = 50


class ExactIndex:
    def __init__(self, vectors: np.ndarray, rowids: np.ndarray, version: int):
        self.version = version
        self.rowids = rowids
        self._index = RetIndex(vectors)
        self.kind = self._index.kind

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = self._index.search(queries, k)
        return scores, self.rowids[rows]


class IvfIndex:
    kind = "ivf"

    def __init__(self, index, version: int, meta: dict):
        self.index = index
        self.version = version
        self.meta = meta
        index.nprobe = int(meta.get("nprobe", NPROBE))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, k) scores and row ids; where the probed lists held fewer than k rows, the tail
        of that query's row holds row id -1 (each query's count differs: callers drop them)."""
        scores, labels = self.index.search(np.ascontiguousarray(queries, np.float32), k)
        return scores, labels.astype(np.int64)


def build_ivf(vectors: np.ndarray, rowids: np.ndarray, seed: int = 0):
    """A trained IVF-Flat inner-product index over ``vectors`` labelled by ``rowids``, with the
    smallest nprobe (from ``NPROBE``, doubling) whose recall@100 against exact search on
    sampled gallery vectors reaches ``TARGET_RECALL`` (or nlist / 4); returns (index, recall)."""
    import faiss

    n, d = vectors.shape
    nlist = max(16, int(np.sqrt(n)))
    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(n, min(n, max(TRAIN_SAMPLE, 40 * nlist)), replace=False))]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(np.ascontiguousarray(sample, np.float32))
    index.add_with_ids(np.ascontiguousarray(vectors, np.float32), rowids.astype(np.int64))
    queries = vectors[rng.choice(n, min(n, RECALL_QUERIES), replace=False)]
    truth = rowids[RetIndex(vectors, kind="exact").search(queries, 100)[1]]
    nprobe = NPROBE
    while True:
        index.nprobe = nprobe
        recall = recall_at(index, truth, queries)
        if recall >= TARGET_RECALL or nprobe * 2 > nlist // 4:
            return index, recall
        nprobe *= 2


def recall_at(index, truth: np.ndarray, queries: np.ndarray) -> float:
    """Share of the exact top-k (``truth``, row ids) that the index finds."""
    _, got = index.search(np.ascontiguousarray(queries, np.float32), truth.shape[1])
    return sum(len(set(t.tolist()) & set(g.tolist())) for t, g in zip(truth, got, strict=False)) / float(truth.size)


class Stage1Cache:
    """The stage-1 index of the latest snapshot asked for (one per retriever)."""

    def __init__(self, gallery):
        self.gallery = gallery
        self._index = None

    def index_for(self, snap):
        if self._index is not None and self._index.version == snap.version:
            return self._index
        # A gallery that has an index file keeps using it (also after deletes take it below the threshold).
        has_faiss = importlib.util.find_spec("faiss") is not None
        if has_faiss and not self.gallery.temporary and (len(snap) >= APPROX_MIN or self._kept()):
            self._index = self._ivf(snap)
        else:
            vectors, rowids = snap.search_rows()
            self._index = ExactIndex(vectors, rowids, snap.version)
        return self._index

    # ------------------------------------------------------------------ the persisted IVF index
    def _folder(self) -> Path | ObjectFolder | None:
        """Where the index is kept: ``<gallery>/stage1/`` on disk or in an s3:// bucket; None elsewhere
        (gs://, az://, s3+ddb://, or without boto3), where it is built in memory."""
        location = self.gallery.location
        if location.local is not None:
            return location.local / STAGE1_DIR
        if location.uri.startswith("s3://") and importlib.util.find_spec("boto3") is not None:
            return ObjectFolder(location.join(STAGE1_DIR), location.storage_options)
        return None

    def _kept(self) -> bool:
        folder = self._folder()
        try:
            return folder is not None and _peek(folder, "ivf.json") is not None
        except OSError as exc:
            _log.warning("stage-1 index in %s could not be looked up (%s)", folder, exc)
            return False

    def _ivf(self, snap) -> IvfIndex:
        folder = self._folder()
        if folder is None:
            return self._build_ivf(None, snap)
        for attempt in (1, 2):
            try:
                kept = self._kept_ivf(folder, snap)
                if kept is not None:
                    return kept
                break
            except ZseError:
                raise
            except (OSError, RuntimeError, ValueError, KeyError) as exc:
                # Another process replaced the index files between our reading ivf.json and them
                # (it removes the previous folder), or they are damaged: read ivf.json once more, then rebuild.
                step = "retrying" if attempt == 1 else "rebuilding it"
                _log.warning("stage-1 index in %s could not be read (%s); %s", folder, exc, step)
        return self._build_ivf(folder, snap)

    def _kept_ivf(self, folder: Path | ObjectFolder, snap) -> IvfIndex | None:
        """The persisted index, updated to ``snap`` incrementally; None when there is none or it
        must be retrained (the gallery grew 4x since)."""
        import faiss

        pointer = _peek(folder, "ivf.json")
        if pointer is None:
            return None
        meta = json.loads(pointer)
        files = meta["dir"]
        if meta["version"] == snap.version and isinstance(folder, Path):
            # Memory-mapped, read-only: opening costs milliseconds whatever the size.
            return IvfIndex(faiss.read_index(str(folder / files / "ivf.faiss"), faiss.IO_FLAG_MMAP), snap.version, meta)
        index = faiss.deserialize_index(np.frombuffer(_read(folder, f"{files}/ivf.faiss"), np.uint8))
        if meta["version"] == snap.version:
            return IvfIndex(index, snap.version, meta)
        then = np.load(io.BytesIO(_read(folder, f"{files}/rowids.npy")))
        now = snap.search_rows()[1]
        if len(now) > 4 * meta["trained_on"]:
            return None
        added = np.setdiff1d(now, then, assume_unique=True)
        removed = np.setdiff1d(then, now, assume_unique=True)
        if len(removed):
            index.remove_ids(faiss.IDSelectorBatch(removed.astype(np.int64)))
        if len(added):
            ret = np.ascontiguousarray(snap.take(added, ["ret"])["ret"], np.float32)
            index.add_with_ids(ret, added.astype(np.int64))
        _log.info("stage-1 index updated to version %d: %d added, %d removed", snap.version, len(added), len(removed))
        meta = {**meta, "version": snap.version, "count": len(now)}
        self._save(folder, index, np.sort(now), meta)
        return IvfIndex(index, snap.version, meta)

    def _build_ivf(self, folder: Path | ObjectFolder | None, snap) -> IvfIndex:
        vectors, rowids = snap.search_rows()
        _log.info("building the stage-1 IVF index over %d photos (once; kept in %s)", len(rowids), folder)
        index, recall = build_ivf(vectors, rowids)
        _log.info("stage-1 IVF index: nlist %d, nprobe %d, recall@100 %.3f", index.nlist, index.nprobe, recall)
        meta = {
            "version": snap.version,
            "count": len(rowids),
            "trained_on": len(rowids),
            "nlist": index.nlist,
            "nprobe": index.nprobe,
            "recall_at_100": round(recall, 4),
        }
        if folder is not None:
            self._save(folder, index, np.sort(rowids), meta)
        return IvfIndex(index, snap.version, meta)

    @staticmethod
    def _save(folder: Path | ObjectFolder, index, rowids: np.ndarray, meta: dict) -> None:
        """Write the index into a new folder ``v<version>/`` (files fsynced), then point
        ``ivf.json`` at it (tmp + fsync + rename): a crash leaves the previous index whole.
        Under a lock; a process that finds it held skips saving (it keeps its in-memory index)."""
        import shutil

        import faiss

        from ...manifest import write_json_atomic
        from .store import fsync_path, fsync_tree

        if isinstance(folder, ObjectFolder):
            return folder.save(faiss.serialize_index(index).tobytes(), rowids, meta)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = open(folder / ".lock", "a+")  # noqa: SIM115 - closed by the with below
        except OSError as exc:  # a gallery this process may read but not write (a read-only server)
            _log.warning("stage-1 index not saved in %s (%s); it is kept in memory", folder, exc.strerror or exc)
            return
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            try:
                name = f"v{meta['version']}"
                files = folder / name
                shutil.rmtree(files, ignore_errors=True)
                files.mkdir()
                faiss.write_index(index, str(files / "ivf.faiss"))
                np.save(files / "rowids.npy", rowids)
                fsync_tree(files)
                write_json_atomic(folder / "ivf.json", {**meta, "dir": name})
                fsync_path(folder)
                for old in folder.glob("v*"):
                    if old.name != name:
                        shutil.rmtree(old, ignore_errors=True)
            except (OSError, RuntimeError) as exc:  # disk full, say: ivf.json still names the previous index
                _log.warning("stage-1 index not saved in %s (%s); it is kept in memory", folder, exc)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _read(folder: Path | ObjectFolder, name: str) -> bytes:
    """A file of the index folder; OSError when it is not there (replaced meanwhile, say)."""
    data = _peek(folder, name)
    if data is None:
        raise FileNotFoundError(f"{folder}/{name}")
    return data


def _peek(folder: Path | ObjectFolder, name: str) -> bytes | None:
    if isinstance(folder, ObjectFolder):
        return folder.read(name)
    return (folder / name).read_bytes() if (folder / name).is_file() else None


class ObjectFolder:
    """``<gallery>/stage1/`` in an s3:// bucket, with no lock (it would not span machines): each writer
    writes its own ``v<version>-<random>/``, then the ``ivf.json`` pointer; the last one wins (docs/cluster.md)."""

    def __init__(self, uri: str, options: dict[str, str]):
        from ..object_photos import parse_uri, s3_client

        self.uri = uri
        self.bucket, key = parse_uri(uri) or ("", "")
        self.prefix = key.rstrip("/") + "/"
        self.client = s3_client(options)

    def __str__(self) -> str:
        return self.uri

    def _call(self, method: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise OSError(f"{self.uri}: {exc}") from exc

    def read(self, name: str) -> bytes | None:
        got = self._call("get_object", Key=self.prefix + name)
        return None if got is None else got["Body"].read()

    def save(self, index: bytes, rowids: np.ndarray, meta: dict) -> None:
        """The files, then the pointer; then the folders of older versions (a reader of one reads
        the pointer again). A store this process may not write keeps the index in memory."""
        name = f"v{meta['version']}-{secrets.token_hex(4)}"
        rows = io.BytesIO()
        np.save(rows, rowids)
        try:
            self._call("put_object", Key=f"{self.prefix}{name}/ivf.faiss", Body=index)
            self._call("put_object", Key=f"{self.prefix}{name}/rowids.npy", Body=rows.getvalue())
            self._call("put_object", Key=self.prefix + "ivf.json", Body=json.dumps({**meta, "dir": name}).encode())
            listed = self._call("list_objects_v2", Prefix=self.prefix + "v") or {}
            for obj in listed.get("Contents", []):
                folder = obj["Key"][len(self.prefix) :].split("/", 1)[0]
                if int(folder[1:].split("-")[0]) < meta["version"]:
                    self._call("delete_object", Key=obj["Key"])
        except (OSError, ValueError) as exc:
            _log.warning("stage-1 index not saved in %s (%s); it is kept in memory", self.uri, exc)
