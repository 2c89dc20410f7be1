"""Retrieval metrics exactly as the official ZSE-SBIR evaluation (``utils/ap.py``) computes them (definitions:
docs/spec.md, "Retrieval and metrics"; ties and memory: docs/evaluation.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np

from ..errors import InputError, check_int

logger = logging.getLogger(__name__)

__all__ = ["OFFICIAL_METRICS", "TIE_MODES", "DistanceSource", "RankingMetrics", "evaluate_ranking"]

#: The four numbers the official ``test.py`` prints, in its order.
OFFICIAL_METRICS = ("map_all", "map_200", "precision_100", "precision_200")

#: ``ties`` -> ``numpy.argsort`` kind; "official": numpy's default, as ``distance.argsort()`` in the official code.
TIE_MODES: dict[str, Literal["quicksort", "stable"]] = {"official": "quicksort", "stable": "stable"}

# mAP@K and P@K cut-offs the official report always contains.
_OFFICIAL_MAP_KS = (200,)
_OFFICIAL_PRECISION_KS = (100, 200)

# Working memory of one chunk by default: b queries x G photos hold about _BYTES_PER_CELL * b * G bytes
# (the block itself, argsort indices, relevance; what follows works on the few relevant ranks).
_DEFAULT_CHUNK_BYTES = 256 * 2**20
_BYTES_PER_CELL = 16

#: What :func:`evaluate_ranking` accepts as distances; see its docstring.
DistanceSource = np.ndarray | Callable[[int, int], Any] | Iterable[Any]


def evaluate_ranking(
    distance: DistanceSource,
    query_labels: Sequence[Any] | np.ndarray,
    gallery_labels: Sequence[Any] | np.ndarray,
    *,
    ks: Iterable[int] = (),
    chunk_size: int | None = None,
    ties: str = "official",
    progress: bool = False,
) -> dict[str, float]:
    """The official retrieval metrics of a ranking; lower distance = better (for similarities pass ``-score``).
    ``distance`` (n_queries, n_gallery): an array-like with ``.shape`` and row slicing (a memmap, an h5py dataset, a
    list), a callable ``f(start, stop)`` returning those rows, or an iterator of row blocks in query order. Labels:
    integers or strings; each of ``ks`` adds ``precision_K`` and ``map_K``; ``chunk_size``: ~256 MiB by default."""
    queries = _as_labels(query_labels, "query_labels")
    if queries.size == 0:
        raise InputError("query_labels is empty, expected at least one query")
    metrics = RankingMetrics(gallery_labels, ks=ks, ties=ties, chunk_size=chunk_size)
    n_queries = queries.size
    blocks = _distance_blocks(distance, n_queries, metrics.num_gallery, metrics.chunk_size)
    from tqdm.auto import tqdm

    with tqdm(total=n_queries, unit="query", desc="ranking", disable=not progress) as bar:
        for block in blocks:
            start, stop = metrics.num_queries, metrics.num_queries + block.shape[0]
            if stop > n_queries:
                too_many = f"received at least {stop} rows, expected {n_queries}"
                raise InputError(f"distance produced more rows than query_labels: {too_many}")
            metrics.update(block, queries[start:stop])
            bar.update(block.shape[0])
    if metrics.num_queries != n_queries:
        expected = f"expected {n_queries} (one per entry of query_labels)"
        raise InputError(f"distance produced {metrics.num_queries} rows in total, {expected}")
    return metrics.compute()


class RankingMetrics:
    """Accumulates the official metrics block by block of query rows (``update`` per batch, then ``compute``); a
    block larger than ``chunk_size`` rows is ranked in pieces; per-query values are kept for :meth:`per_query`."""

    def __init__(
        self,
        gallery_labels: Sequence[Any] | np.ndarray,
        *,
        ks: Iterable[int] = (),
        ties: str = "official",
        chunk_size: int | None = None,
    ):
        labels = _as_labels(gallery_labels, "gallery_labels")
        if labels.size == 0:
            raise InputError("gallery_labels is empty, expected at least one gallery item")
        if ties not in TIE_MODES:
            raise InputError(f"ties: received {ties!r}, expected one of {sorted(TIE_MODES)}")
        self._sort_kind = TIE_MODES[ties]
        # Classes become integer codes so relevance is one integer comparison per cell.
        self._classes, codes = np.unique(labels, return_inverse=True)
        self._gallery_codes = codes.astype(np.int32).ravel()
        # n_pos per class; the extra trailing 0 serves queries whose class is absent (code -1).
        self._class_counts = np.append(np.bincount(self._gallery_codes), 0)
        values = (ks,) if isinstance(ks, (int, np.integer)) else ks  # a lone int is one cut-off
        self._extra_ks = extra = tuple(sorted({check_int(k, "ks", expected="positive integers") for k in values}))
        self._map_ks = tuple(sorted({*_OFFICIAL_MAP_KS, *extra}))
        self._precision_ks = tuple(sorted({*_OFFICIAL_PRECISION_KS, *extra}))
        self.chunk_size = max(1, _DEFAULT_CHUNK_BYTES // (_BYTES_PER_CELL * labels.size))
        if chunk_size is not None:
            self.chunk_size = check_int(chunk_size, "chunk_size", expected="a positive integer or None")
        self._parts: dict[str, list[np.ndarray]] = {key: [] for key in self._keys()}
        self.num_queries = 0

    @property
    def num_gallery(self) -> int:
        return int(self._gallery_codes.size)

    @property
    def num_skipped(self) -> int:
        """Queries so far whose class has no gallery item (NaN, left out of the means)."""
        return int(sum(np.isnan(part).sum() for part in self._parts["map_all"]))

    def update(self, distance: Any, query_labels: Sequence[Any] | np.ndarray) -> None:
        """Rank the gallery for (n, n_gallery) distances (lower = better) of n queries and record their metrics."""
        block = _check_block(distance, self.num_gallery, "distance")
        codes = self._query_codes(_as_labels(query_labels, "query_labels"))
        if codes.size != block.shape[0]:
            raise InputError(f"query_labels has {codes.size} entries, expected {block.shape[0]} (one per distance row)")
        for start in range(0, block.shape[0], self.chunk_size):
            stop = start + self.chunk_size
            chunk = block[start:stop]  # NaN is refused: argsort would silently rank those items last
            bad_rows = np.flatnonzero(np.isnan(chunk).any(axis=1)) if chunk.dtype.kind == "f" else np.empty(0, int)
            if bad_rows.size:
                row = self.num_queries + start + int(bad_rows[0])
                where = f"row {row} contains NaN ({bad_rows.size} rows in this chunk)"
                raise InputError(f"distance: {where}, expected finite or infinite distances")
            values = self._rank_chunk(chunk, codes[start:stop])
            for key, value in values.items():
                self._parts[key].append(value)
        self.num_queries += block.shape[0]

    def per_query(self) -> dict[str, np.ndarray]:
        """Every metric for every query so far, (num_queries,) float64; NaN = skipped."""
        return {key: np.concatenate(parts) if parts else np.empty(0) for key, parts in self._parts.items()}

    def compute(self) -> dict[str, float]:
        """The nanmean of each metric over the queries so far, as in the official code."""
        if self.num_queries == 0:
            raise InputError("no queries were added: call update() with at least one distance row")
        per_query = self.per_query()
        valid = ~np.isnan(per_query["map_all"])
        n_valid = int(valid.sum())
        if n_valid == 0:
            logger.warning("none of the %d queries has a relevant gallery item; every metric is NaN", self.num_queries)
            return {key: float("nan") for key in per_query}
        if n_valid < self.num_queries:
            logger.info(
                "%d of %d queries have no relevant gallery item and are skipped (as the official nanmean)",
                self.num_queries - n_valid,
                self.num_queries,
            )
        # NaN exactly where the class is absent, for every metric alike, so a plain mean
        # over the valid queries equals the official nanmean.
        return {key: float(values[valid].mean()) for key, values in per_query.items()}

    def _keys(self) -> list[str]:
        extra = [f"{metric}_{k}" for k in self._extra_ks for metric in ("precision", "map")]
        return list(dict.fromkeys([*OFFICIAL_METRICS, *extra]))

    def _query_codes(self, labels: np.ndarray) -> np.ndarray:
        """Gallery class code of each query label, -1 when the class has no gallery item."""
        if _label_kind(labels) != _label_kind(self._classes):
            expected = "expected labels of the same kind (both integers or both strings)"
            raise InputError(
                f"query_labels have dtype {labels.dtype}, gallery_labels {self._classes.dtype}: {expected}"
            )
        idx = np.searchsorted(self._classes, labels)
        inside = idx < self._classes.size
        found = np.zeros(labels.shape, dtype=bool)
        found[inside] = self._classes[idx[inside]] == labels[inside]
        return np.where(found, idx, -1).astype(np.int32)

    def _rank_chunk(self, distance: np.ndarray, codes: np.ndarray) -> dict[str, np.ndarray]:
        """All metrics for one chunk of queries, vectorised over the chunk."""
        # The official call, row by row, in the caller's dtype (see "Ties" above).
        order = np.argsort(distance, axis=1, kind=self._sort_kind)
        relevant = np.take_along_axis(self._gallery_codes == codes[:, None], order, axis=1)
        del order
        n_pos = self._class_counts[codes]
        hit_ranks = _hit_ranks(relevant, n_pos)
        del relevant
        out: dict[str, np.ndarray] = {"map_all": _voc_ap(hit_ranks, n_pos)}
        for k in self._map_ks:
            top = min(k, self.num_gallery)
            out[f"map_{k}"] = _voc_ap(hit_ranks, np.minimum(n_pos, top), cutoff=top)
        for k in self._precision_ks:
            top = np.minimum(n_pos, k)
            # Official P@K: relevant fraction of the first min(K, n_pos) results.
            out[f"precision_{k}"] = _ratio((hit_ranks <= top[:, None]).sum(axis=1), top)
        return {key: out[key] for key in self._keys()}


def _hit_ranks(relevant: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """1-based rank of each query's relevant items, ascending, as a padded (n, max n_pos) array (all the metrics
    need); float64 so the padding can be +inf (precision n/inf = 0)."""
    rows, cols = np.nonzero(relevant)  # row-major: each row's hits come in rank order
    first = np.cumsum(n_pos) - n_pos  # flat index of each row's first hit
    nth = np.arange(rows.size) - first[rows]  # 0-based index of the hit within its row
    ranks = np.full((relevant.shape[0], int(n_pos.max(initial=0))), np.inf)
    ranks[rows, nth] = cols + 1
    return ranks


def _voc_ap(hit_ranks: np.ndarray, n_pos: np.ndarray, cutoff: int | None = None) -> np.ndarray:
    """VOC AP per row of ``hit_ranks`` (NaN where ``n_pos`` is 0; ``cutoff``: only hits in the first ``cutoff`` ranks).
    Recall rises by ``1 / n_pos`` exactly at the hits, so the official sum is the precision envelope summed over the
    hits / ``n_pos``; precision only falls between hits: the envelope is the running maximum from the right."""
    precision = np.arange(1, hit_ranks.shape[1] + 1) / hit_ranks  # n / rank at the n-th hit: the official division
    if cutoff is not None:
        precision[hit_ranks > cutoff] = 0.0  # like the padding: a 0 never raises the envelope
    envelope = precision[:, ::-1]
    np.maximum.accumulate(envelope, axis=1, out=envelope)
    return _ratio(precision.sum(axis=1), n_pos)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (a query without positives)."""
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _as_labels(labels: Any, name: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.dtype == object and all(isinstance(item, str) for item in array.flat):
        array = array.astype(str)  # e.g. a pandas column of class names
    if array.ndim != 1:
        raise InputError(f"{name}: received shape {array.shape}, expected a 1-D sequence of labels")
    if array.size == 0:
        return array.astype(np.int64)  # `[]` is float64 to numpy; emptiness is the caller's error
    if _label_kind(array) is None:
        raise InputError(f"{name}: received dtype {array.dtype}, expected integer or string labels")
    return array


def _label_kind(array: np.ndarray) -> str | None:
    """ "int" or "str": labels of one kind compare with labels of the same kind only."""
    return {"i": "int", "u": "int", "U": "str", "S": "bytes"}.get(array.dtype.kind)


def _check_block(block: Any, n_gallery: int, name: str) -> np.ndarray:
    # np.asanyarray keeps memmaps as they are (no copy into memory).
    array = np.asanyarray(block)
    if array.ndim != 2 or array.shape[1] != n_gallery:
        expected = f"expected (n_queries, {n_gallery}) with one column per gallery item"
        raise InputError(f"{name}: received shape {tuple(array.shape)}, {expected}")
    if array.dtype.kind not in "fiu":
        raise InputError(f"{name}: received dtype {array.dtype}, expected real numbers (float or integer)")
    return array


def _distance_blocks(source: DistanceSource, n_queries: int, n_gallery: int, chunk_size: int) -> Iterator[np.ndarray]:
    if isinstance(source, (list, tuple)):
        source = np.asarray(source)
    if hasattr(source, "shape") and hasattr(source, "__getitem__"):
        array, shape = source, tuple(source.shape)
        if shape != (n_queries, n_gallery):
            expected = f"({n_queries}, {n_gallery}) = (len(query_labels), len(gallery_labels))"
            raise InputError(f"distance: received shape {shape}, expected {expected}")
        return _row_blocks(lambda start, stop: array[start:stop], n_queries, n_gallery, chunk_size, named=False)
    if callable(source):
        return _row_blocks(source, n_queries, n_gallery, chunk_size, named=True)
    if isinstance(source, Iterable):
        return (_check_block(block, n_gallery, f"distance block {i}") for i, block in enumerate(source))
    expected = "an array, a callable f(start, stop) -> rows, or an iterable of row blocks"
    raise InputError(f"distance: received {type(source).__name__}, expected {expected}")


def _row_blocks(
    fn: Callable[[int, int], Any], n_queries: int, n_gallery: int, chunk_size: int, named: bool
) -> Iterator[np.ndarray]:
    """``fn(start, stop)`` for consecutive chunks, checked (``named``: errors name the call)."""
    for start in range(0, n_queries, chunk_size):
        stop = min(start + chunk_size, n_queries)
        name = f"distance({start}, {stop})" if named else "distance"
        block = _check_block(fn(start, stop), n_gallery, name)
        if block.shape[0] != stop - start:
            raise InputError(f"{name} returned {block.shape[0]} rows, expected {stop - start}")
        yield block
