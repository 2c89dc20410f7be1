"""Building one TensorRT engine from one ONNX graph (TensorRT 10 Python API). Needs TensorRT and a GPU.

Network definition: **strongly typed** (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``,
TensorRT >= 9). Tensor types come from the ONNX graph, so an fp16 engine is
built from the fp16 graph (``*_trt_fp16.onnx``) whose norms and relation-head
tail are explicit fp32 islands, and TensorRT honours them; TensorRT 10.12+
deprecates the weakly typed alternative (``BuilderFlag.FP16`` on an fp32
graph, which lets the builder pick fp16 for LayerNorm and overflow). For
weakly typed builds (``strongly_typed=False``) we do set ``BuilderFlag.FP16``.
fp32 engines clear ``BuilderFlag.TF32`` so they meet the fp32 tolerance.

Attention fusion: the ``*_trt`` graphs express each attention as
``MatMul(q * d**-0.5, K^T) -> Softmax -> MatMul(., V)`` with separate Q/K/V
and no mask. That is the pattern TensorRT 10.x's builder fuses into its fused
multi-head attention kernels (developer guide, "Fused Attention", method 2:
primitive MatrixMultiply/SoftMax layers; it requires the scale on Q or K
*before* the first MatMul, hence that graph shape), for fp16/bf16 on SM 7.5+
(Turing and newer); fp32 engines run the same layers unfused. Documented for
TensorRT 10.0 through 10.16; earlier 8.6/9.x releases fuse the same pattern
through Myelin but are not supported by this package (``tensorrt>=10``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ExportError
from .profiles import Shapes

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildSettings:
    precision: str  # "fp32" | "fp16": must equal the ONNX graph's compute precision
    workspace_mib: int = 4096
    builder_optimization_level: int = 3
    strongly_typed: bool = True


def _logger(trt: ModuleType):
    return trt.Logger(trt.Logger.WARNING)


def build_serialized_engine(
    trt: ModuleType, onnx_path: Path, shapes: Shapes, settings: BuildSettings, timing_cache: bytes = b""
) -> tuple[bytes, bytes, dict[str, Any]]:
    """(serialized engine, updated timing cache, build info). Call only after ``require_tensorrt()``."""
    logger = _logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if settings.strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path}: TensorRT's ONNX parser rejected the graph: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    config.builder_optimization_level = settings.builder_optimization_level
    if settings.precision == "fp16" and not settings.strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    if settings.precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 matmuls (on by default on Ampere+) miss the fp32 tolerance

    profile = builder.create_optimization_profile()
    for name, (mn, opt, mx) in shapes.items():
        profile.set_shape(name, mn, opt, mx)
    config.add_optimization_profile(profile)

    cache = config.create_timing_cache(timing_cache)
    config.set_timing_cache(cache, ignore_mismatch=False)

    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"{onnx_path}: TensorRT failed to build an engine (see the TensorRT log above)")
    seconds = time.perf_counter() - started
    updated = bytes(config.get_timing_cache().serialize())
    info = {"build_seconds": round(seconds, 1), "layers": network.num_layers, "strongly_typed": settings.strongly_typed}
    _log.info("built engine from %s in %.1f s", onnx_path.name, seconds)
    return bytes(serialized), updated, info
