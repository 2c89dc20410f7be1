"""``export_model``: checkpoint -> export folder: ONNX graphs, parity inputs, manifest, TensorRT engines if possible."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import onnx

from ..config import ModelConfig, get_config
from ..errors import ExportError
from ..manifest import GraphSpec, Manifest, sha256_file
from ..runtime.runners.precision_check import DEFAULT_TOLERANCES
from . import attention_fusion, extra_graphs, graph_checks, lower_precision, validation
from .folder import staged_folder, write_manifest
from .graph_modules import build_export_module
from .plan import GraphPlan, concrete_shape, io_specs, plan_graphs
from .recipes import Recipe, list_recipes, load_recipe
from .torch_to_onnx import TRACE_BATCH, export_graph, save_graph, strip_metadata

_log = logging.getLogger(__name__)

StepCallback = Callable[[str], None]
_VERSIONED = ("zse-infer", "torch", "onnx", "onnxscript", "onnxruntime", "timm", "numpy", "polygraphy")


@dataclass
class ExportOptions:
    fp16: bool = False
    max_batch: Mapping[str, int] = field(default_factory=dict)
    overwrite: bool = False
    engines: str = "auto"  # "auto": build if TensorRT and a GPU are present; "never"; "require"
    extra_graphs: bool = True  # the explain graph and the restructured relation head (relation_sketch/photo/pair)
    int8: bool = False  # int8 (dynamically quantised) encoder and relation head for ONNX Runtime on CPUs; opt-in
    lint: str = "auto"  # "auto": polygraphy lint if installed; "never"; "require"
    cache_dir: str | os.PathLike | None = None


DEFAULT_RECIPE = "zse_vit_b16"


def resolve_recipe(recipe: str | os.PathLike | Recipe | None, config: str | None) -> Recipe:
    """The recipe by name/path; without one, the recipe named like the config, else the default's settings."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe is None and config is not None and config not in list_recipes():
        _log.warning("no recipe named %r: using the %s recipe's settings for it", config, DEFAULT_RECIPE)
        return replace(load_recipe(DEFAULT_RECIPE), name=config, config=config)
    return load_recipe(recipe if recipe is not None else config or DEFAULT_RECIPE)


def export_steps(recipe: Recipe, precisions: tuple[str, ...]) -> list[str]:
    """Labels of the long steps, in order (for progress bars)."""
    ids = [g.id for g in plan_graphs(recipe, precisions)] + list(extra_graphs.EXTRA_ROLES)
    ids += [f"{role}_trt" for role in extra_graphs.RELATION_ROLES] if "trt" in recipe.variants else []
    graph_steps = [f"{verb} {gid}" for gid in ids for verb in ("write", "validate")]
    return ["load checkpoint", "PyTorch reference", *graph_steps, "int8", "engines", "manifest"]


