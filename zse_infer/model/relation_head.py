"""The per-pair relation head: exactly the official ``ca`` + ``conv2d`` + ``rn`` modules, with the quirks that must not
be "fixed" (values from *itself*, the anchor grid a reshape not a transpose, unbiased std: docs/spec.md)."""

from __future__ import annotations

import itertools
import math
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig, RelationHeadConfig


class StdNorm(nn.Module):
    """``a * (x - mean) / (std + eps) + b`` with the unbiased std (the official ``LayerNorm``)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.a = nn.Parameter(torch.ones(dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = x.mean(-1, keepdim=True), x.std(-1, keepdim=True)  # unbiased std (n - 1), as the official code
        return self.a * (x - mean) / (std + self.eps) + self.b


class MultiHeadAttention(nn.Module):
    """Four Linear projections (q, k, v, out) and scaled dot-product attention: PyTorch's SDPA when ``fused``,
    else the explicit ``softmax(q k^T / sqrt(d)) v`` the ONNX exporter uses (the pattern ORT's fusion finds)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.attn_drop = nn.Dropout(dropout)
        self.fused = True

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, n, d = query.shape
        q, k, v = self._split(self.q(query)), self._split(self.k(key)), self._split(self.v(value))
        weights = None
        if self.fused and not need_weights:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            weights = (torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)).softmax(dim=-1)
            x = torch.matmul(self.attn_drop(weights), v)
        return self.out(x.transpose(1, 2).reshape(b, n, d)), weights


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class CrossAttentionLayer(nn.Module):
    """Post-norm layer: ``x = norm1(value + attn(q, k, v)); x = norm2(x + ffn(x))``."""

    def __init__(self, dim: int, cfg: RelationHeadConfig):
        super().__init__()
        self.attn = MultiHeadAttention(dim, cfg.heads, cfg.dropout)
        self.norm1 = StdNorm(dim, cfg.norm_eps)
        self.ffn = FeedForward(dim, cfg.ffn_dim, cfg.dropout)
        self.norm2 = StdNorm(dim, cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attn(query, key, value, need_weights)
        x = self.norm1(value + self.drop(attended))
        return self.norm2(x + self.drop(self.ffn(x))), weights


def cosine_kernel(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(B, M, C) x (B, N, C) -> (B, M, N) cosine similarities; 0 where a norm is 0 (official)."""
    sim = torch.matmul(p, q.transpose(-2, -1)) / p.norm(dim=-1).unsqueeze(-1) / q.norm(dim=-1).unsqueeze(-2)
    return torch.where(torch.isnan(sim), torch.zeros_like(sim), sim)


class RelationHead(nn.Module):
    """(sketch tokens, photo tokens), both (B, 1 + g*g, D), paired row-wise -> score (B,) in (0, 1)."""

    def __init__(self, cfg: RelationHeadConfig, encoder_cfg: EncoderConfig):
        super().__init__()
        cfg.validate(encoder_cfg)
        self.cfg, self.grid, dim = cfg, encoder_cfg.grid_size, encoder_cfg.width
        self.sketch_layer = CrossAttentionLayer(dim, cfg)  # official ca.encoder.layer1.0
        self.photo_layer = CrossAttentionLayer(dim, cfg)  # official ca.encoder.layer2.0
        self.anchor_conv = nn.Conv2d(dim, cfg.anchor_dim, cfg.anchor_kernel, stride=cfg.anchor_kernel)
        anchors = cfg.anchors(encoder_cfg)
        sizes = (anchors * anchors, *cfg.rn_hidden)
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(sizes):
            layers += [nn.Linear(c_in, c_out), nn.ReLU(), nn.Dropout(cfg.dropout)]
        layers.append(nn.Linear(sizes[-1], 1))
        self.mlp = nn.Sequential(*layers)  # official rn.rn: Linear at 0, 3, 6

    def anchors(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-attended tokens (B, 1 + g*g, D) -> anchor features (B, a*a, anchor_dim)."""
        b, _, d = tokens.shape
        grid = tokens[:, 1:].reshape(b, d, self.grid, self.grid)  # as the official `view`: mixes tokens and channels
        return self.anchor_conv(grid).flatten(2).transpose(1, 2)

    def score_from_kernel(self, kernel: torch.Tensor) -> torch.Tensor:
        """(B, A, A) anchor cosine kernel -> (B,) relation score."""
        return torch.sigmoid(self.mlp(kernel.flatten(1))).squeeze(-1)

    # The weights are there exactly when asked for: callers that ask get tensors, not optionals.
    @overload
    def cross_attend(
        self, sketch: torch.Tensor, photo: torch.Tensor, need_weights: Literal[True]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]: ...
    @overload
    def cross_attend(
        self, sketch: torch.Tensor, photo: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]: ...
    def cross_attend(
        self, sketch: torch.Tensor, photo: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Both directions from the *original* tokens: S' = L1(S, P, S), P' = L2(P, S, P)."""
        s, s_w = self.sketch_layer(sketch, photo, sketch, need_weights)
        p, p_w = self.photo_layer(photo, sketch, photo, need_weights)
        return s, p, s_w, p_w

    def forward_features(self, sketch: torch.Tensor, photo: torch.Tensor, need_weights: bool = False) -> dict:
        """Everything the head computes: cross-attended tokens, attention weights, anchors, kernel, score."""
        s, p, s_w, p_w = self.cross_attend(sketch, photo, need_weights)
        kernel = cosine_kernel(self.anchors(s), self.anchors(p))
        features = dict(sketch_tokens=s, photo_tokens=p, sketch_attention=s_w, photo_attention=p_w, kernel=kernel)
        return {**features, "score": self.score_from_kernel(kernel)}

    def forward(self, sketch: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        s, p, _, _ = self.cross_attend(sketch, photo)
        return self.score_from_kernel(cosine_kernel(self.anchors(s), self.anchors(p)))
