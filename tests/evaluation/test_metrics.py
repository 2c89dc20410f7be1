"""zse_infer.evaluation.metrics: the official mAP / P@K, vectorised and chunked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zse_infer.errors import InputError, ZseError
from zse_infer.evaluation.metrics import OFFICIAL_METRICS, RankingMetrics, evaluate_ranking

# ---------------------------------------------------------------- reference


def _reference_ap(relevant: np.ndarray, top: int | None = None) -> float:
    """One query's AP, step by step the way the official ``voc_eval``/``voc_ap`` go:
    cumulative tp/fp, recall and precision arrays, sentinels, envelope from the
    right, sum of precision x recall increments where recall changes."""
    n_pos = int(relevant.sum())
    if top is not None:
        top = min(top, relevant.size)
        relevant = relevant[:top]
        n_pos = min(top, n_pos)
    if n_pos == 0:
        return math.nan
    tp = np.cumsum(relevant)
    fp = np.cumsum(~relevant)
    recall = np.concatenate([[0.0], tp / n_pos, [1.0]])
    precision = np.concatenate([[0.0], tp / (tp + fp), [0.0]])
    for i in range(precision.size - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    ap = 0.0
    for i in range(1, recall.size):
        if recall[i] != recall[i - 1]:
            ap += (recall[i] - recall[i - 1]) * precision[i]
    return ap


def _reference_precision(relevant: np.ndarray, k: int) -> float:
    top = min(k, int(relevant.sum()))
    return float(np.mean(relevant[:top])) if top else math.nan


def _reference(distance, query_labels, gallery_labels, ks=(), kind=None) -> dict[str, float]:
    """Per-query loop with numpy's argsort row by row, then nanmean."""
    rows = {key: [] for key in OFFICIAL_METRICS}
    for k in ks:
        rows[f"precision_{k}"], rows[f"map_{k}"] = [], []
    for row, label in zip(np.asarray(distance), query_labels, strict=True):
        relevant = np.asarray(gallery_labels)[np.argsort(row, kind=kind)] == label
        rows["map_all"].append(_reference_ap(relevant))
        for k in {200, *ks}:
            rows[f"map_{k}"].append(_reference_ap(relevant, k))
        for k in {100, 200, *ks}:
            rows[f"precision_{k}"].append(_reference_precision(relevant, k))
    with np.errstate(all="ignore"):
        return {key: float(np.nanmean(values)) for key, values in rows.items()}


def _assert_close(actual: dict, expected: dict, tol: float = 1e-12) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        assert actual[key] == pytest.approx(expected[key], abs=tol, nan_ok=True), key


def _random_case(n_queries=37, n_gallery=211, n_classes=6, seed=0, dtype=np.float64, levels=None):
    """Random distances and labels; `levels` quantises distances to force ties."""
    rng = np.random.default_rng(seed)
    distance = rng.standard_normal((n_queries, n_gallery))
    if levels is not None:
        distance = np.round(distance * levels) / levels
    query_labels = rng.integers(0, n_classes + 1, n_queries)  # class n_classes has no photo
    gallery_labels = rng.integers(0, n_classes, n_gallery)
    return distance.astype(dtype), query_labels, gallery_labels


# ---------------------------------------------------------------- golden


def test_golden_official_values(data_dir):
    with np.load(data_dir / "metrics_seed1.npz") as npz:
        golden = {k: npz[k] for k in npz.files}
    result = evaluate_ranking(golden["distance"], golden["query_labels"], golden["gallery_labels"])
    assert list(result) == list(OFFICIAL_METRICS)
    for key in OFFICIAL_METRICS:
        assert abs(result[key] - float(golden[key])) < 1e-9, key
    # The golden set includes queries of a class without photos: they must be skipped.
    assert not np.isin(golden["query_labels"], golden["gallery_labels"]).all()


def test_golden_with_reference_and_extra_ks(data_dir):
    with np.load(data_dir / "metrics_seed1.npz") as npz:
        distance, q, g = npz["distance"], npz["query_labels"], npz["gallery_labels"]
    result = evaluate_ranking(distance, q, g, ks=(1, 10, 50, 1000))
    _assert_close(result, _reference(distance, q, g, ks=(1, 10, 50, 1000)))


# ---------------------------------------------------------------- hand-worked cases