def export_model(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    config: str | ModelConfig | None = None,
    recipe: str | os.PathLike | Recipe | None = None,
    options: ExportOptions | None = None,
    on_step: StepCallback | None = None,
) -> Manifest:
    """Export ``checkpoint`` into the folder ``out`` (complete or not at all) and return its manifest; what it writes
    and checks: docs/export.md. Beyond the recipe's tolerance: :class:`~zse_infer.errors.ExportError`."""
    from ..model import load_model
    from ..model.checkpoint import checkpoint_filter_fn, checkpoint_metadata, read_checkpoint

    options = options or ExportOptions()
    step = on_step or (lambda label: None)
    started = time.perf_counter()
    recipe = resolve_recipe(recipe, config if isinstance(config, str) or config is None else get_config(config).name)
    if options.max_batch:
        recipe = recipe.with_max_batch(options.max_batch)
    cfg = get_config(config if config is not None else recipe.config)
    precisions = ("fp32", "fp16") if options.fp16 else ("fp32",)
    if options.fp16 and "fp16" not in recipe.precisions:
        raise ExportError(f"--fp16: recipe {recipe.name} does not support fp16 (precisions {list(recipe.precisions)})")
    checkpoint = Path(checkpoint)
    if options.engines == "require":
        _require_engine_support()  # fail before minutes of exporting, not after

    with staged_folder(out, options.overwrite) as folder:
        step("load checkpoint")
        model = load_model(checkpoint, cfg)
        source = {"path": str(checkpoint), "sha256": sha256_file(checkpoint), "size_bytes": checkpoint.stat().st_size}
        source["layout"] = checkpoint_filter_fn(read_checkpoint(checkpoint)[0]).layout
        source["metadata"] = checkpoint_metadata(checkpoint)
        step("PyTorch reference")
        data = validation.reference_data(model, cfg, recipe.validation_batch_sizes, recipe.validation_seed)
        validation.save_reference(data, folder / validation.PARITY_FILE, recipe.validation_batch_sizes)

        graphs: dict[str, GraphSpec] = {}
        plain: dict[tuple[str, str], onnx.ModelProto] = {}
        for plan in plan_graphs(recipe, precisions):
            step(f"write {plan.id}")
            t0 = time.perf_counter()
            proto, fused_nodes, extra = _make_graph(plan, model, cfg, recipe, plain)
            path = folder / plan.file
            save_graph(strip_metadata(proto), path)
            extra.update(seconds=round(time.perf_counter() - t0, 1), size_bytes=path.stat().st_size)
            step(f"validate {plan.id}")
            run = validation.ort_cpu_runner(path)
            parity = validation.measure_parity(run, plan.role, data, recipe.validation_batch_sizes)
            validation.check_tolerance(f"{path.name} ({plan.precision})", parity, recipe.tolerances[plan.precision])
            inputs, outputs = io_specs(cfg, plan.role)
            if plan.variant == "trt":
                _lint(path, inputs, options, extra)
            graphs[plan.id] = plan.spec(inputs, outputs, recipe.batch[plan.role], parity, extra, fused_nodes)
            _log.info("%s: %.1f MB, parity %s, fused %s", plan.id, extra["size_bytes"] / 1e6, parity, fused_nodes)
        del plain
        if options.extra_graphs:
            plans = [GraphPlan(role, "fp32", "plain") for role in extra_graphs.EXTRA_ROLES]
            if "trt" in recipe.variants:  # the restructured relation head for TensorRT engines too
                plans += [GraphPlan(role, "fp32", "trt") for role in extra_graphs.RELATION_ROLES]
            for plan in plans:
                graphs[plan.id] = _extra_graph(plan, folder, model, cfg, recipe, data, step, options)
        step("int8")
        # Lower precisions judged by rankings on the bundled demo's unseen concepts (lower_precision.py).
        reference = lower_precision.Reference(folder, graphs, cfg, data)
        if options.int8:
            graphs.update(lower_precision.int8_graphs(graphs, folder, recipe, data, reference))
        agreement = {"bf16": lower_precision.bf16_agreement(folder, graphs, reference)}
        if options.int8:
            agreement["int8"] = graphs["encoder_int8"].extra["validated_on"]["agreement"]
        manifest = Manifest(
            model=cfg,
            graphs=graphs,
            files={},
            versions=package_versions(),
            source_checkpoint=source,
            opset=recipe.opset,
            extra={
                "recipe": recipe.to_dict(),
                "tolerances": {
                    **{p: dict(recipe.tolerances[p]) for p in precisions},
                    "bf16": dict(recipe.tolerances.get("bf16") or DEFAULT_TOLERANCES["bf16"]),
                    **({"int8": lower_precision.int8_tolerance(recipe)} if options.int8 else {}),
                },
                # What lower precisions do to rankings, measured at export (lower_precision.py).
                "agreement": agreement,
                "parity_inputs": validation.PARITY_FILE,
                "exporter": "torch.onnx.export(dynamo=True)",
                # Manifest.default_rerank reads this: the stage-2 depth search uses when the caller does not choose.
                **({"search": dict(recipe.search)} if recipe.search else {}),
            },
        )
        step("engines")
        _engines(folder, manifest, recipe, options)
        step("manifest")
        manifest.extra["export_seconds"] = round(time.perf_counter() - started, 1)
        write_manifest(folder, manifest)
    return manifest


def _make_graph(
    plan: GraphPlan, model: Any, cfg: ModelConfig, recipe: Recipe, plain: dict[tuple[str, str], onnx.ModelProto]
) -> tuple[onnx.ModelProto, dict[str, int], dict[str, Any]]:
    """(graph, fused node counts, extra manifest fields) of one planned graph."""
    heads = cfg.encoder.heads if plan.role == "encoder" else cfg.relation_head.heads
    if plan.variant == "ort_fused":
        proto, counts = attention_fusion.fuse_for_ort(plain[(plan.role, plan.precision)], heads, cfg.width, plan.role)
        proto.graph.name = plan.id
        fused_ops = [f"com.microsoft::{op}" for op in ("Attention", "MultiHeadAttention") if counts.get(op)]
        return proto, counts, {"attention": fused_ops}
    inputs, outputs = io_specs(cfg, plan.role)
    module = build_export_module(model, plan.role, plan.precision, plan.attention_style)
    names = [s.name for s in outputs]
    proto = export_graph(module, _example(inputs), names, recipe.opset, recipe.batch[plan.role].max, plan.id)
    extra: dict[str, Any] = {"attention_scale": plan.attention_style}
    if plan.variant == "plain":
        plain[(plan.role, plan.precision)] = proto
    else:
        graph_checks.require_standard_ops(proto, plan.id)
        # What TensorRT should fuse into its MHA kernels: one MatMul-Softmax-MatMul per attention.
        extra["attention_patterns"] = sum(1 for n in proto.graph.node if n.op_type == "Softmax")
    return proto, {}, extra


