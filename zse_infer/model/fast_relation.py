"""The relation head restructured for reranking: per-image work done once, not once per pair. Each projection inside
the two cross-attentions depends on one image only::

    S' = L1(q=S, k=P, v=S):  Q1 = S Wq1, V1 = S Wv1  (sketch)   K1 = P Wk1  (photo)
    P' = L2(q=P, k=S, v=P):  K2 = S Wk2              (sketch)   Q2 = P Wq2, V2 = P Wv2  (photo)

so a query computes its side once (:meth:`prepare_sketch`), a photo its side once (:meth:`prepare_photos`), and per
pair only attention, output projections, FFNs, anchor convolutions and the MLP remain (:meth:`score_prepared`).
Token 0's query row is never used by the score, so it is not computed. Scores equal the official ones (1e-5, tests).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .relation_head import CrossAttentionLayer, RelationHead, cosine_kernel


class SketchSide(NamedTuple):
    """Per-query tensors, each (1 or Bs, ...): heads-split projections and the residual."""

    q1: torch.Tensor  # (Bs, h, N-1, d) queries of S' (patch rows only)
    v1: torch.Tensor  # (Bs, h, N, d) values of S'
    k2: torch.Tensor  # (Bs, h, N, d) keys of P'
    residual: torch.Tensor  # (Bs, N-1, D) S[1:], the residual of S'


class PhotoSide(NamedTuple):
    """Per-photo tensors, (B, ...)."""

    k1: torch.Tensor  # (B, h, N, d) keys of S'
    q2: torch.Tensor  # (B, h, N-1, d) queries of P'
    v2: torch.Tensor  # (B, h, N, d) values of P'
    residual: torch.Tensor  # (B, N-1, D) P[1:]


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.reshape(b, n, heads, d // heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class FastRelationHead(nn.Module):
    """Shares the parameters of a :class:`RelationHead` (no copy); same scores, less work per pair."""

    def __init__(self, head: RelationHead):
        super().__init__()
        self.head = head
        self.heads = head.sketch_layer.attn.heads
        # Explicit attention (matmul, softmax, matmul) for ONNX export; SDPA on the torch path.
        self.fused = True

    def prepare_sketch(self, sketch: torch.Tensor) -> SketchSide:
        l1, l2, h = self.head.sketch_layer.attn, self.head.photo_layer.attn, self.heads
        return SketchSide(
            _heads(l1.q(sketch[:, 1:]), h), _heads(l1.v(sketch), h), _heads(l2.k(sketch), h), sketch[:, 1:]
        )

    def prepare_photos(self, photo: torch.Tensor) -> PhotoSide:
        l1, l2, h = self.head.sketch_layer.attn, self.head.photo_layer.attn, self.heads
        return PhotoSide(_heads(l1.k(photo), h), _heads(l2.q(photo[:, 1:]), h), _heads(l2.v(photo), h), photo[:, 1:])

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.fused:
            b = max(q.shape[0], k.shape[0], v.shape[0])
            q, k, v = (t.expand(b, -1, -1, -1) for t in (q, k, v))  # views: the sketch side is not copied
            return F.scaled_dot_product_attention(q, k, v)
        # matmul broadcasts the batch-1 side itself (and the exporter sees no data-dependent max).
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        return torch.matmul(scores.softmax(dim=-1), v)

    @staticmethod
    def _finish(layer: CrossAttentionLayer, attended: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        x = layer.norm1(residual + layer.attn.out(_merge(attended)))
        return layer.norm2(x + layer.ffn(x))

    def _anchors(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, N-1, D) cross-attended patch tokens -> (B, A, C) anchors (the official reshape)."""
        b, _, d = patches.shape
        grid = patches.reshape(b, d, self.head.grid, self.head.grid)
        return self.head.anchor_conv(grid).flatten(2).transpose(1, 2)

    def score_prepared(self, sketch: SketchSide, photos: PhotoSide) -> torch.Tensor:
        """Scores (B,) of one prepared sketch (batch 1, broadcast) or B sketches against B photos."""
        head = self.head
        s = self._finish(head.sketch_layer, self._attend(sketch.q1, photos.k1, sketch.v1), sketch.residual)
        p = self._finish(head.photo_layer, self._attend(photos.q2, sketch.k2, photos.v2), photos.residual)
        return head.score_from_kernel(cosine_kernel(self._anchors(s), self._anchors(p)))

    def forward(self, sketch: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        """Same contract as :class:`RelationHead`: (B, N, D) x (B, N, D) -> (B,); sketch may be (1, N, D)."""
        return self.score_prepared(self.prepare_sketch(sketch), self.prepare_photos(photo))


# The restructured head as three ONNX graphs (docs/export.md), token-major with heads merged (independent of the head
# count): (b, N, D) tokens -> q (b, N-1, D), k and v (b, N, D) per side; relation_pair broadcasts a query's side.


class _Graph(nn.Module):
    def __init__(self, fast: FastRelationHead):
        super().__init__()
        self.fast = fast


class RelationSketchGraph(_Graph):
    def forward(self, sketch_tokens: torch.Tensor):
        side = self.fast.prepare_sketch(sketch_tokens)
        return _merge(side.q1), _merge(side.v1), _merge(side.k2)


class RelationPhotoGraph(_Graph):
    def forward(self, photo_tokens: torch.Tensor):
        side = self.fast.prepare_photos(photo_tokens)
        return _merge(side.k1), _merge(side.q2), _merge(side.v2)


class RelationPairGraph(_Graph):
    def forward(self, sketch_tokens, sketch_q, sketch_v, sketch_k, photo_tokens, photo_k, photo_q, photo_v):
        h = self.fast.heads
        sketch = SketchSide(_heads(sketch_q, h), _heads(sketch_v, h), _heads(sketch_k, h), sketch_tokens[:, 1:])
        photos = PhotoSide(_heads(photo_k, h), _heads(photo_q, h), _heads(photo_v, h), photo_tokens[:, 1:])
        return self.fast.score_prepared(sketch, photos)
