"""Torch modules shaped for ONNX export, sharing weights with a loaded :class:`ZseModel`: split q/k/v, explicit
:class:`AttentionCore` per attention, fp32 islands in fp16 graphs (why and measured: docs/export.md)."""

from __future__ import annotations

import copy
import math
from typing import TypeVar

import torch
from torch import nn

from ..errors import ExportError
from ..model import ZseModel
from ..model.relation_head import CrossAttentionLayer, RelationHead, StdNorm

_M = TypeVar("_M", bound=nn.Module)

ATTENTION_STYLES = ("divide", "prescale")


class AttentionCore(nn.Module):
    """(B, Nq, D), (B, Nk, D), (B, Nk, D) -> (B, Nq, D) per head; a submodule so its ONNX nodes share one name scope."""

    def __init__(self, heads: int, dim: int, style: str):
        super().__init__()
        if style not in ATTENTION_STYLES:
            raise ExportError(f"attention style: received {style!r}, expected one of {ATTENTION_STYLES}")
        self.heads = heads
        self.head_dim = dim // heads
        self.style = style

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, n, d = q.shape
        q = q.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = k.reshape(b, -1, self.heads, self.head_dim).permute(0, 2, 3, 1)
        v = v.reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)
        if self.style == "prescale":
            scores = torch.matmul(q * (self.head_dim**-0.5), k)
        else:
            scores = torch.matmul(q, k) / math.sqrt(self.head_dim)
        x = torch.matmul(scores.softmax(dim=-1), v)
        return x.transpose(1, 2).reshape(b, n, d)


class Fp32LayerNorm(nn.Module):
    """``nn.LayerNorm`` computed in float32 whatever the activations' dtype. Also in ORT fp16 graphs: without the casts
    ORT fuses the residual Adds into fp16 SkipLayerNormalization, doubling the token error (1e-2, not 4.5e-3)."""

    def __init__(self, norm: nn.LayerNorm | StdNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.float()).to(x.dtype)


class Fp32StdNorm(Fp32LayerNorm):
    """The relation head's unbiased-std norm, computed in float32 (its own class: graph metadata names it)."""


def _part(owner: nn.Module, name: str, kind: type[_M]) -> _M:
    """``owner.name`` when it is a ``kind``; any other layout is refused, not exported differently."""
    part = getattr(owner, name, None)
    if not isinstance(part, kind):
        raise ExportError(f"encoder block part {name!r} is {type(part).__name__}, expected {kind.__name__}")
    return part


