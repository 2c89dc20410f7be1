"""The training loop runs on a tiny config with synthetic images, and its parts behave."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tools.augment import AugmentConfig, augment, to_tensor  # noqa: E402
from tools.losses import hardest_negative, relation_mse, ret_token_softmax, ret_token_triplet  # noqa: E402
from tools.train import TrainConfig, lr_at, train  # noqa: E402
from zse_infer.config import get_config  # noqa: E402


def test_two_training_steps_on_tiny_config(tmp_path, renders):
    log = tmp_path / "log.jsonl"
    out = tmp_path / "tiny.safetensors"
    cfg = TrainConfig(steps=2, batch=3, warmup=1, log_every=1, threads=1, head_steps=0)
    with log.open("w") as f:
        model, records = train(get_config("tiny"), renders, ["c0", "c1", "c2", "c3"], cfg, out=out, log=f)
    assert [r["step"] for r in records] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in records)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]

    from zse_infer.model import load_model

    loaded = load_model(out, config="tiny")
    with torch.no_grad():
        x = torch.zeros(1, 3, 64, 64)
        assert torch.allclose(loaded.encode(x), model.encode(x).half().float(), atol=1e-2)


def test_training_is_deterministic_for_a_seed(renders):
    cfg = TrainConfig(steps=2, batch=3, warmup=1, log_every=1, threads=1, head_steps=0)
    concepts = ["c0", "c1", "c2", "c3"]
    _, a = train(get_config("tiny"), renders, concepts, cfg)
    _, b = train(get_config("tiny"), renders, concepts, cfg)
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-5)


def test_augment_keeps_shape_and_white_background():
    pre = get_config("tiny").preprocess["photo"]
    white = np.full((2, 64, 64, 3), 255, dtype=np.uint8)
    g = torch.Generator().manual_seed(0)
    out = augment(white, pre, AugmentConfig(brightness=0, contrast=0), g)
    assert out.shape == (2, 3, 64, 64)
    assert torch.allclose(out, to_tensor(white, pre), atol=1e-5)  # white stays white, borders included


def test_losses():
    s = torch.eye(4)
    assert ret_token_triplet(s, s.clone(), margin=0.2).item() == 0.0  # perfectly separated
    assert ret_token_triplet(s, s.flip(0), margin=0.2).item() > 0
    assert hardest_negative(s, torch.stack([s[1], s[0], s[3], s[2]])).tolist() == [1, 0, 3, 2]
    assert relation_mse(torch.full((3,), 0.99), torch.full((5,), 0.01)).item() == pytest.approx(0.0)
    # The softmax form: a collapse (all vectors equal) costs log(B); separation costs less.
    assert ret_token_softmax(torch.ones(4, 3), torch.ones(4, 3), 0.1).item() == pytest.approx(np.log(4), rel=1e-4)
    assert ret_token_softmax(s, s.clone(), 0.1).item() < 0.01


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-5)
    assert lr_at(0, cfg) < lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(99, cfg) == pytest.approx(1e-5, rel=0.05)


def test_triplet_variant_still_trains(renders):
    cfg = TrainConfig(steps=1, batch=3, warmup=1, log_every=1, threads=1, ret_loss="triplet", head_steps=0)
    _, records = train(get_config("tiny"), renders, ["c0", "c1", "c2"], cfg)
    assert np.isfinite(records[0]["ret"])


def test_head_gradient_to_encoder_is_scaled_not_the_value():
    from tools.train import _scale_grad

    x = torch.tensor([2.0, -1.0], requires_grad=True)
    y = _scale_grad(x, 0.1)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((2,), 0.1))


def test_head_stage_trains_only_the_relation_head(tmp_path, renders):
    from zse_infer.model import ZseModel

    torch.manual_seed(0)
    start = tmp_path / "start.safetensors"
    from tools.train import save_checkpoint

    save_checkpoint(ZseModel("tiny"), start, {"config": "tiny"})
    cfg = TrainConfig(steps=0, batch=3, log_every=1, threads=1, head_steps=2)
    model, records = train(get_config("tiny"), renders, ["c0", "c1", "c2", "c3"], cfg, init=start)
    assert [r["stage"] for r in records] == ["head", "head"]
    from zse_infer.model import load_model

    before = load_model(start, config="tiny")
    assert all(
        torch.equal(a, b)
        for a, b in zip(before.encoder.state_dict().values(), model.encoder.state_dict().values(), strict=False)
    )
    assert not torch.equal(before.relation_head.mlp[0].weight, model.relation_head.mlp[0].weight)


def test_stroke_augmentation_varies_the_drawing_within_its_bounds():
    from tools.augment import StrokeAugmentConfig, _truncate, augment_strokes
    from zse_infer.strokes import PAD_LINE_WIDTH

    strokes = [[[0, 10, 20, 30, 40, 50], [0, 5, 0, 5, 0, 5]], [[0, 50], [50, 50]], [[25, 25], [0, 50]]]
    cfg = StrokeAugmentConfig(drop=0.5, partial=1.0)
    for seed in range(20):
        points, width, fill = augment_strokes(strokes, cfg, np.random.default_rng(seed))
        assert 1 <= len(points) <= 3 and all(p.shape[1] == 2 for p in points)  # never all strokes dropped
        assert (
            cfg.width[0] * PAD_LINE_WIDTH <= width <= cfg.width[1] * PAD_LINE_WIDTH
            and cfg.fill[0] <= fill <= cfg.fill[1]
        )
    a = augment_strokes(strokes, cfg, np.random.default_rng(3))
    b = augment_strokes(strokes, cfg, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=False)) and a[1:] == b[1:]  # seeded
    still = StrokeAugmentConfig(jitter=0, offset=0, drop=0, partial=0, rotate_deg=0, stretch=0)
    points, _, _ = augment_strokes(strokes, still, np.random.default_rng(0))
    assert np.allclose(points[1], [[-25, 25], [25, 25]])  # only centred: the 2-point stroke stays a horizontal line
    line = [np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([[0.0, 5.0], [10.0, 5.0]])]
    assert len(_truncate(line, 0.5)) == 1 and len(_truncate(line, 0.75)) == 2 and len(_truncate(line, 0.75)[1]) == 2


def test_render_freehand_is_the_pads_picture_without_augmentation():
    from tools.augment import StrokeAugmentConfig, render_freehand
    from zse_infer.strokes import strokes_to_rgb

    pre = get_config("tiny").preprocess["sketch"]
    strokes = [[[0, 50, 50], [0, 0, 50]]]
    assert np.array_equal(render_freehand(strokes, pre, None), strokes_to_rgb(strokes, pre))
    varied = render_freehand(strokes, pre, StrokeAugmentConfig(), np.random.default_rng(0))
    assert varied.shape == (64, 64, 3) and not np.array_equal(varied, strokes_to_rgb(strokes, pre))
