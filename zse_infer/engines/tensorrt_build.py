"""Building one TensorRT engine from one ONNX graph (TensorRT 10.x; needs a GPU): strongly typed networks (fp16
engines from the fp16 graphs with their fp32 islands), TF32 off unless the recipe asks (docs/gpus.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
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
    tf32: bool = False

    @classmethod
    def from_recipe(cls, precision: str, recipe_trt: Mapping[str, Any]) -> BuildSettings:
        get = recipe_trt.get
        workspace_mib, level = int(get("workspace_mib", 4096)), int(get("builder_optimization_level", 3))
        return cls(precision, workspace_mib, level, bool(get("strongly_typed", True)), bool(get("tf32", False)))

    def key_fields(self) -> dict[str, Any]:
        """Every setting that changes the plan: part of the engine cache key (precision has its own field)."""
        return {k: v for k, v in asdict(self).items() if k != "precision"}


def build_serialized_engine(
    trt: ModuleType, onnx_path: Path, shapes: Shapes, settings: BuildSettings, timing_cache: bytes = b""
) -> tuple[bytes, bytes, dict[str, Any]]:
    """(serialized engine, updated timing cache, build info). Call only after ``require_tensorrt()``.
    ``timing_cache`` (serialized, possibly empty) seeds the builder; the returned one adds this build's entries."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if settings.strongly_typed else 0
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
    if hasattr(trt.BuilderFlag, "TF32"):
        (config.set_flag if settings.tf32 else config.clear_flag)(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for name, (mn, opt, mx) in shapes.items():
        profile.set_shape(name, mn, opt, mx)
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(bytes(timing_cache))
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        # A cache from another TensorRT or GPU: build without it rather than fail (ours are per version and GPU).
        _log.warning("%s: TensorRT refused the stored timing cache; building with an empty one", onnx_path.name)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"{onnx_path}: TensorRT failed to build an engine (see the TensorRT log above)")
    seconds = time.perf_counter() - started
    info = {"build_seconds": round(seconds, 1), "layers": network.num_layers, "strongly_typed": settings.strongly_typed}
    _log.info("built engine from %s in %.1f s", onnx_path.name, seconds)
    return bytes(serialized), bytes(config.get_timing_cache().serialize()), info


def combine_timing_caches(trt: ModuleType, stored: bytes, ours: bytes) -> bytes:
    """``stored`` (on disk now, maybe written by another builder meanwhile) with ``ours`` merged in; ours replaces
    it where ``ITimingCache.combine`` refuses (a cache of another TensorRT version)."""
    if not stored:
        return ours
    config = trt.Builder(trt.Logger(trt.Logger.WARNING)).create_builder_config()
    merged = config.create_timing_cache(bytes(stored))
    if not merged.combine(config.create_timing_cache(bytes(ours)), False):
        _log.warning(
            "the stored timing cache could not be combined with this build's (another TensorRT?); replacing it"
        )
        return ours
    return bytes(merged.serialize())