def test_hand_worked_ap_and_capped_precision():
    # Ranked relevance 1 0 1 0 1: precisions at the hits 1, 2/3, 3/5 (already decreasing).
    result = evaluate_ranking([[0.1, 0.2, 0.3, 0.4, 0.5]], [0], [0, 1, 0, 1, 0])
    assert result["map_all"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert result["map_200"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)  # K > gallery: same list
    # Fewer positives (3) than K: P@K looks at the first 3 results only -> 2 of 3.
    assert result["precision_100"] == pytest.approx(2 / 3)
    assert result["precision_200"] == pytest.approx(2 / 3)


def test_precision_envelope_from_the_right():
    # Ranked relevance 0 1 1: precisions 1/2 and 2/3; the envelope lifts the first to 2/3.
    result = evaluate_ranking([[1.0, 2.0, 3.0]], [5], [7, 5, 5])
    assert result["map_all"] == pytest.approx(2 / 3)  # not the non-interpolated 7/12


def test_map_at_k_truncates_and_caps_positives():
    distance = [[0.0, 1.0, 2.0, 3.0, 4.0]]  # ranked relevance 0 0 1 1 0
    gallery = [1, 1, 0, 0, 1]
    result = evaluate_ranking(distance, [0], gallery, ks=(2, 3, 4, 10))
    assert result["map_2"] == 0.0  # both positives lie beyond rank 2
    assert result["precision_2"] == 0.0
    assert result["map_3"] == pytest.approx((1 / 3) / 2)  # one hit in the top 3, n_pos capped at min(3, 2)
    assert result["map_4"] == pytest.approx((1 / 2 + 1 / 2) / 2)  # envelope: 1/3 lifted to 1/2
    assert result["precision_3"] == pytest.approx(0.0)  # first min(3, 2) = 2 results
    assert result["map_10"] == pytest.approx(result["map_all"])  # K larger than the gallery
    assert result["precision_10"] == result["precision_2"]


def test_query_without_positives_is_skipped():
    one = evaluate_ranking([[0.1, 0.2, 0.3]], [0], [0, 1, 0])
    two = evaluate_ranking([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], [0, 9], [0, 1, 0])
    assert two == one
    metrics = RankingMetrics([0, 1, 0])
    metrics.update([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], [0, 9])
    assert metrics.num_skipped == 1
    assert np.isnan(metrics.per_query()["map_all"][1])


def test_all_queries_without_positives_give_nan():
    result = evaluate_ranking([[0.1, 0.2]], [3], [0, 1])
    assert all(math.isnan(v) for v in result.values())


def test_stable_ties_follow_gallery_order():
    # Two photos at the same distance: the earlier gallery index ranks first.
    assert evaluate_ranking([[0.5, 0.5]], [0], [0, 1], ties="stable")["map_all"] == 1.0
    assert evaluate_ranking([[0.5, 0.5]], [0], [1, 0], ties="stable")["map_all"] == 0.5


@pytest.mark.parametrize("ties,kind", [("official", None), ("stable", "stable")])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_heavy_ties_match_numpy_argsort_row_by_row(ties, kind, dtype):
    # 5 distinct values over 500 photos: nearly everything is tied. "official" must
    # reproduce numpy's default argsort on the caller's dtype, row by row.
    distance, q, g = _random_case(n_queries=23, n_gallery=500, levels=2, seed=3, dtype=dtype)
    result = evaluate_ranking(distance, q, g, ks=(7,), ties=ties, chunk_size=5)
    _assert_close(result, _reference(distance, q, g, ks=(7,), kind=kind))
    # The case has teeth: the order inside ties moves the numbers.
    other = "stable" if ties == "official" else "official"
    assert evaluate_ranking(distance, q, g, ties=other)["map_all"] != result["map_all"]


def test_scores_are_ranked_through_negation():
    score = np.array([[0.9, 0.1, 0.5]])
    by_score = evaluate_ranking(-score, [1], [1, 0, 1])
    assert by_score["map_all"] == 1.0


def test_string_labels():
    distance, q, g = _random_case(seed=4)
    names = np.array(["cat", "dog", "cow", "bee", "ant", "owl", "emu"])
    assert evaluate_ranking(distance, names[q].tolist(), names[g].tolist()) == evaluate_ranking(distance, q, g)


# ---------------------------------------------------------------- chunking and sources


@pytest.mark.parametrize("chunk_size", [1, 4, 36, 37, 1000])
def test_chunked_equals_unchunked(chunk_size):
    distance, q, g = _random_case(seed=1)
    full = evaluate_ranking(distance, q, g, ks=(3, 30), chunk_size=10_000)
    assert evaluate_ranking(distance, q, g, ks=(3, 30), chunk_size=chunk_size) == full
    _assert_close(full, _reference(distance, q, g, ks=(3, 30)))


def test_callable_and_iterator_sources_equal_array():
    distance, q, g = _random_case(seed=2)
    expected = evaluate_ranking(distance, q, g)
    calls = []

    def rows(start: int, stop: int) -> np.ndarray:
        calls.append((start, stop))
        return distance[start:stop]

    assert evaluate_ranking(rows, q, g, chunk_size=10) == expected
    assert calls == [(0, 10), (10, 20), (20, 30), (30, 37)]
    uneven = (distance[a:b] for a, b in [(0, 1), (1, 30), (30, 37)])
    assert evaluate_ranking(uneven, q, g, chunk_size=8) == expected


def test_float16_memmap_input(tmp_path):
    distance, q, g = _random_case(seed=5, dtype=np.float16)
    path = tmp_path / "distance.f16"
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=distance.shape)
    mm[:] = distance
    mm.flush()
    readonly = np.memmap(path, dtype=np.float16, mode="r", shape=distance.shape)
    result = evaluate_ranking(readonly, q, g, chunk_size=6)
    assert result == evaluate_ranking(distance, q, g)
    _assert_close(result, _reference(distance, q, g))