def _extra_graph(
    plan: GraphPlan, folder: Path, model, cfg: ModelConfig, recipe: Recipe, data, step, options: ExportOptions
) -> GraphSpec:
    """Export and validate one of :mod:`extra_graphs` (fp32, explicit attention); variant ``trt``: TensorRT-shaped."""
    gid, role, trt = plan.id, plan.role, plan.variant == "trt"
    step(f"write {gid}")
    t0 = time.perf_counter()
    inputs, outputs = extra_graphs.io_specs(cfg, role)
    module, static = extra_graphs.build_module(model, role, plan.attention_style), extra_graphs.static_inputs(cfg, role)
    names = [s.name for s in outputs]
    proto = export_graph(module, _example(inputs), names, recipe.opset, recipe.batch["relation_head"].max, gid, static)
    if trt:
        graph_checks.require_standard_ops(proto, gid)
    path = folder / plan.file
    save_graph(strip_metadata(proto), path)
    extra: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 1), "size_bytes": path.stat().st_size}
    step(f"validate {gid}")
    parity = extra_graphs.parity(validation.ort_cpu_runner(path), model, role, data, recipe.validation_batch_sizes)
    tolerance = extra_graphs.tolerances(cfg, role, recipe.tolerances["fp32"])
    validation.check_tolerance(f"{path.name} (fp32)", parity, tolerance)
    if trt:
        extra["attention_scale"] = plan.attention_style
        extra["attention_patterns"] = sum(1 for n in proto.graph.node if n.op_type == "Softmax")
        _lint(path, inputs, options, extra)
    _log.info("%s: %.1f MB, parity %s", gid, extra["size_bytes"] / 1e6, parity)
    return plan.spec(inputs, outputs, recipe.batch["relation_head"], parity, extra)


def _example(inputs) -> dict[str, Any]:
    """Seeded random tensors to trace with."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return {s.name: torch.randn(concrete_shape(s, TRACE_BATCH), generator=generator) for s in inputs}


def _lint(path: Path, inputs, options: ExportOptions, extra: dict[str, Any]) -> None:
    """``polygraphy check lint`` of a TensorRT-shaped graph (batch 1), recorded in the graph's manifest entry."""
    if options.lint == "never":
        return
    if graph_checks.polygraphy_available():
        shapes = {s.name: concrete_shape(s, 1) for s in inputs}
        extra["lint"] = {"tool": "polygraphy check lint", **graph_checks.lint(path, shapes)}
    elif options.lint == "require":
        raise ExportError("lint: polygraphy and onnx-graphsurgeon are not installed (pip install 'zse-infer[dev]')")
    else:
        extra["lint"] = {"tool": "polygraphy check lint", "skipped": "polygraphy/onnx-graphsurgeon not installed"}


def _require_engine_support():
    from ..runtime.runners.trt_environment import probe_tensorrt

    env = probe_tensorrt()
    if not env.ready:
        raise ExportError(f"TensorRT engines requested but cannot be built here: {env.reason}")
    return env


def _engines(folder: Path, manifest: Manifest, recipe: Recipe, options: ExportOptions) -> None:
    if options.engines == "never":
        manifest.extra["tensorrt"] = {"built": False, "reason": "engines not requested (--no-engines)"}
        return
    from ..engines.build import build_engines_for_manifest
    from ..runtime.runners.trt_environment import probe_tensorrt

    env = _require_engine_support() if options.engines == "require" else probe_tensorrt()
    if not env.ready:
        # Not a warning: exporting ONNX only is the normal case on CPU machines; the reason goes into
        # the manifest and the CLI prints it with the `zse-export build` command to run later.
        _log.info("writing ONNX only, no TensorRT engines: %s", env.reason)
        manifest.extra["tensorrt"] = {"built": False, "reason": env.reason}
        return
    build_engines_for_manifest(folder, manifest, recipe_trt=recipe.tensorrt, env=env, cache_dir=options.cache_dir)
    manifest.extra["tensorrt"] = {"built": True, "version": env.version}


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name.replace("-", "_")] = metadata.version(name)
    return versions