def _split_qkv(qkv: nn.Linear, dim: int) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
    """timm's packed projection -> three Linear(dim, dim); rows are [q; k; v] (its reshape(B,N,3,H,d))."""
    parts = []
    for i in range(3):
        lin = nn.Linear(dim, dim, bias=qkv.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(qkv.weight[i * dim : (i + 1) * dim])
            if qkv.bias is not None:
                lin.bias.copy_(qkv.bias[i * dim : (i + 1) * dim])
        parts.append(lin)
    return parts[0], parts[1], parts[2]


class ExportBlock(nn.Module):
    """A timm pre-norm ViT block with split q/k/v and an explicit :class:`AttentionCore`."""

    def __init__(self, block: nn.Module, dim: int, heads: int, style: str):
        super().__init__()
        attn = _part(block, "attn", nn.Module)
        # Parts our config never creates; refuse rather than silently export a different network.
        for name in ("ls1", "ls2", "drop_path1", "drop_path2"):
            if not isinstance(getattr(block, name, nn.Identity()), nn.Identity):
                raise ExportError(f"encoder block has a non-identity {name}; the exporter does not support it")
        for name in ("q_norm", "k_norm", "norm"):
            if not isinstance(getattr(attn, name, nn.Identity()), nn.Identity):
                raise ExportError(f"encoder attention has a non-identity {name}; the exporter does not support it")
        self.norm1 = Fp32LayerNorm(_part(block, "norm1", nn.LayerNorm))
        self.q, self.k, self.v = _split_qkv(_part(attn, "qkv", nn.Linear), dim)
        self.core = AttentionCore(heads, dim, style)
        self.proj = _part(attn, "proj", nn.Module)
        self.norm2 = Fp32LayerNorm(_part(block, "norm2", nn.LayerNorm))
        self.mlp = _part(block, "mlp", nn.Module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.proj(self.core(self.q(h), self.k(h), self.v(h)))
        return x + self.mlp(self.norm2(x))


class ExportEncoder(nn.Module):
    """image float32 (B, 3, H, W) -> tokens float32 (B, N, D), computing in ``dtype``."""

    def __init__(self, model: ZseModel, style: str):
        super().__init__()
        enc, cfg = model.encoder, model.config.encoder
        self.patch_embed, self.cls_token, self.pos_embed = enc.patch_embed, enc.cls_token, enc.pos_embed
        self.blocks = nn.Sequential(*[ExportBlock(b, cfg.width, cfg.heads, style) for b in enc.blocks])
        self.norm = Fp32LayerNorm(enc.norm)

    @property
    def dtype(self) -> torch.dtype:
        return self.pos_embed.dtype

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(image.to(self.dtype))
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        # Expanded, not broadcast: with a (1, N, D) operand ORT forms no SkipLayerNormalization in front of
        # block 0 and its attention fusion misses that block (see attention_fusion).
        x = self.blocks(x + self.pos_embed.expand(x.shape[0], -1, -1))
        return self.norm(x).float()


class ExportCrossLayer(nn.Module):
    """The relation head's post-norm cross-attention layer with an explicit :class:`AttentionCore`."""

    def __init__(self, layer: CrossAttentionLayer, dim: int, style: str):
        super().__init__()
        self.q, self.k, self.v, self.out = layer.attn.q, layer.attn.k, layer.attn.v, layer.attn.out
        self.core = AttentionCore(layer.attn.heads, dim, style)
        self.norm1 = Fp32StdNorm(layer.norm1)
        self.ffn = layer.ffn
        self.norm2 = Fp32StdNorm(layer.norm2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        attended = self.out(self.core(self.q(query), self.k(key), self.v(value)))
        x = self.norm1(value + attended)
        return self.norm2(x + self.ffn(x))


class ExportRelationHead(nn.Module):
    """(sketch_tokens, photo_tokens) float32 (B, N, D) -> score float32 (B,)."""

    def __init__(self, model: ZseModel, style: str):
        super().__init__()
        head: RelationHead = model.relation_head
        dim, self.grid = model.config.encoder.width, head.grid
        self.sketch_layer = ExportCrossLayer(head.sketch_layer, dim, style)
        self.photo_layer = ExportCrossLayer(head.photo_layer, dim, style)
        self.anchor_conv, self.mlp = head.anchor_conv, head.mlp

    @property
    def dtype(self) -> torch.dtype:
        return self.anchor_conv.weight.dtype

    def _anchors(self, tokens: torch.Tensor) -> torch.Tensor:
        b, _, d = tokens.shape
        # The official plain reshape of (B, g*g, D) memory to (B, D, g, g), not a transpose.
        grid = tokens[:, 1:].reshape(b, d, self.grid, self.grid)
        return self.anchor_conv(grid).flatten(2).transpose(1, 2).float()

    def forward(self, sketch_tokens: torch.Tensor, photo_tokens: torch.Tensor) -> torch.Tensor:
        s, p = sketch_tokens.to(self.dtype), photo_tokens.to(self.dtype)
        s2 = self.sketch_layer(s, p, s)  # S' = L1(q=S, k=P, v=S)
        p2 = self.photo_layer(p, s, p)  # P' = L2(q=P, k=S, v=P)
        a, b = self._anchors(s2), self._anchors(p2)
        # Cosine kernel in fp32: norms of 512-wide anchors; NaN (zero norm) -> 0 as the official code.
        sim = torch.matmul(a, b.transpose(-2, -1))
        sim = sim / a.norm(dim=-1).unsqueeze(-1) / b.norm(dim=-1).unsqueeze(-2)
        sim = torch.where(torch.isnan(sim), torch.zeros_like(sim), sim)
        return torch.sigmoid(self.mlp(sim.flatten(1))).squeeze(-1)


def _cast_for_precision(module: nn.Module, precision: str) -> nn.Module:
    if precision == "fp32":
        return module.float()
    if precision != "fp16":
        raise ExportError(f"precision: received {precision!r}, expected 'fp32' or 'fp16'")
    module.half()
    for sub in module.modules():
        if isinstance(sub, Fp32LayerNorm):  # and Fp32StdNorm: float32 islands (see the module docstring)
            sub.float()
    if isinstance(module, ExportRelationHead):
        module.mlp.float()  # the relation MLP reads the fp32 cosine kernel
    return module


def build_export_module(model: ZseModel, role: str, precision: str = "fp32", style: str = "divide") -> nn.Module:
    """A fresh export-shaped copy of ``model``'s encoder or relation head, in eval mode (a deep copy: casting to
    fp16 must not touch the user's model)."""
    modules = {"encoder": ExportEncoder, "relation_head": ExportRelationHead}
    if role not in modules:
        raise ExportError(f"role: received {role!r}, expected 'encoder' or 'relation_head'")
    return _cast_for_precision(modules[role](copy.deepcopy(model).float().eval(), style), precision).eval()
