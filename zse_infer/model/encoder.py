"""The per-image encoder: timm's pre-norm ViT blocks after the paper's learnable tokenizer, a patch embedding that
averages a 16x16 patch convolution and a small multi-scale conv stack."""

from __future__ import annotations

import itertools
from functools import partial

import torch
from timm.models.vision_transformer import Block
from torch import nn

from ..config import EncoderConfig


class ScaleEmbedding(nn.Module):
    """The multi-scale branch: stride-2 convs (7x7 first, 3x3 after) with ReLU between, no bias. ``seq`` keeps
    the official layout (conv at even indices) so checkpoint keys map 1:1."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        channels = (cfg.in_chans, *cfg.scale_channels, cfg.width)
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
            kernel = 7 if i == 0 else 3
            if i:
                layers.append(nn.ReLU())
            layers.append(nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2, bias=False))
        self.seq = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class TwoBranchPatchEmbed(nn.Module):
    """``(patch_conv(img) + scale(img)) / 2``, flattened to (B, grid*grid, width)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_chans, cfg.width, cfg.patch_size, stride=cfg.patch_size)
        self.scale = ScaleEmbedding(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.proj(x) + self.scale(x)) / 2).flatten(2).transpose(1, 2)


class Encoder(nn.Module):
    """image (B, 3, H, W) -> tokens (B, 1 + grid*grid, width); token 0 is the retrieval token."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.patch_embed = TwoBranchPatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.width))
        self.pos_drop = nn.Dropout(cfg.dropout)
        norm = partial(nn.LayerNorm, eps=cfg.norm_eps)
        # timm annotates norm_layer as a class but only calls it (its own models pass partials); nn.GELU is the exact
        # (erf) GELU, as the official nn.GELU()
        block = partial(Block, cfg.width, cfg.heads, cfg.mlp_dim / cfg.width, qkv_bias=True, proj_drop=cfg.dropout)
        blocks = [block(norm_layer=norm, act_layer=nn.GELU) for _ in range(cfg.depth)]  # type: ignore[arg-type]
        self.blocks = nn.Sequential(*blocks)
        self.norm = norm(cfg.width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # From scratch only (checkpoints overwrite it): the official std 1 (torch.randn); timm's 0.02 trains better.
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.02)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(image)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.norm(self.blocks(self.pos_drop(x + self.pos_embed)))
