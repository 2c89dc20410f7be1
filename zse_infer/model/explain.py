"""The relation head with its internals as outputs (``explain.onnx``), so a deployed folder explains itself. An
anchor reads all patches (docs/explanations.md), so matches are placed by exact linear attribution: an anchor
feature is ``bias + sum_t C_t`` (C_t: the conv sum's part reading token t), so the cosine of a sketch anchor with its
best photo anchor splits into one term per sketch patch, likewise per photo patch, plus a bias term (tests check it)."""

from __future__ import annotations

import torch
from torch import nn

from .relation_head import RelationHead, cosine_kernel

#: names and meaning of the explain graph's outputs (B = pairs, N = tokens, A = anchors)
EXPLAIN_OUTPUTS = {
    "score": "(B,) relation score, as relation_head.onnx",
    "kernel": "(B, A, A) cosine of every sketch anchor with every photo anchor",
    "sketch_attention": "(B, N, N) sketch-token queries over photo-token keys, mean over heads",
    "photo_attention": "(B, N, N) photo-token queries over sketch-token keys, mean over heads",
    "best_photo_anchor": "(B, A) argmax over photo anchors of kernel, per sketch anchor (int64)",
    "sketch_relevance": "(B, A, N-1) share of each sketch patch in kernel[a, best_photo_anchor[a]]",
    "photo_relevance": "(B, A, N-1) share of each photo patch in kernel[a, best_photo_anchor[a]]",
    "bias_relevance": "(B, A, 2) the conv-bias terms of that cosine (sketch side, photo side)",
}


def token_index_map(grid: int, width: int, kernel: int) -> torch.Tensor:
    """(anchors, width * kernel * kernel) index of the patch token read by every conv input element, in
    ``_anchor_inputs``' order: anchor-major, then channel, then (i, j) in the kernel."""
    # (width, grid, grid): the flat memory index of each conv input element // width = the token it reads
    token = torch.arange(width * grid * grid).view(width, grid, grid) // width
    a = grid // kernel
    token = token.view(width, a, kernel, a, kernel).permute(1, 3, 0, 2, 4)  # (a, a, width, k, k)
    return token.reshape(a * a, width * kernel * kernel)


class ExplainHead(nn.Module):
    """(sketch tokens, photo tokens) -> score plus attention maps, anchor kernel and patch relevance."""

    token_index: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, head: RelationHead):
        super().__init__()
        self.head = head
        index = token_index_map(head.grid, head.anchor_conv.in_channels, head.anchor_conv.kernel_size[0])
        self.register_buffer("token_index", index, persistent=False)

    def _anchor_inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-attended tokens -> (B, A, width*k*k): the conv input elements of every anchor."""
        b, _, d = tokens.shape
        k, g = self.head.anchor_conv.kernel_size[0], self.head.grid
        a = g // k
        grid = tokens[:, 1:].reshape(b, d, g, g)  # the official reshape (see module docstring)
        grid = grid.reshape(b, d, a, k, a, k).permute(0, 2, 4, 1, 3, 5)
        return grid.reshape(b, a * a, d * k * k)

    def _relevance(
        self, inputs: torch.Tensor, index: torch.Tensor, feats: torch.Tensor, partner: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-patch terms of cos(feats[a], partner[a]) and its bias term; ``inputs``/``index``: (B, A, E) conv input
        elements of row a's anchor and the patch each reads. With v = p / (|f| |p|), t's term sums x * (W^T v)."""
        conv = self.head.anchor_conv
        b, n_anchor, _ = feats.shape
        v = partner / (feats.norm(dim=-1, keepdim=True) * partner.norm(dim=-1, keepdim=True))  # (B, A, C)
        w = torch.matmul(v, conv.weight.reshape(conv.out_channels, -1))  # (B, A, E)
        relevance = torch.zeros(b, n_anchor, self.head.grid**2, dtype=inputs.dtype, device=inputs.device)
        relevance = relevance.scatter_add(2, index, inputs * w)
        return relevance, (v * conv.bias).sum(-1)

    def forward(self, sketch_tokens: torch.Tensor, photo_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        head = self.head
        s, p, s_w, p_w = head.cross_attend(sketch_tokens, photo_tokens, need_weights=True)
        fs, fp = head.anchors(s), head.anchors(p)
        kernel = cosine_kernel(fs, fp)
        best = kernel.argmax(dim=-1)  # (B, A): the photo anchor each sketch anchor matches best
        index = self.token_index.unsqueeze(0).expand(s.shape[0], -1, -1)
        fp_best = _rows(fp, best)
        sketch_rel, sketch_bias = self._relevance(self._anchor_inputs(s), index, fs, fp_best)
        # The photo side of the same pairs: photo anchor best[a] against sketch anchor a.
        photo_rel, photo_bias = self._relevance(_rows(self._anchor_inputs(p), best), _rows(index, best), fp_best, fs)
        scores = dict(score=head.score_from_kernel(kernel), kernel=kernel)  # in output order, as the graph traces them
        maps = dict(sketch_attention=s_w.mean(dim=1), photo_attention=p_w.mean(dim=1), best_photo_anchor=best)
        bias = torch.stack([sketch_bias, photo_bias], dim=-1)
        return {**scores, **maps, "sketch_relevance": sketch_rel, "photo_relevance": photo_rel, "bias_relevance": bias}


def _rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, a]] for every row a: (B, A, ...)."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
