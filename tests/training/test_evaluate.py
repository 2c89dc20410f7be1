"""The three rankings of the PyTorch evaluation, on a tiny random model."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from zse_infer.training.evaluate import Protocol, evaluate_model, random_model, rank_three_ways, summary_table  # noqa: E402


def test_two_stage_reorders_only_the_top_k():
    model = random_model("tiny")
    with torch.no_grad():
        s = model.encode(torch.randn(3, 3, 64, 64))
        p = model.encode(torch.randn(7, 3, 64, 64))
    d = rank_three_ways(model, s, p, rerank_k=4)
    assert {k: v.shape for k, v in d.items()} == {k: (3, 7) for k in ("ret_token", "two_stage", "exhaustive")}
    for q in range(3):
        top = set(np.argsort(d["ret_token"][q], kind="stable")[:4])
        two = list(np.argsort(d["two_stage"][q], kind="stable"))
        assert set(two[:4]) == top  # the same 4 candidates...
        ex = d["exhaustive"][q]
        assert two[:4] == sorted(top, key=lambda j: ex[j])  # ...ordered by relation score
        assert two[4:] == [j for j in np.argsort(d["ret_token"][q], kind="stable") if j not in top]


def test_evaluate_model_reports_three_rankings(renders):
    model = random_model("tiny")
    protocol = Protocol("t", ("twemoji", "noto", "openmoji_color"), ("tabler", "lucide"))
    res = evaluate_model(model, renders, ["c0", "c1", "c2"], protocol)
    assert (res["queries"], res["gallery"], res["classes"]) == (6, 9, 3)
    for ranking in ("ret_token", "two_stage", "exhaustive"):
        assert 0 < res[ranking]["map_all"] <= 1 and 0 <= res[ranking]["precision_10"] <= 1
    table = summary_table({"random_weights": {"t": res}})
    assert table.count("\n") == 4 and "exhaustive" in table


def test_evaluate_bundle_on_the_bundled_assets():
    from zse_infer.demo.assets import load_demo_assets
    from zse_infer.training.evaluate import evaluate_bundle

    assets = load_demo_assets()
    small = type(assets)(assets.root, assets.config, assets.checkpoint, assets.gallery[:6], assets.queries[:4], assets.licences)
    res = evaluate_bundle(random_model("zse_demo"), small)
    assert (res["gallery"], res["queries"]) == (6, 4)
    assert set(res["exhaustive"]) >= {"map_all", "map_200", "precision_10"}