def test_incremental_accumulator_matches_one_call():
    distance, q, g = _random_case(seed=6)
    metrics = RankingMetrics(g, ks=(5,), chunk_size=3)
    for start in range(0, len(q), 10):  # batches larger than chunk_size are split
        metrics.update(distance[start : start + 10], q[start : start + 10])
    assert metrics.num_queries == len(q)
    assert metrics.compute() == evaluate_ranking(distance, q, g, ks=(5,))
    per_query = metrics.per_query()
    assert set(per_query) == set(metrics.compute())
    assert all(v.shape == (len(q),) for v in per_query.values())


def test_progress_bar_does_not_change_results(capsys):
    distance, q, g = _random_case(seed=7)
    assert evaluate_ranking(distance, q, g, progress=True) == evaluate_ranking(distance, q, g)
    assert "query" in capsys.readouterr().err


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(distance=np.zeros((2, 4))), r"received shape \(2, 4\), expected \(2, 3\)"),
        (dict(distance=np.zeros(3)), "received shape"),
        (dict(distance=np.array([[0.1, np.nan, 0.2], [0, 0, 0]])), "row 0 contains NaN"),
        (dict(distance=np.zeros((2, 3), dtype=bool)), "expected real numbers"),
        (dict(query_labels=["a", "b"]), "same kind"),
        (dict(query_labels=[]), "query_labels is empty"),
        (dict(query_labels=[[0, 1]]), "1-D"),
        (dict(gallery_labels=[0.5, 1.0, 2.0]), "integer or string"),
        (dict(ks=(0,)), "ks: received 0"),
        (dict(ks=(2.5,)), "ks: received 2.5"),
        (dict(ties="random"), "ties: received 'random'"),
        (dict(chunk_size=0), "chunk_size: received 0"),
        (dict(distance=iter([np.zeros((1, 3))])), "produced 1 rows in total, expected 2"),
        (dict(distance=iter([np.zeros((3, 3))])), "more rows than query_labels"),
        (dict(distance=lambda a, b: np.zeros((1, 3))), r"returned 1 rows, expected 2"),
        (dict(distance=42), "expected an array, a callable"),
    ],
)
def test_input_errors(kwargs, match):
    args = dict(distance=np.zeros((2, 3)), query_labels=[0, 1], gallery_labels=[0, 1, 1])
    args.update(kwargs)
    with pytest.raises(InputError, match=match) as info:
        evaluate_ranking(args.pop("distance"), args.pop("query_labels"), args.pop("gallery_labels"), **args)
    assert isinstance(info.value, ZseError)


def test_accumulator_errors():
    metrics = RankingMetrics([0, 1])
    with pytest.raises(InputError, match="no queries were added"):
        metrics.compute()
    with pytest.raises(InputError, match="expected 1 \\(one per distance row\\)"):
        metrics.update([[0.1, 0.2]], [0, 1])
    with pytest.raises(InputError, match="gallery_labels is empty"):
        RankingMetrics([])
