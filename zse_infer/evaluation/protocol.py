"""Evaluating a deployed model with the paper's protocol (rankings: docs/spec.md): :func:`evaluate` is the one loop,
one query batch at a time (memory: a batch times the gallery) into ``RankingMetrics``, on its ``executor``."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError, check_int
from ..runtime.retriever import Retriever
from ..runtime.searcher import exhaustive_distances, ret_token_distances, two_stage_distances
from .datasets import EvalSet
from .executor import Executor, LocalExecutor
from .metrics import RankingMetrics

RANKINGS = ("ret-token", "two-stage", "exhaustive")
#: the official code's names for two of them, accepted wherever a ranking is named
ALIASES = {"sa": "ret-token", "rn": "exhaustive"}


def ranking_name(ranking: str) -> str:
    """The ranking's one user-facing name (aliases resolved); an unknown name is an ``InputError``."""
    name = ALIASES.get(ranking, ranking)
    if name not in RANKINGS:
        raise InputError(
            f"ranking: received {ranking!r}, expected one of {RANKINGS} (or the official {tuple(ALIASES)})"
        )
    return name


def gallery_labels(retriever: Retriever, eval_set: EvalSet) -> np.ndarray:
    """Label of every gallery row, looked up by photo id (= path as indexed)."""
    by_id = {str(p): int(label) for p, label in zip(eval_set.photo_paths, eval_set.photo_labels, strict=True)}
    retriever.refresh()
    if len(retriever.gallery) == 0:  # nothing committed (or an empty gallery): there is nothing to rank
        raise InputError(f"the gallery holds no photos; index evaluation set {eval_set.name!r} first (index=True)")
    ids = retriever.gallery.ids
    missing = [i for i in ids if i not in by_id]
    if missing:
        advice = f"(e.g. {missing[0]!r}); evaluate on a gallery built from this set only"
        raise InputError(
            f"the gallery holds {len(missing)} photos that are not in evaluation set {eval_set.name!r} {advice}"
        )
    return np.array([by_id[i] for i in ids], dtype=np.int64)


def ranking_distances(retriever: Retriever, sketch_tokens: np.ndarray, ranking: str, rerank: int | None) -> np.ndarray:
    """(Q, N) distances (lower = better) of encoded sketches against the whole gallery, in gallery scan order."""
    snap = retriever.gallery.snapshot
    if snap is None:  # a folder whose create never committed (galleries commit an empty version at create)
        raise InputError(f"{retriever.gallery.root}: the gallery has no committed version; index photos first")
    rowids = snap.row_ids()

    def score(q: int, cols: np.ndarray) -> np.ndarray:
        return retriever.relation_scores(sketch_tokens[q], rowids[cols])

    ranking = ranking_name(ranking)
    if ranking == "exhaustive":
        return exhaustive_distances(len(sketch_tokens), len(rowids), score)
    ret = ret_token_distances(sketch_tokens[:, 0], snap.ret_matrix())
    if ranking == "ret-token":
        return ret
    depth = retriever.manifest.default_rerank if rerank is None else rerank
    return two_stage_distances(ret, depth, score, retriever.manifest.default_blend)


@dataclass(frozen=True)
class SketchDistances:
    """The evaluation's task for an executor (picklable): a batch of sketches' :func:`ranking_distances`."""

    ranking: str
    rerank: int | None

    def __call__(self, retriever: Retriever, sketches: Sequence[str]) -> np.ndarray:
        return ranking_distances(retriever, retriever.encode(list(sketches), "sketch"), self.ranking, self.rerank)


def checked_ranking(retriever, ranking: str, rerank: int | None) -> int | None:
    """``rerank`` for ``ranking`` after checks: for "two-stage", ``None`` is the recorded depth; others take none."""
    if ranking_name(ranking) != "two-stage":
        return None
    return retriever.manifest.default_rerank if rerank is None else check_int(rerank, "rerank", 0)


def evaluate(
    retriever: Retriever,
    eval_set: EvalSet,
    ranking: str = "two-stage",
    rerank: int | None = None,
    ks: Iterable[int] = (),
    batch_size: int = 16,
    index: bool = True,
    progress: bool = True,
    ties: str = "official",
    executor: Executor | None = None,
) -> dict[str, Any]:
    """The official metrics of ``ranking`` on ``eval_set`` (photos indexed first unless ``index=False``); ``ties``: see
    :func:`~zse_infer.evaluation.metrics.evaluate_ranking`; ``rerank=None``: the export's recorded depth; ``executor``:
    where indexing and query batches run (default: this process; all give the same metrics, bit for bit)."""
    ranking, rerank = ranking_name(ranking), checked_ranking(retriever, ranking, rerank)
    check_int(batch_size, "batch_size")
    executor = executor or LocalExecutor()
    from tqdm.auto import tqdm

    started = time.perf_counter()
    if index:
        executor.index(retriever, [str(p) for p in eval_set.photo_paths], progress)
    metrics = RankingMetrics(gallery_labels(retriever, eval_set), ks=ks, ties=ties)
    sketches = [str(p) for p in eval_set.sketch_paths]
    starts = range(0, len(sketches), batch_size)
    results = executor.map(retriever, SketchDistances(ranking, rerank), [sketches[i : i + batch_size] for i in starts])
    desc = f"evaluating ({ranking}){executor.where}"
    with tqdm(total=len(sketches), desc=desc, unit="sketch", disable=not progress) as bar:
        for start, distances in zip(starts, results, strict=True):
            metrics.update(distances, eval_set.sketch_labels[start : start + len(distances)])
            bar.update(len(distances))
    extra = executor.report()  # e.g. "ray"
    return {
        "dataset": eval_set.summary(),
        "ranking": ranking,
        "rerank": rerank,  # None for rankings without a rerank depth (checked_ranking)
        "backend": retriever.backend,
        "precision": retriever.runners.precision,
        "metrics": metrics.compute(),
        "queries_skipped": metrics.num_skipped,
        "seconds": round(time.perf_counter() - started, 3),
        **extra,
    }
