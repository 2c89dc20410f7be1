"""The whole network, split the way inference uses it, and fitting a (:mod:`.checkpoint`-mapped) state into it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..config import ModelConfig, get_config, list_configs
from ..errors import CheckpointError
from .checkpoint import FilteredState, checkpoint_filter_fn, read_checkpoint
from .encoder import Encoder
from .relation_head import RelationHead

_log = logging.getLogger(__name__)


class ZseModel(nn.Module):
    """``encode(pixels) -> tokens`` once per image; ``relate(S, P) -> scores`` once per pair."""

    def __init__(self, config: str | ModelConfig = "zse_vit_b16"):
        super().__init__()
        self.config = get_config(config)
        self.encoder = Encoder(self.config.encoder)
        self.relation_head = RelationHead(self.config.relation_head, self.config.encoder)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float -> (B, 1 + g*g, D) tokens."""
        return self.encoder(pixels)

    def relate(self, sketch_tokens: torch.Tensor, photo_tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, D) x (B, N, D), paired row-wise -> (B,) relation scores (higher = more similar)."""
        return self.relation_head(sketch_tokens, photo_tokens)

    def forward(self, sketch: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        """Pixels of sketch/photo pairs -> relation scores."""
        return self.relate(self.encode(sketch), self.encode(photo))


def _examples(items: list[str], limit: int = 3) -> str:
    """The first ``limit`` items and how many more: a full key list runs to thousands of characters."""
    return ", ".join(items[:limit]) + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def matching_configs(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The known model configs whose every parameter a (filtered) state dict has, with the right shape."""
    have = {k: tuple(v.shape) for k, v in state.items()}
    with torch.device("meta"):  # the models are built without memory or time
        return [c for c in list_configs() if {k: tuple(v.shape) for k, v in ZseModel(c).state_dict().items()} == have]


def mismatch_message(
    name: str, filtered: FilteredState, config: str, missing: list[str], unexpected: list[str], misshaped: list[str]
) -> str:
    """Why a checkpoint does not fit a config: counts, a few examples, and the known config it does fit if any."""
    parts = [
        f"{len(keys)} {'key' if len(keys) == 1 else 'keys'} {what} ({_examples(keys)})"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", misshaped))
        if keys
    ]
    text = f"{name}: checkpoint ({filtered.layout} layout) does not fit model config {config!r}: " + "; ".join(parts)
    fits = [c for c in matching_configs(filtered.state_dict) if c != config]
    if fits:
        text += f". This looks like a {fits[0]} checkpoint: pass --config {fits[0]} (config={fits[0]!r} in Python)"
    return text


def load_state(model: ZseModel, source: str | os.PathLike | Mapping[str, Any]) -> ZseModel:
    """Load a checkpoint of any supported layout into ``model``, with a precise error on mismatch."""
    raw, name = read_checkpoint(source)
    filtered = checkpoint_filter_fn(raw)
    if filtered.layout == "unknown":
        expected_keys = "the authors' keys (sa.*, ca.*, rn.*, conv2d.*), a backbone file, or zse-infer's own keys"
        first = f"(first keys: {_examples(sorted(raw), 5)})"
        raise CheckpointError(f"{name}: does not look like a ZSE-SBIR checkpoint {first}; expected {expected_keys}")
    expected, state = model.state_dict(), filtered.state_dict
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    misshaped = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    allowed_missing: list[str] = []
    if filtered.layout == "backbone":
        # The ImageNet backbone lacks the relation head, maybe the multi-scale branch: they keep their initialisation.
        allowed_missing = [k for k in missing if k.startswith(("relation_head.", "encoder.patch_embed.scale."))]
        missing = [k for k in missing if k not in allowed_missing]
    if missing or unexpected or misshaped:
        raise CheckpointError(mismatch_message(name, filtered, model.config.name, missing, unexpected, misshaped))
    if allowed_missing:
        what = "relation head" + (" and multi-scale patch branch" if any("scale" in k for k in allowed_missing) else "")
        message = "%s: backbone-only checkpoint; %d parameters keep their initialisation (%s)"
        _log.warning(message, name, len(allowed_missing), what)
    for key, value in state.items():
        if not value.is_floating_point():
            raise CheckpointError(f"{name}: key {key} has dtype {value.dtype}, expected a floating-point tensor")
    # Half-precision files load as float32: compute precision is chosen at export time.
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=False)
    return model


def load_model(
    path_or_state_dict: str | os.PathLike | Mapping[str, Any], config: str | ModelConfig = "zse_vit_b16"
) -> ZseModel:
    """A :class:`ZseModel` in eval mode with a checkpoint's weights (formats accepted: docs/export.md); no network."""
    return load_state(ZseModel(config), path_or_state_dict).eval()
