"""A tiny model trains: gradients reach both modules (the later demo-training issue relies on it)."""

import torch
import torch.nn.functional as F

from zse_infer.model import ZseModel


def test_tiny_model_trains_a_few_steps():
    torch.manual_seed(0)
    model = ZseModel("tiny").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sketch, photo, negative = (torch.randn(4, 3, 64, 64) for _ in range(3))
    losses = []
    for _ in range(5):
        s, p, n = model.encode(sketch), model.encode(photo), model.encode(negative)
        triplet = F.triplet_margin_loss(s[:, 0], p[:, 0], n[:, 0], margin=0.3)
        pos, neg = model.relate(s, p), model.relate(s, n)
        relation = F.mse_loss(pos, torch.ones_like(pos)) + F.mse_loss(neg, torch.zeros_like(neg))
        loss = triplet + relation
        opt.zero_grad()
        loss.backward()
        for name, param in model.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
        assert model.relation_head.sketch_layer.attn.q.weight.grad.abs().sum() > 0
        assert model.relation_head.mlp[0].weight.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
