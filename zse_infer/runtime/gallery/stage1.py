"""Stage 1 for a gallery snapshot: exact below ``APPROX_MIN`` photos, above it an IVF-Flat index over the newest row
of each id, kept in ``<gallery>/stage1/`` and updated incrementally (docs/galleries.md, "Stage 1 at scale";
docs/cluster.md). IVF-Flat, not HNSW: it removes and adds without a rebuild, trains in seconds at 1M and loads in
well under a second (``benchmarks/gallery_scale.py``); stage 2 reranks, so a rare deep miss costs little."""

from __future__ import annotations

import fcntl
import importlib.util
import io
import json
import logging
import secrets
import shutil
from pathlib import Path

import numpy as np

from ...errors import ZseError
from .stage1_index import RetIndex

_log = logging.getLogger(__name__)

APPROX_MIN = 1_000_000
STAGE1_DIR = "stage1"
NPROBE = 16
TARGET_RECALL = 0.95  #: recall@100 (against exact search) the IVF index is tuned to reach by raising nprobe
TRAIN_SAMPLE = 50_000  #: photos sampled to train the coarse quantiser
RECALL_QUERIES = 50  #: queries sampled to measure recall


class ExactIndex:
    def __init__(self, vectors: np.ndarray, rowids: np.ndarray, version: int):
        self.version, self.rowids, self._index = version, rowids, RetIndex(vectors)
        self.kind = self._index.kind

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = self._index.search(queries, k)
        return scores, self.rowids[rows]


class IvfIndex:
    kind = "ivf"

    def __init__(self, index, version: int, meta: dict):
        self.index, self.version, self.meta = index, version, meta
        index.nprobe = int(meta.get("nprobe", NPROBE))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, k) scores and row ids; row id -1 pads a query whose probed lists held fewer than k rows."""
        scores, labels = self.index.search(np.ascontiguousarray(queries, np.float32), k)
        return scores, labels.astype(np.int64)


def build_ivf(vectors: np.ndarray, rowids: np.ndarray, seed: int = 0):
    """A trained IVF-Flat inner-product index over ``vectors`` labelled by ``rowids``, and the smallest nprobe (from
    ``NPROBE``, doubling, up to nlist / 4) whose sampled recall@100 reaches ``TARGET_RECALL``: (index, recall)."""
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
        self.gallery, self._index = gallery, None

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

    def _folder(self) -> Path | ObjectFolder | None:
        """``<gallery>/stage1/`` on disk or in an s3:// bucket; None (built in memory) elsewhere or without boto3."""
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
        """The kept index, updated to ``snap``; None when there is none or it must be retrained (4x growth since)."""
        import faiss

        if (pointer := _peek(folder, "ivf.json")) is None:
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
        added, removed = np.setdiff1d(now, then, assume_unique=True), np.setdiff1d(then, now, assume_unique=True)
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
        meta = {"version": snap.version, "count": len(rowids), "trained_on": len(rowids), "nlist": index.nlist}
        meta.update(nprobe=index.nprobe, recall_at_100=round(recall, 4))
        if folder is not None:
            self._save(folder, index, np.sort(rowids), meta)
        return IvfIndex(index, snap.version, meta)

    @staticmethod
    def _save(folder: Path | ObjectFolder, index, rowids: np.ndarray, meta: dict) -> None:
        """Write ``v<version>/`` (fsynced), then point ``ivf.json`` at it atomically: a crash leaves the previous index
        whole. Under a lock; a process that finds it held skips saving (it keeps its in-memory index)."""
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
            finally:  # explicitly: a forked child holding the descriptor would otherwise keep the lock
                fcntl.flock(lock, fcntl.LOCK_UN)


def _read(folder: Path | ObjectFolder, name: str) -> bytes:
    """A file of the index folder; OSError when it is not there (replaced meanwhile, say)."""
    if (data := _peek(folder, name)) is None:
        raise FileNotFoundError(f"{folder}/{name}")
    return data


def _peek(folder: Path | ObjectFolder, name: str) -> bytes | None:
    if isinstance(folder, ObjectFolder):
        return folder.read(name)
    return (folder / name).read_bytes() if (folder / name).is_file() else None


class ObjectFolder:
    """``<gallery>/stage1/`` in an s3:// bucket, unlocked: each writer writes ``v<version>-<random>/``, then the
    ``ivf.json`` pointer; the last one wins (docs/cluster.md)."""

    def __init__(self, uri: str, options: dict[str, str]):
        from ..object_photos import parse_uri, s3_client

        self.uri, self.client = uri, s3_client(options)
        self.bucket, key = parse_uri(uri) or ("", "")
        self.prefix = key.rstrip("/") + "/"

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
        """The files, the pointer, then removal of older versions (their readers reread the pointer)."""
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
