"""The restructured relation head computes the official scores."""

import numpy as np
import pytest
import torch

from zse_infer.model import ZseModel
from zse_infer.model.fast_relation import FastRelationHead


@pytest.mark.slow
def test_equals_official_on_parity_weights(parity_model, golden):
    fast = FastRelationHead(parity_model.relation_head).eval()
    sketches, photos = torch.from_numpy(golden["sketch_tokens"]), torch.from_numpy(golden["photo_tokens"])
    with torch.no_grad():
        for i in range(3):
            scores = fast(sketches[i : i + 1], photos)  # one sketch broadcast over three photos
            assert np.abs(scores.numpy() - golden["rn_scores"][i]).max() <= 1e-5
        prepared = fast.prepare_photos(photos)  # cached once, reused for every query
        for i in range(3):
            scores = fast.score_prepared(fast.prepare_sketch(sketches[i : i + 1]), prepared)
            assert np.abs(scores.numpy() - golden["rn_scores"][i]).max() <= 1e-5


@pytest.mark.parametrize("fused", [True, False])
def test_equals_relation_head_on_tiny(fused):
    torch.manual_seed(0)
    model = ZseModel("tiny").eval()
    fast = FastRelationHead(model.relation_head).eval()
    fast.fused = fused
    s, p = torch.randn(1, 65, 32), torch.randn(7, 65, 32)
    with torch.no_grad():
        expected = model.relate(s.expand(7, -1, -1), p)
        assert torch.allclose(fast(s, p), expected, atol=1e-6)
        # row-paired use (B sketches x B photos) works too
        s7 = torch.randn(7, 65, 32)
        assert torch.allclose(fast(s7, p), model.relate(s7, p), atol=1e-6)


def test_shares_parameters_with_the_head():
    model = ZseModel("tiny")
    fast = FastRelationHead(model.relation_head)
    assert {id(p) for p in fast.parameters()} == {id(p) for p in model.relation_head.parameters()}
