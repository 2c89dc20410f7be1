"""Full-size parity with the official code (the parity vectors of docs/spec.md)."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


def _scores_and_cls(model, sketch_tokens, photo_tokens):
    n, m = len(sketch_tokens), len(photo_tokens)
    s = torch.from_numpy(sketch_tokens).repeat_interleave(m, 0)
    p = torch.from_numpy(photo_tokens).repeat(n, 1, 1)
    with torch.no_grad():
        out = model.relation_head.forward_features(s, p)
    cls = torch.stack([out["sketch_tokens"][:, 0], out["photo_tokens"][:, 0]]).reshape(2, n, m, -1)
    return out["score"].reshape(n, m).numpy(), cls.numpy()


def _check(model, golden, tok_tol, score_tol, cls_tol):
    with torch.no_grad():
        sk = model.encode(torch.from_numpy(golden["sketch_pixels"])).numpy()
        ph = model.encode(torch.from_numpy(golden["photo_pixels"])).numpy()
    assert np.abs(sk - golden["sketch_tokens"]).max() <= tok_tol
    assert np.abs(ph - golden["photo_tokens"]).max() <= tok_tol
    scores, cls = _scores_and_cls(model, golden["sketch_tokens"], golden["photo_tokens"])
    assert np.abs(scores - golden["rn_scores"]).max() <= score_tol
    if cls_tol is not None:
        assert np.abs(cls - golden["ca_cls"]).max() <= cls_tol
    # relate() (the score-only path with fused attention) agrees with forward_features
    with torch.no_grad():
        s = torch.from_numpy(golden["sketch_tokens"]).repeat_interleave(3, 0)
        p = torch.from_numpy(golden["photo_tokens"]).repeat(3, 1, 1)
        assert np.abs(model.relate(s, p).numpy().reshape(3, 3) - golden["rn_scores"]).max() <= score_tol


def test_official_parity(parity_model, golden):
    _check(parity_model, golden, tok_tol=1e-4, score_tol=1e-5, cls_tol=1e-4)


def test_parity_from_file_with_module_prefix_and_half_precision(parity_state, golden, tmp_path):
    from zse_infer.model import load_model

    path = tmp_path / "best_checkpoint.pth"
    half = {f"module.{k}": v.half() for k, v in parity_state.items()}
    torch.save({"model": half, "epoch": 3, "map_all": np.float64(0.7), "precision_100": np.float64(0.8)}, path)
    model = load_model(path)
    assert next(model.parameters()).dtype == torch.float32
    _check(model, golden, tok_tol=5e-2, score_tol=1e-3, cls_tol=None)


def test_module_prefix_full_precision_is_exact(parity_state, parity_model):
    from zse_infer.model import load_model

    model = load_model({f"module.{k}": v for k, v in parity_state.items()})
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), parity_model.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
