"""Reading checkpoints and mapping their keys onto our module names (the authors' release, the ImageNet
backbone file training starts from, our own layout); fitting a state dict into a model is :mod:`.zse`'s."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError

# (official, ours) key templates. A template ending in "." maps a prefix, any other maps a whole key; "{i}" stands
# for a block index. The same table maps both ways, so a model trained here can be saved in the official layout.
_CA_PARTS = [
    *[(f"self_attn.linears.{i}.", f"attn.{name}.") for i, name in enumerate(("q", "k", "v", "out"))],
    *[(f"feed_forward.w_{i}.", f"ffn.fc{i}.") for i in (1, 2)],
    *[(f"sublayer.{i - 1}.norm.", f"norm{i}.") for i in (1, 2)],
]
_BLOCK_PARTS = [
    ("layer_norm_input.", "norm1."),
    ("layer_norm_out.", "norm2."),
    ("attention.to_qkv.", "attn.qkv."),
    ("attention.to_out.0.", "attn.proj."),
    ("mlp.net.0.", "mlp.fc1."),
    ("mlp.net.3.", "mlp.fc2."),
]
_RULES: list[tuple[str, str]] = [
    ("sa.model.pos_embedding", "encoder.pos_embed"),
    ("sa.model.cls", "encoder.cls_token"),
    ("sa.model.embedding.", "encoder.patch_embed.proj."),
    ("sa.model.scale.seq.", "encoder.patch_embed.scale.seq."),
    ("sa.model.transformer.encoder_norm.", "encoder.norm."),
    *[(f"sa.model.transformer.layers.{{i}}.0.{o}", f"encoder.blocks.{{i}}.{n}") for o, n in _BLOCK_PARTS],
    *[(f"ca.encoder.layer1.0.{o}", f"relation_head.sketch_layer.{n}") for o, n in _CA_PARTS],
    *[(f"ca.encoder.layer2.0.{o}", f"relation_head.photo_layer.{n}") for o, n in _CA_PARTS],
    ("rn.rn.", "relation_head.mlp."),
    ("conv2d.", "relation_head.anchor_conv."),
]


def _compile(template: str) -> re.Pattern:
    body = re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)")
    return re.compile("^" + body + ("" if template.endswith(".") else "$"))


_FORWARD = [(_compile(o), n) for o, n in _RULES]
_BACKWARD = [(_compile(n), o) for o, n in _RULES]


def _map_key(key: str, rules: list[tuple[re.Pattern, str]]) -> str | None:
    for pattern, target in rules:
        if m := pattern.match(key):
            return target.replace("{i}", m.groupdict().get("i") or "") + key[m.end() :]
    return None


# The checkpoint holds a third cross-attention copy that the forward pass never uses.
_IGNORED = re.compile(r"^ca\.encoder\.layers\.")
_OFFICIAL_PREFIXES = ("sa.", "ca.", "rn.", "conv2d.")
_OUR_PREFIXES = ("encoder.", "relation_head.")
_BACKBONE_MARKERS = ("transformer.", "pos_embedding", "cls", "embedding.")
_EXPECTED = "expected a state dict or {'model': state_dict, ...}"


@dataclass
class FilteredState:
    """The result of mapping a checkpoint: our keys, plus what kind of file it was."""

    state_dict: dict[str, torch.Tensor]
    layout: str  # "official", "backbone" or "native"
    ignored: list[str] = field(default_factory=list)


def detect_layout(keys: list[str]) -> str:
    layouts = (("native", _OUR_PREFIXES), ("official", _OFFICIAL_PREFIXES), ("backbone", _BACKBONE_MARKERS))
    return next((name for name, prefixes in layouts if any(k.startswith(prefixes) for k in keys)), "unknown")


def checkpoint_filter_fn(state_dict: Mapping[str, Any]) -> FilteredState:
    """Map any supported checkpoint layout to our keys. Pure: no I/O, no model needed. Unknown keys are kept
    (prefix-stripped) so the loader reports them as unexpected instead of silently dropping them."""
    stripped = {re.sub(r"^(module\.)+", "", k): v for k, v in state_dict.items()}
    layout = detect_layout(list(stripped))
    out: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in stripped.items():
        official = f"sa.model.{key}" if layout == "backbone" else key
        # the backbone's ImageNet classifier head (mlp_head.) is not part of the encoder
        if layout != "native" and (_IGNORED.match(official) or (layout == "backbone" and key.startswith("mlp_head."))):
            ignored.append(key)
        else:
            out[key if layout == "native" else (_map_key(official, _FORWARD) or key)] = value
    return FilteredState(out, layout, ignored)


def to_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our keys -> the authors' keys (the inverse of :func:`checkpoint_filter_fn`); the unused third
    cross-attention copy is written as a copy of ``layer1`` so the official strict ``load_state_dict`` accepts it."""
    out = {}
    for key, value in state_dict.items():
        if (official := _map_key(key, _BACKWARD)) is None:
            raise CheckpointError(f"cannot map key {key!r} to the official layout")
        out[official] = value
        if official.startswith("ca.encoder.layer1.0."):
            out[official.replace("ca.encoder.layer1.0.", "ca.encoder.layers.0.")] = value.clone()
    return out


def _numpy_safe_globals() -> list:
    """Numpy scalar types released checkpoints hold (``map_all`` is a numpy float), allow-listed for
    ``weights_only`` loading: they rebuild plain numbers, nothing executable."""
    scalar = getattr(np, "_core", np.core).multiarray.scalar
    entries: list = [(scalar, f"numpy.{core}.multiarray.scalar") for core in ("core", "_core")]
    return [*entries, np.dtype, *(type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "float16"))]


def read_checkpoint(source: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """(raw state dict, description) from a path or a mapping; files are read with ``weights_only=True``:
    a checkpoint is untrusted input and must not run code when unpickled."""
    if isinstance(source, Mapping):
        return _unwrap(source, "<state dict>"), "<state dict>"
    if not isinstance(source, (str, os.PathLike)):
        raise CheckpointError(f"checkpoint: expected a path or a state dict, received {type(source).__name__}")
    path = Path(source)
    name = str(path)
    if not path.is_file():
        raise CheckpointError(f"{name}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{name}: checkpoint file is empty (0 bytes)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), name
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{name}: not a readable safetensors file ({exc})") from exc
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError, EOFError...)
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise CheckpointError(
            f"{name}: cannot be read as a PyTorch checkpoint with weights_only=True ({detail})"
        ) from exc
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{name}: {_EXPECTED}, found {type(raw).__name__}")
    return _unwrap(raw, name), name


def _unwrap(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    raw = next((raw[key] for key in ("model", "state_dict") if isinstance(raw.get(key), Mapping)), raw)
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{name}: holds no tensors; {_EXPECTED}")
    non_tensors = sorted(set(raw) - set(tensors))
    if non_tensors:
        raise CheckpointError(f"{name}: state dict has non-tensor entries {non_tensors[:5]}")
    return dict(tensors)


def checkpoint_metadata(source: str | os.PathLike) -> dict[str, Any]:
    """The non-tensor fields of a released checkpoint (epoch, map_all, precision_100), as plain numbers."""
    path = Path(source)
    if path.suffix == ".safetensors":
        return {}
    with torch.serialization.safe_globals(_numpy_safe_globals()):
        raw = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(raw, Mapping) and isinstance(raw.get("model"), Mapping)):
        return {}
    fields = {k: v for k, v in raw.items() if k != "model" and isinstance(v, (int, float, np.number, str))}
    return {k: v.item() if isinstance(v, np.number) else v for k, v in fields.items()}
