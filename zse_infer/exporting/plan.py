"""Which graphs an export writes, and their I/O contract (names, dtypes, shapes), from config + recipe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import ModelConfig
from ..manifest import ENCODER_INPUT, ENCODER_OUTPUT, HEAD_INPUTS, HEAD_OUTPUT, BatchRange, GraphSpec, TensorSpec
from .recipes import ROLES, Recipe
from .torch_to_onnx import BATCH_DIM

# variant -> graph id suffix; precision "fp16" adds "_fp16" (graph ids are part of the manifest contract).
_SUFFIX = {"plain": "", "ort_fused": "_fused", "trt": "_trt"}


@dataclass(frozen=True)
class GraphPlan:
    role: str
    precision: str
    variant: str

    @property
    def id(self) -> str:
        return f"{self.role}{_SUFFIX[self.variant]}{'_fp16' if self.precision == 'fp16' else ''}"

    @property
    def file(self) -> str:
        return f"{self.id}.onnx"

    @property
    def attention_style(self) -> str:
        # TensorRT fuses attention only with the scale applied to q before the first MatMul;
        # ORT's patterns (and ours) use scores divided by sqrt(d). See graph_modules.
        return "prescale" if self.variant == "trt" else "divide"

    def spec(self, inputs, outputs, batch: BatchRange, parity, extra: Mapping[str, Any], fused_nodes=None) -> GraphSpec:
        """This graph's manifest entry."""
        return GraphSpec(
            self.id,
            self.role,
            self.precision,
            self.variant,
            self.file,
            inputs,
            outputs,
            batch=batch,
            parity=parity,
            fused_nodes=fused_nodes or {},
            extra=extra,
        )


def plan_graphs(recipe: Recipe, precisions: tuple[str, ...]) -> list[GraphPlan]:
    """Every graph to write, plain first within each (precision, role): fused graphs derive from it."""
    order = [v for v in ("plain", "ort_fused", "trt") if v in recipe.variants]
    return [GraphPlan(role, p, v) for p in precisions for role in ROLES for v in order]


def io_specs(config: ModelConfig, role: str) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The fixed graph contract: float32 in and out, dynamic first dimension named ``batch``."""
    size, tokens = config.encoder.image_size, (BATCH_DIM, config.num_tokens, config.width)
    if role == "encoder":
        image = TensorSpec(ENCODER_INPUT, "float32", (BATCH_DIM, config.encoder.in_chans, size, size))
        return (image,), (TensorSpec(ENCODER_OUTPUT, "float32", tokens),)
    heads = tuple(TensorSpec(name, "float32", tokens) for name in HEAD_INPUTS)
    return heads, (TensorSpec(HEAD_OUTPUT, "float32", (BATCH_DIM,)),)


def concrete_shape(spec: TensorSpec, batch: int) -> tuple[int, ...]:
    return tuple(batch if d == BATCH_DIM else int(d) for d in spec.shape)
