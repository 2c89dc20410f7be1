"""Ranking agreement of a lower precision (int8 graphs, bf16 compute) with fp32, what a user sees, on the bundled demo's
unseen concepts (docs/cpu.md): int8 acceptance, the manifest and ``benchmarks/precision_agreement.py`` all use it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..manifest import HEAD_INPUTS, HEAD_OUTPUT, Manifest
from ..runtime.runners.precision_check import cosine_min

_log = logging.getLogger(__name__)

#: (N, 3, S, S) images -> (N, T, D) tokens
EncodeFn = Callable[[np.ndarray], np.ndarray]
#: sketch tokens (1, T, D), photo tokens (n, T, D) -> (n,) scores
ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
Models = tuple[EncodeFn, ScoreFn]

#: queries and rerank depth of the export-time check (a ViT-B/16 int8 export: ~1 min more on 2 cores)
EXPORT_QUERIES = 32
EXPORT_RERANK = 20


@dataclass(frozen=True)
class RankingSet:
    sketches: np.ndarray  # (Q, 3, S, S) float32
    photos: np.ndarray  # (P, 3, S, S) float32
    sketch_labels: np.ndarray | None
    photo_labels: np.ndarray | None
    source: str


def demo_ranking_set(manifest_or_config, queries: int | None = EXPORT_QUERIES) -> RankingSet | None:
    """The bundled demo's unseen-concept photos and sketches (the first ``queries`` sketches; None: all), preprocessed
    for this model, or None where the assets are not installed."""
    from ..demo.assets import load_demo_assets
    from ..errors import ManifestError
    from ..preprocess import load_batch

    config = manifest_or_config.model if isinstance(manifest_or_config, Manifest) else manifest_or_config
    try:
        assets = load_demo_assets()
    except ManifestError as exc:
        _log.info("ranking set: demo assets unavailable (%s)", exc)
        return None
    queries_used = assets.queries[:queries] if queries else assets.queries
    classes = {name: i for i, name in enumerate(sorted({i.label for i in [*assets.gallery, *queries_used]}))}
    return RankingSet(
        sketches=load_batch([q.path for q in queries_used], config.preprocess["sketch"]),
        photos=load_batch([g.path for g in assets.gallery], config.preprocess["photo"]),
        sketch_labels=np.array([classes[q.label] for q in queries_used]),
        photo_labels=np.array([classes[g.label] for g in assets.gallery]),
        source=f"bundled demo, unseen concepts: {len(queries_used)} sketches, {len(assets.gallery)} photos",
    )


def parity_ranking_set(data: dict[str, np.ndarray]) -> RankingSet:
    """The export's built-in parity images as both queries and gallery (no labels): a fallback."""
    images = np.ascontiguousarray(data["image"])
    return RankingSet(images, images, None, None, f"built-in parity images ({len(images)})")


def ranking_agreement(
    reference: Models, candidate: Models, rankings: RankingSet, rerank: int = EXPORT_RERANK
) -> dict[str, Any]:
    """Agreement of ``candidate`` with ``reference`` (each an (encode, score) pair) on ``rankings``."""
    from ..evaluation.metrics import evaluate_ranking
    from ..runtime.searcher import ret_token_distances, two_stage_distances

    out: dict[str, Any] = {"set": rankings.source, "rerank": int(rerank)}
    pairs_by_name = (("reference", reference), ("candidate", candidate))
    tokens = {name: (encode(rankings.sketches), encode(rankings.photos)) for name, (encode, _) in pairs_by_name}
    cosines = [cosine_min(tokens["reference"][i][:, 0], tokens["candidate"][i][:, 0]) for i in (0, 1)]
    depth = min(int(rerank), len(rankings.photos))
    tops, maps, scored = {}, {}, {}
    for name, (_, score) in pairs_by_name:
        sketches, photos = tokens[name]
        pairs: dict[tuple[int, int], float] = {}

        def score_fn(
            q: int, cols: np.ndarray, sketches=sketches, photos=photos, pairs=pairs, score=score
        ) -> np.ndarray:
            values = np.asarray(score(sketches[q : q + 1], photos[cols]), np.float64)
            pairs.update(((q, int(c)), float(v)) for c, v in zip(cols, values, strict=True))
            return values

        ranked = two_stage_distances(ret_token_distances(sketches[:, 0], photos[:, 0]), depth, score_fn)
        tops[name] = np.argsort(ranked, axis=1, kind="stable")[:, :10]
        scored[name] = pairs
        if rankings.sketch_labels is not None and rankings.photo_labels is not None:
            maps[name] = float(evaluate_ranking(ranked, rankings.sketch_labels, rankings.photo_labels)["map_all"])
    # Relation-score error over the pairs both reranked (stage-1 candidates they share): no extra model calls.
    common = scored["reference"].keys() & scored["candidate"].keys()
    score_errors = [abs(scored["reference"][p] - scored["candidate"][p]) for p in common] or [0.0]
    out["ret_token_cosine_min"] = round(min(cosines), 6)
    out["score_max_abs_error"] = float(f"{max(score_errors):.4g}")
    out["pairs_compared"] = len(common)
    k, pairs_top = tops["reference"].shape[1], zip(tops["reference"].tolist(), tops["candidate"].tolist(), strict=True)
    overlap = [len(set(a) & set(b)) / k for a, b in pairs_top] if k else [1.0]
    out["top10_overlap"] = round(float(np.mean(overlap)), 4)
    if maps:
        out["map_all"] = {name: round(maps[name], 4) for name in ("reference", "candidate")}
        out["map_all"]["delta"] = round(maps["candidate"] - maps["reference"], 4)
    return out


def runner_fns(encoder, relation_head) -> Models:
    """(encode, score) over two runtime runners (anything with ``run(feeds) -> outputs``)."""

    def encode(images: np.ndarray) -> np.ndarray:
        return encoder.run({"image": np.ascontiguousarray(images)})["tokens"]

    def score(sketch: np.ndarray, photos: np.ndarray) -> np.ndarray:
        tiled = np.ascontiguousarray(np.broadcast_to(sketch, photos.shape), np.float32)
        feeds = {HEAD_INPUTS[0]: tiled, HEAD_INPUTS[1]: np.ascontiguousarray(photos, np.float32)}
        return relation_head.run(feeds)[HEAD_OUTPUT]

    return encode, score
