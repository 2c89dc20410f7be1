"""Model and preprocessing configurations, as data (no torch): JSON files in ``zse_infer/model_configs/``, and the same
dictionaries in every ``manifest.json``, so the runtime rebuilds preprocessing from the export folder alone."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .errors import ConfigError

MODALITIES = ("sketch", "photo")


@dataclass(frozen=True)
class EncoderConfig:
    """The per-image ViT encoder with the two-branch ("learnable tokenizer") patch embedding."""

    image_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    # Channels of the multi-scale branch's stride-2 convolutions but the last (to width); 2 ** (len + 1) == patch_size.
    scale_channels: tuple[int, ...] = (64, 128, 256)
    norm_eps: float = 1e-5
    # Training only (official: 0.1 after attention, in the MLP and on the embeddings).
    dropout: float = 0.1

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.grid_size**2 + 1

    def validate(self) -> None:
        if self.image_size % self.patch_size:
            raise ConfigError(f"encoder.image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if (factor := 2 ** (len(self.scale_channels) + 1)) != self.patch_size:
            branch = f"encoder.scale_channels has {len(self.scale_channels)} entries, so the multi-scale branch"
            needs = f"expected patch_size {self.patch_size} (needs {int(math.log2(self.patch_size)) - 1} entries)"
            raise ConfigError(f"{branch} downsamples by {factor}; {needs}")
        if self.width % self.heads:
            raise ConfigError(f"encoder.width {self.width} is not divisible by heads {self.heads}")
        if int(self.width * (self.mlp_dim / self.width)) != self.mlp_dim:
            # timm's Block takes an MLP *ratio*; make sure it maps back to exactly mlp_dim.
            raise ConfigError(f"encoder.mlp_dim {self.mlp_dim} cannot be expressed as a ratio of width {self.width}")


@dataclass(frozen=True)
class RelationHeadConfig:
    """Cross-attention both ways, 2x2 conv to anchors, anchor cosine kernel, relation MLP."""

    heads: int = 8
    ffn_dim: int = 1024
    anchor_dim: int = 512
    anchor_kernel: int = 2
    rn_hidden: tuple[int, ...] = (343, 49)
    norm_eps: float = 1e-6
    # Training only (official: 0.1 in attention, FFN, residuals and the relation MLP).
    dropout: float = 0.1

    def validate(self, encoder: EncoderConfig) -> None:
        if encoder.width % self.heads:
            raise ConfigError(f"relation_head.heads {self.heads} does not divide encoder width {encoder.width}")
        if encoder.grid_size % self.anchor_kernel:
            grid = f"{encoder.grid_size}x{encoder.grid_size}"
            raise ConfigError(f"relation_head.anchor_kernel {self.anchor_kernel} does not divide the token grid {grid}")

    def anchors(self, encoder: EncoderConfig) -> int:
        return (encoder.grid_size // self.anchor_kernel) ** 2


@dataclass(frozen=True)
class PreprocessConfig:
    """How one modality's image (``kind`` "photo" or "sketch") becomes the encoder's float32 (3, size, size) input."""

    kind: str
    size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    ink_threshold: int = 300  # sketch only: a pixel is ink when R+G+B <= ink_threshold (0..765)
    crop_margin: int = 10  # sketch only: margin grown around the ink bounding box, in pixels

    def validate(self) -> None:
        if self.kind not in MODALITIES:
            raise ConfigError(f"preprocess kind {self.kind!r}: expected one of {MODALITIES}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ConfigError(f"preprocess mean/std must be 3 values with std > 0, got {self.mean}/{self.std}")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    relation_head: RelationHeadConfig = field(default_factory=RelationHeadConfig)
    preprocess: Mapping[str, PreprocessConfig] = field(
        default_factory=lambda: {m: PreprocessConfig(kind=m) for m in MODALITIES}
    )

    def validate(self) -> ModelConfig:
        self.encoder.validate()
        self.relation_head.validate(self.encoder)
        for modality in MODALITIES:
            if modality not in self.preprocess:
                raise ConfigError(f"config {self.name!r} has no preprocessing for {modality!r}")
            pre = self.preprocess[modality]
            pre.validate()
            if pre.size != self.encoder.image_size:
                sizes = f"preprocessing size {pre.size} != encoder image_size {self.encoder.image_size}"
                raise ConfigError(f"config {self.name!r}: {modality} {sizes}")
        return self

    @property
    def num_tokens(self) -> int:
        return self.encoder.num_tokens

    @property
    def width(self) -> int:
        return self.encoder.width

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "encoder": dataclasses.asdict(self.encoder),
            "relation_head": dataclasses.asdict(self.relation_head),
            "preprocess": {m: dataclasses.asdict(p) for m, p in self.preprocess.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        try:
            name = data["name"]
            encoder = _build(EncoderConfig, data.get("encoder", {}), "encoder")
            head = _build(RelationHeadConfig, data.get("relation_head", {}), "relation_head")
            pre_data = data.get("preprocess", {m: {"kind": m} for m in MODALITIES})
            preprocess = {m: _build(PreprocessConfig, {"kind": m, **p}, f"preprocess.{m}") for m, p in pre_data.items()}
        except KeyError as exc:
            raise ConfigError(f"model config is missing {exc}") from exc
        return cls(name=name, encoder=encoder, relation_head=head, preprocess=preprocess).validate()


def _build(cls, data: Mapping[str, Any], where: str):
    known = {f.name for f in dataclasses.fields(cls)}
    if unknown := sorted(set(data) - known):
        raise ConfigError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(known)}")
    # JSON has no tuples: turn lists back into tuples so configs stay hashable and comparable.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)


def list_configs() -> list[str]:
    files = resources.files("zse_infer").joinpath("model_configs")
    return sorted(p.name[: -len(".json")] for p in files.iterdir() if p.name.endswith(".json"))


def get_config(config: str | ModelConfig | Mapping[str, Any]) -> ModelConfig:
    """A :class:`ModelConfig` from a name (``"zse_vit_b16"``, ``"tiny"``), a dict, or a config."""
    if isinstance(config, ModelConfig):
        return config.validate()
    if isinstance(config, Mapping):
        return ModelConfig.from_dict(config)
    if not isinstance(config, str):
        raise ConfigError(f"config: expected a name, a dict or a ModelConfig, received {type(config).__name__}")
    path = resources.files("zse_infer").joinpath("model_configs", f"{config}.json")
    if not path.is_file():
        raise ConfigError(f"unknown model config {config!r}; known: {', '.join(list_configs())}")
    return ModelConfig.from_dict(json.loads(path.read_text()))
