"""Training and evaluating on a data pack: every source, resumable runs, family-safe protocols."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tools.train import ConceptSampler, TrainConfig, train  # noqa: E402
from zse_infer.config import get_config  # noqa: E402
from zse_infer.errors import ZseError  # noqa: E402

CONCEPTS = ["c0", "c1", "c2", "c3"]


class Killed(Exception):
    pass


class KillAtStep:
    """A training log that stops the run (as a crash would) when step ``step`` is logged."""

    def __init__(self, step: int):
        self.marker = f'"step": {step},'

    def write(self, line):
        if self.marker in line:
            raise Killed

    def flush(self):
        pass


def test_sampler_draws_distinct_concepts_from_every_source(renders):
    sampler = ConceptSampler(renders, CONCEPTS, seed=0)
    seen_sources = set()
    for _ in range(30):
        sk, ph = sampler.sample(4)
        assert len(set(renders.concept[sk])) == 4
        assert (renders.concept[sk] == renders.concept[ph]).all()
        assert set(renders.modality[sk]) == {"sketch"} and set(renders.modality[ph]) == {"photo"}
        seen_sources |= set(renders.source[sk]) | set(renders.source[ph])
    assert set(renders.source) == seen_sources


def test_a_stopped_run_resumes_where_it_was(tmp_path, renders):
    """Four steps in one go, or a run killed during step 3 (state saved at step 2) and
    resumed: the same losses and the same weights."""
    cfg = TrainConfig(steps=4, batch=3, warmup=1, log_every=1, threads=1, head_steps=0, save_every=2)
    whole, a = train(get_config("tiny"), renders, CONCEPTS, cfg)
    out = tmp_path / "run.safetensors"
    with pytest.raises(ZseError, match="no resume state"):
        train(get_config("tiny"), renders, CONCEPTS, cfg, out=out, resume=True)

    with pytest.raises(Killed):
        train(get_config("tiny"), renders, CONCEPTS, cfg, out=out, log=KillAtStep(3))
    resumed, b = train(get_config("tiny"), renders, CONCEPTS, cfg, out=out, resume=True)
    assert [r["step"] for r in b] == [3, 4]
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a[2:]], rel=1e-5)
    for (name, x), y in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=False):
        assert torch.allclose(x, y, atol=1e-6), name


def _pack_like(renders):
    """Split codes and families for the synthetic renders: c0-c1 seen (c1's lucide drawing held
    out), c2-c3 unseen; fluent-emoji high contrast and flat are one family."""
    codes = np.where(np.isin(renders.concept, ["c2", "c3"]), 2, 0).astype(np.uint8)
    codes[(renders.concept == "c1") & (renders.source == "lucide")] = 1
    family = np.where(np.char.startswith(renders.source.astype(str), "fluent-emoji"), "fluent-emoji", renders.source)
    return codes, family


def test_protocol_rows_and_family_exclusion(renders, monkeypatch):
    from tools import evaluate
    from tools.evaluate import random_model

    codes, family = _pack_like(renders)
    q, g = evaluate.protocol_rows(renders, codes, "test", max_queries=100)
    assert set(renders.concept[q]) == {"c2", "c3"} and set(renders.modality[q]) == {"sketch"}
    assert set(renders.concept[g]) == {"c2", "c3"} and set(renders.modality[g]) == {"photo"}
    vq, vg = evaluate.protocol_rows(renders, codes, "validation", max_queries=100)
    assert list(renders.source[vq]) == ["lucide"] and set(renders.concept[vg]) == {"c0", "c1"}
    with pytest.raises(Exception, match="protocol 'train'"):
        evaluate.protocol_rows(renders, codes, "train", max_queries=10)

    galleries = []
    real = evaluate.ret_token_distances

    def spy(q_ret, g_ret):
        galleries.append(len(g_ret))
        return real(q_ret, g_ret)

    monkeypatch.setattr(evaluate, "ret_token_distances", spy)
    model = random_model("tiny")
    res = evaluate.evaluate_protocol(model, renders, family, q, g, depths=(2, 4), exhaustive_queries=2)
    # Query families: tabler, lucide, fluent-emoji; the fluent-emoji queries lose its 2 flat photos.
    assert sorted(galleries) == [len(g) - 2, len(g), len(g)]
    assert {"ret_token", "rerank_2", "rerank_4", "exhaustive", "ret_token_on_exhaustive_queries"} <= set(res)
    assert res["queries"] == len(q) and res["exhaustive_queries"] == 2
    for metrics in (v for v in res.values() if isinstance(v, dict)):
        assert 0.0 <= metrics["map_all"] <= 1.0 and 0.0 <= metrics["precision_10"] <= 1.0


def test_choose_search_takes_the_best_validation_map_and_the_cheaper_on_ties():
    from tools.evaluate import choose_search

    val = {
        "ret_token": {"map_all": 0.20},
        "rerank_10": {"map_all": 0.25},
        "rerank_20": {"map_all": 0.25},
        "rerank_100": {"map_all": 0.22},
        "queries": 5,
    }
    depth, blend, why = choose_search(val)
    assert (depth, blend) == (10, 0.0) and "0: 0.200" in why
    assert choose_search({"ret_token": {"map_all": 0.3}, "rerank_10": {"map_all": 0.2}})[:2] == (0, 0.0)
    blended = {**val, "rerank_10_blend_0.9": {"map_all": 0.27}, "rerank_10_blend_0.5": {"map_all": 0.27}}
    depth, blend, why = choose_search(blended)
    assert (depth, blend) == (10, 0.5) and "at depth 10 blend 0.5" in why and "10 blend 0.9: 0.270" in why


def test_head_stage_with_ret_token_topk_negatives(tmp_path, renders):
    from tools.train import _ret_topk_negatives, save_checkpoint
    from zse_infer.model import ZseModel, load_model

    torch.manual_seed(0)
    start = tmp_path / "start.safetensors"
    save_checkpoint(ZseModel("tiny"), start, {"config": "tiny"})
    cfg = TrainConfig(
        steps=0,
        batch=3,
        log_every=1,
        threads=1,
        head_steps=2,
        head_negatives="topk",
        head_topk=4,
        head_random_negatives=1,
        head_negatives_per_sketch=2,
    )
    model, records = train(get_config("tiny"), renders, CONCEPTS, cfg, init=start)
    assert [r["stage"] for r in records] == ["head", "head"]
    assert all(np.isfinite(r["listwise"]) and 0 <= r["pos_first"] <= 1 for r in records)
    before = load_model(start, config="tiny")
    assert all(
        torch.equal(a, b)
        for a, b in zip(before.encoder.state_dict().values(), model.encoder.state_dict().values(), strict=False)
    )

    sampler = ConceptSampler(renders, CONCEPTS, seed=0)
    tokens = torch.randn(len(renders), 3, 8)
    table = _ret_topk_negatives(renders, tokens, sampler, k=4)
    for row, negatives in table.items():
        assert len(negatives) == 4 and renders.modality[row] == "sketch"
        assert not (renders.concept[negatives] == renders.concept[row]).any()  # never its own concept
    with pytest.raises(ZseError, match="head_negatives"):
        train(get_config("tiny"), renders, CONCEPTS, TrainConfig(steps=0, head_steps=1, head_negatives="x"), init=start)


def test_bundle_rows_read_the_bundled_demo():
    from tools.evaluate import bundle_rows
    from zse_infer.demo.assets import load_demo_assets

    assets = load_demo_assets()
    renders, family, q, g = bundle_rows(get_config("zse_demo"))
    assert len(q) == len(assets.queries) and len(g) == len(assets.gallery)
    assert set(renders.modality[q]) == {"sketch"} and set(renders.modality[g]) == {"photo"}
    assert renders.images.shape[1:] == (112, 112, 3) and len(family) == len(renders)


def test_sampler_gives_the_freehand_share_of_a_batch_freehand_sketches(freehand_renders):
    renders, _ = freehand_renders
    sampler = ConceptSampler(renders, CONCEPTS, seed=0, freehand_share=0.5)
    assert list(sampler.with_freehand) == [0, 1]
    for _ in range(20):
        sk, ph = sampler.sample(4)
        assert (renders.concept[sk] == renders.concept[ph]).all() and len(set(renders.concept[sk])) == 4
        assert list(renders.source[sk[:2]]) == ["quickdraw"] * 2 and "quickdraw" not in renders.source[sk[2:]]
    plain = ConceptSampler(renders, CONCEPTS, seed=0)
    assert all("quickdraw" not in renders.source[plain.sample(4)[0]] for _ in range(20))  # share 0: icons only
    with pytest.raises(ZseError, match="freehand_share"):
        ConceptSampler(renders, CONCEPTS, seed=0, freehand_share=1.5)
    with pytest.raises(ZseError, match="no trainable concept has a freehand"):
        ConceptSampler(renders.select(renders.source != "quickdraw"), CONCEPTS, seed=0, freehand_share=0.5)


def test_freehand_training_redraws_strokes_and_resumes_where_it_was(tmp_path, freehand_renders):
    from tools.augment import StrokeAugmentConfig
    from tools.train import SketchImages

    renders, strokes = freehand_renders
    images = SketchImages(renders, strokes, get_config("tiny").preprocess["sketch"], StrokeAugmentConfig(), seed=0)
    row = min(strokes)
    assert not np.array_equal(images(np.array([row]))[0], renders.images[row])  # drawn again, augmented
    assert np.array_equal(images(np.array([0]))[0], renders.images[0])  # an icon stays its render
    cfg = TrainConfig(
        steps=4, batch=4, warmup=1, log_every=1, threads=1, head_steps=0, save_every=2, freehand_share=0.5
    )
    whole, a = train(get_config("tiny"), renders, CONCEPTS, cfg, strokes=strokes)
    out = tmp_path / "run.safetensors"

    with pytest.raises(Killed):
        train(get_config("tiny"), renders, CONCEPTS, cfg, out=out, log=KillAtStep(3), strokes=strokes)
    resumed, b = train(get_config("tiny"), renders, CONCEPTS, cfg, out=out, resume=True, strokes=strokes)
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a[2:]], rel=1e-5)
    for (name, x), y in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=False):
        assert torch.allclose(x, y, atol=1e-6), name


def test_freehand_protocols_rank_the_drawn_concepts_photos_and_report_chance(freehand_renders):
    from tools import evaluate
    from tools.evaluate import random_model

    renders, _ = freehand_renders
    codes, family = _pack_like(renders)
    drawn = renders.source == "quickdraw"
    codes[drawn & (renders.concept == "c0")] = 1  # c0's drawings held out (validation), c1's train
    q, g = evaluate.protocol_rows(renders, codes, "freehand_validation", max_queries=10)
    assert set(renders.source[q]) == {"quickdraw"} and set(renders.concept[q]) == {"c0"}
    assert set(renders.concept[g]) == {"c0"} and set(renders.modality[g]) == {
        "photo"
    }  # the drawn concept's photos only
    vq, _ = evaluate.protocol_rows(renders, codes, "validation", max_queries=10)
    assert "quickdraw" not in set(renders.source[vq])  # icon protocols never take freehand rows
    with pytest.raises(ZseError, match="freehand_test"):
        evaluate.protocol_rows(renders, codes, "freehand_test", max_queries=10)
    g = np.flatnonzero((renders.modality == "photo") & (codes == 0))  # every seen photo: c0 and c1
    res = evaluate.evaluate_protocol(random_model("tiny"), renders, family, q, g, depths=(2,))
    # 2 of the 6 photos are the query's concept: a random ranking averages about 0.5 mAP@all.
    assert 0.3 < res["chance"]["map_all"] < 0.7 and set(res["chance"]) >= {"map_all", "precision_10"}


def test_depth_is_chosen_on_the_mean_of_the_validation_protocols():
    from tools.evaluate import choose_search

    icons = {"ret_token": {"map_all": 0.20}, "rerank_10": {"map_all": 0.30}, "rerank_50": {"map_all": 0.25}}
    drawn = {"ret_token": {"map_all": 0.10}, "rerank_10": {"map_all": 0.10}, "rerank_50": {"map_all": 0.20}}
    assert choose_search(icons)[0] == 10
    depth, _, why = choose_search(icons, drawn)
    assert depth == 50 and "mean mAP@all of 2 validation protocols" in why
