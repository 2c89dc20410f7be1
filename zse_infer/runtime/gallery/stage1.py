"""Stage 1 for a gallery snapshot: exact below ``APPROX_MIN`` photos, a persisted IVF index above.

Both index only the newest row of each id (``Snapshot.search_rows``): an id stored twice
(two writers of one new photo) is found once.

* Below ``APPROX_MIN``: exact inner product over the snapshot's ret-token column (numpy, or
  FAISS flat from 50k; see :mod:`.stage1_index`). Nothing is persisted: reading the column
  from Lance is as fast as loading an index file would be.
* From ``APPROX_MIN`` (FAISS installed): an IVF-Flat index (inner product, nprobe raised until recall@100 >= 0.95 on sampled
  gallery vectors, or nlist/4; labels = the
  photos' stable Lance row ids) kept in ``<gallery>/stage1/``: ``ivf.faiss``, the row ids it
  holds (``ivf.rowids.npy``) and ``ivf.json`` (the dataset version it matches, nprobe, the
  recall@100 against exact search measured when it was built). A newer snapshot updates it
  incrementally (adds the new row ids, removes the deleted ones) and writes it back; it is
  retrained when the gallery has grown 4x since. Files are written atomically and fsynced.

Why IVF-Flat and not HNSW: IVF supports removal (deletes) and incremental adds without a
rebuild, trains in seconds at 1M, and its file loads in well under a second; measured in
``benchmarks/gallery_scale.py`` (figures in the README, "Stage 1 at scale"). Stage 2 reranks the
candidates, so a rare miss deep in the candidate list costs little.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
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
    kind = "exact"

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
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
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
        n = len(snap)
        # A gallery that has an index file keeps using it (also after deletes take it below the threshold).
        # On object storage the index is built in memory and not persisted (yet): a local
        # folder named after the URI must never appear (see docs/guarantees.md).
        local = self.gallery.location.local
        kept = local is not None and (local / STAGE1_DIR / "ivf.json").is_file()
        if (n >= APPROX_MIN or kept) and importlib.util.find_spec("faiss") is not None and not self.gallery.temporary:
            self._index = self._ivf(snap)
        else:
            vectors, rowids = snap.search_rows()
            self._index = ExactIndex(vectors, rowids, snap.version)
        return self._index

    # ------------------------------------------------------------------ the persisted IVF index
    def _ivf(self, snap) -> IvfIndex:
        if self.gallery.location.local is None:
            return self._build_ivf(None, snap)
        folder = self.gallery.location.local / STAGE1_DIR
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
                _log.warning(
                    "stage-1 index in %s could not be read (%s); %s",
                    folder,
                    exc,
                    "retrying" if attempt == 1 else "rebuilding it",
                )
        return self._build_ivf(folder, snap)

    def _kept_ivf(self, folder: Path, snap) -> IvfIndex | None:
        """The persisted index, updated to ``snap`` incrementally; None when there is none or it
        must be retrained (the gallery grew 4x since)."""
        import faiss

        meta_path = folder / "ivf.json"
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        files = folder / meta["dir"]
        if meta["version"] == snap.version:
            # Memory-mapped, read-only: opening costs milliseconds whatever the size.
            return IvfIndex(faiss.read_index(str(files / "ivf.faiss"), faiss.IO_FLAG_MMAP), snap.version, meta)
        index = faiss.read_index(str(files / "ivf.faiss"))  # in memory: it is about to change
        then = np.load(files / "rowids.npy")
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

    def _build_ivf(self, folder: Path | None, snap) -> IvfIndex:
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
    def _save(folder: Path, index, rowids: np.ndarray, meta: dict) -> None:
        """Write the index into a new folder ``v<version>/`` (files fsynced), then point
        ``ivf.json`` at it (tmp + fsync + rename): a crash leaves the previous index whole.
        Under a lock; a process that finds it held skips saving (it keeps its in-memory index)."""
        import shutil

        import faiss

        from ...manifest import write_json_atomic
        from .store import fsync_dir, fsync_tree

        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = open(folder / ".lock", "a+")
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
                fsync_dir(folder)
                for old in folder.glob("v*"):
                    if old.name != name:
                        shutil.rmtree(old, ignore_errors=True)
            except (OSError, RuntimeError) as exc:  # disk full, say: ivf.json still names the previous index
                _log.warning("stage-1 index not saved in %s (%s); it is kept in memory", folder, exc)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
