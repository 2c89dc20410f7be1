"""The baseline every benchmark ratio is against: the official computation, as the authors run it.

A transcription of the official inference path's structure (docs/spec.md; the
authors' ``model/sa.py``, ``ca.py``, ``rn.py``, ``model.py``): eager PyTorch,
einsum self-attention with a packed qkv projection, and a relation head that
scores one (sketch, photo) pair per row, the sketch's tokens repeated for every
photo and concatenated with them before cross-attention. It loads the
official state-dict layout, so it runs on the same weights as our graphs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim / heads) ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3)
        self.to_out = nn.Sequential(nn.Linear(dim, dim))

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = (
            t.reshape(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3) for t in self.to_qkv(x).chunk(3, dim=-1)
        )
        attn = (torch.einsum("bhid,bhjd->bhij", q, k) * self.scale).softmax(dim=-1)
        out = torch.einsum("bhij,bhjd->bhid", attn, v).permute(0, 2, 1, 3).reshape(b, n, c)
        return self.to_out(out)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.layer_norm_input = nn.LayerNorm(dim)
        self.layer_norm_out = nn.LayerNorm(dim)
        self.attention = _Attention(dim, heads)
        self.mlp = nn.Module()
        self.mlp.net = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Identity(), nn.Linear(mlp, dim))

    def forward(self, x):
        x = self.attention(self.layer_norm_input(x)) + x
        return x + self.mlp.net(self.layer_norm_out(x))


class OfficialEncoder(nn.Module):
    def __init__(
        self, image: int = 224, patch: int = 16, dim: int = 768, depth: int = 12, heads: int = 12, mlp: int = 3072
    ):
        super().__init__()
        self.embedding = nn.Conv2d(3, dim, patch, patch)
        chans = [3, 64, 128, 256, dim]
        layers = []
        for i in range(4):
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 7 if i == 0 else 3, 2, 3 if i == 0 else 1, bias=False),
                nn.ReLU(),
            ]
        self.scale = nn.Module()
        self.scale.seq = nn.Sequential(*layers[:-1])
        self.pos_embedding = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.transformer = nn.Module()
        self.transformer.layers = nn.ModuleList([nn.ModuleList([_Block(dim, heads, mlp)]) for _ in range(depth)])
        self.transformer.encoder_norm = nn.LayerNorm(dim)

    def forward(self, img):
        x = (self.embedding(img) + self.scale.seq(img)) / 2
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat((self.cls.expand(x.shape[0], -1, -1), x), dim=1)
        x += self.pos_embedding[:, : x.shape[1]]
        for layer in self.transformer.layers:
            x = layer[0](x)
        return self.transformer.encoder_norm(x)


class _Norm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.a = nn.Parameter(torch.ones(dim))
        self.b = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x):
        return self.a * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + self.eps) + self.b


class _Sub(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = _Norm(dim)


class _CrossLayer(nn.Module):
    def __init__(self, dim: int = 768, heads: int = 8, ff: int = 1024):
        super().__init__()
        self.self_attn = nn.Module()
        self.self_attn.linears = nn.ModuleList([nn.Linear(dim, dim) for _ in range(4)])
        self.heads = heads
        self.feed_forward = nn.Module()
        self.feed_forward.w_1 = nn.Linear(dim, ff)
        self.feed_forward.w_2 = nn.Linear(ff, dim)
        self.sublayer = nn.ModuleList([_Sub(dim), _Sub(dim)])

    def _mha(self, query, key, value):
        b, d = query.size(0), query.size(-1) // self.heads
        q, k, v = (
            lin(x).view(b, -1, self.heads, d).transpose(1, 2)
            for lin, x in zip(self.self_attn.linears, (query, key, value), strict=False)
        )
        p = F.softmax(torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d), dim=-1)
        x = torch.matmul(p, v).transpose(1, 2).contiguous().view(b, -1, self.heads * d)
        return self.self_attn.linears[-1](x)

    def forward(self, q, k, v):
        x = self.sublayer[0].norm(v + self._mha(q, k, v))
        return self.sublayer[1].norm(x + self.feed_forward.w_2(F.relu(self.feed_forward.w_1(x))))


class OfficialRelationHead(nn.Module):
    """``ca`` + ``conv2d`` + ``rn``: scores rows of (sketch, photo) pairs as the official test does."""

    def __init__(self, dim: int = 768, anchors: int = 49):
        super().__init__()
        self.ca = nn.Module()
        self.ca.encoder = nn.Module()
        self.ca.encoder.layer1 = nn.ModuleList([_CrossLayer(dim)])
        self.ca.encoder.layer2 = nn.ModuleList([_CrossLayer(dim)])
        self.conv2d = nn.Conv2d(dim, 512, 2, 2)
        self.rn = nn.Module()
        self.rn.rn = nn.Sequential(
            nn.Linear(anchors * anchors, 343),
            nn.ReLU(),
            nn.Identity(),
            nn.Linear(343, 49),
            nn.ReLU(),
            nn.Identity(),
            nn.Linear(49, 1),
        )

    def forward(self, sk, im):
        x = torch.cat((sk, im), dim=0)  # the official Model.forward(stage='test') input
        n = x.size(0) // 2
        x_sk, x_im = x[:n], x[n:]
        s = self.ca.encoder.layer1[0](x_sk, x_im, x_sk)
        p = self.ca.encoder.layer2[0](x_im, x_sk, x_im)
        tokens = torch.cat((s, p), dim=0)[:, 1:]
        b = tokens.size(0)
        down = self.conv2d(tokens.reshape(b, tokens.size(-1), 14, 14)).view(b, 512, 49).transpose(1, 2)
        a, c = down[: b // 2], down[b // 2 :]
        sim = a.matmul(c.transpose(-2, -1))
        sim = sim / torch.norm(a, p=2, dim=-1).unsqueeze(-1)
        sim = sim / torch.norm(c, p=2, dim=-1).unsqueeze(-2)
        sim = torch.where(torch.isnan(sim), torch.zeros_like(sim), sim)
        return torch.sigmoid(self.rn.rn(sim.view(b // 2, -1))).squeeze(-1)


def load_official(state_dict: dict) -> tuple[OfficialEncoder, OfficialRelationHead]:
    """Both official modules (eval mode) from an official-layout state dict."""
    enc, head = OfficialEncoder(), OfficialRelationHead()
    enc.load_state_dict({k[len("sa.model.") :]: v for k, v in state_dict.items() if k.startswith("sa.model.")})
    head.load_state_dict({k: v for k, v in state_dict.items() if not k.startswith(("sa.", "ca.encoder.layers."))})
    return enc.eval(), head.eval()


def official_rerank(
    head: OfficialRelationHead, sketch_tokens: torch.Tensor, photo_tokens: torch.Tensor
) -> torch.Tensor:
    """Scores of one sketch (1, N, D) against B photos, the official way: the sketch repeated per pair."""
    return head(sketch_tokens.repeat(photo_tokens.shape[0], 1, 1), photo_tokens)
