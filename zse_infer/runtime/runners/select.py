"""Choosing a backend and the graphs it runs, from the manifest and what is installed.

``backend="auto"`` tries, in order: TensorRT engines (tensorrt + a GPU + an
engine built for this GPU and TensorRT version), ONNX Runtime on a GPU
provider (only counted when ``session.get_providers()`` confirms it), ONNX
Runtime on the CPU, and finally the PyTorch modules. The choice is logged.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Callable

from ...errors import BackendError, DependencyError, InputError, ManifestError, require
from ...manifest import Manifest
from .base import ModelRunners, Runner

_log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cpu", "torch")
ROLES = ("encoder", "relation_head")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _precisions(requested: str | None, on_gpu: bool) -> tuple[str, ...]:
    if requested:
        return (requested,)
    # fp16 pays on GPUs; on CPUs ONNX Runtime emulates much of fp16 and is slower.
    return ("fp16", "fp32") if on_gpu else ("fp32",)


def _ort_plan(gpu: bool) -> tuple[list[str], tuple[str, ...]]:
    """(providers, graph variants) for ONNX Runtime.

    The TensorRT execution provider cannot take the ``com.microsoft`` attention
    of the ``*_fused`` graphs, so with it the ``*_trt`` (or plain) graphs run;
    the CUDA provider runs the fused graphs. CPU is always last, as fallback.
    """
    from .onnxruntime_backend import CPU, CUDA_EP, TRT_EP, available_providers

    if not gpu:
        return [CPU], ("ort_fused", "plain")
    available = available_providers()
    if TRT_EP in available:
        return [TRT_EP, *([CUDA_EP] if CUDA_EP in available else []), CPU], ("trt", "plain")
    if CUDA_EP in available:
        return [CUDA_EP, CPU], ("ort_fused", "plain")
    return [CPU], ("ort_fused", "plain")


def _open_onnxruntime(folder: Path, manifest: Manifest, precision: str | None, gpu: bool, max_batch, threads) -> ModelRunners:
    from .onnxruntime_backend import CPU, OrtRunner

    providers, variants = _ort_plan(gpu)
    on_gpu = providers[0] != CPU
    precisions = _precisions(precision, on_gpu)
    runners = {}
    for role in ROLES:
        graph = manifest.select_graph(role, precisions, variants)
        runners[role] = OrtRunner(graph, folder, providers, max_batch=max_batch, threads=threads)
    actual_gpu = runners["encoder"].device != CPU
    if on_gpu and not actual_gpu and precision is None and runners["encoder"].graph.precision == "fp16":
        # GPU providers were listed but the session fell back to the CPU: use the fp32 graphs there.
        _log.warning("ONNX Runtime GPU providers are installed but no GPU runs them; using fp32 graphs on the CPU")
        return _open_onnxruntime(folder, manifest, "fp32", False, max_batch, threads)
    name = "onnxruntime-gpu" if actual_gpu else "onnxruntime-cpu"
    opened = ModelRunners(runners["encoder"], runners["relation_head"], name, runners["encoder"].graph.precision)
    if opened.precision == "int8":  # never wrong tokens in silence: checked on this CPU, else fp32 (logged)
        from .int8_check import trusted_or_fp32

        return trusted_or_fp32(opened, folder, manifest, lambda: _open_onnxruntime(folder, manifest, "fp32", gpu, max_batch, threads))
    return opened


def _trt_runner(folder: Path, manifest: Manifest, graph, max_batch) -> Runner:
    """A TensorRT runner for ``graph``'s engine, limited by the batch range the engine was built for."""
    from .engine_locate import engine_batch, locate_engine_entry
    from .tensorrt_backend import TrtRunner

    path, entry = locate_engine_entry(folder, manifest, graph)
    return TrtRunner(graph, path, max_batch=max_batch, engine_batch=engine_batch(entry, graph))


def _open_tensorrt(folder: Path, manifest: Manifest, precision: str | None, max_batch) -> ModelRunners:
    require("tensorrt", "gpu", "The TensorRT backend")

    runners: dict[str, Runner] = {}
    errors = []
    for p in _precisions(precision, True):
        try:
            for role in ROLES:
                graph = manifest.select_graph(role, (p,), ("trt",))
                runners[role] = _trt_runner(folder, manifest, graph, max_batch)
            return ModelRunners(runners["encoder"], runners["relation_head"], "tensorrt", p)
        except (ManifestError, BackendError) as exc:
            errors.append(f"{p}: {exc}")
            for r in runners.values():
                r.close()
            runners = {}
    raise BackendError("TensorRT backend unavailable: " + "; ".join(errors))


RELATION_ROLES = ("relation_sketch", "relation_photo", "relation_pair")


def open_relation_runners(folder: str | os.PathLike, manifest: Manifest, runners: ModelRunners) -> dict[str, Runner] | None:
    """Runners for the restructured relation head (``relation_sketch/photo/pair``) on ``runners``' backend, or None.

    * TensorRT: the engines of the ``relation_*_trt`` graphs (``zse-export build``
      builds them), so a TensorRT deployment reranks with per-image work done once;
    * ONNX Runtime: the plain fp32 graphs on the same providers as the encoder
      (with the TensorRT provider: the ``*_trt`` graphs, given explicit profiles).

    None when the folder lacks these graphs (an older export) or their engines,
    or the backend is torch: the caller then scores pairs with ``relation_head``.
    """
    folder = Path(folder)
    if not all(manifest.find_graphs(r) for r in RELATION_ROLES):
        return None
    opened: dict[str, Runner] = {}
    try:
        if runners.backend == "tensorrt":
            for role in RELATION_ROLES:
                opened[role] = _trt_runner(folder, manifest, manifest.select_graph(role, ("fp32",), ("trt",)), None)
            return opened
        if runners.backend.startswith("onnxruntime") and runners.precision == "fp32":
            from .onnxruntime_backend import TRT_EP, OrtRunner

            providers = list(getattr(runners.encoder, "providers", []) or [])
            variants = ("trt", "plain") if providers and providers[0] == TRT_EP else ("plain",)
            for role in RELATION_ROLES:
                opened[role] = OrtRunner(manifest.select_graph(role, ("fp32",), variants), folder, providers or None)
            return opened
    except (ManifestError, BackendError) as exc:
        _log.info("restructured relation head unavailable on %s: %s", runners.backend, exc)
        for r in opened.values():
            r.close()
    return None


def _open_torch(manifest: Manifest, precision: str | None, checkpoint, max_batch) -> ModelRunners:
    from .torch_backend import TorchRunner, load_torch_model

    model = load_torch_model(manifest, checkpoint, precision or "fp32")
    runners = {role: TorchRunner(manifest.select_graph(role, ("fp32",), ("plain", "ort_fused")), model, max_batch) for role in ROLES}
    return ModelRunners(runners["encoder"], runners["relation_head"], "torch", precision or "fp32")


def open_runners(
    folder: str | os.PathLike,
    manifest: Manifest,
    backend: str = "auto",
    precision: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    max_batch: int | None = None,
    threads: int | None = None,
) -> ModelRunners:
    """Runners for both graphs on the requested backend (``"auto"``: the fastest available)."""
    folder = Path(folder)
    if backend not in BACKENDS:
        raise InputError(f"backend: received {backend!r}, expected one of {', '.join(BACKENDS)}")
    if precision is not None and precision not in ("fp32", "fp16", "int8"):
        raise InputError(f"precision: received {precision!r}, expected 'fp32', 'fp16' or 'int8'")
    attempts: list[tuple[str, Callable[[], ModelRunners]]] = []
    if backend in ("auto", "tensorrt"):
        attempts.append(("tensorrt", lambda: _open_tensorrt(folder, manifest, precision, max_batch)))
    if backend in ("auto", "onnxruntime"):
        attempts.append(("onnxruntime", lambda: _open_onnxruntime(folder, manifest, precision, True, max_batch, threads)))
    if backend == "onnxruntime-cpu":
        attempts.append(("onnxruntime-cpu", lambda: _open_onnxruntime(folder, manifest, precision, False, max_batch, threads)))
    if backend in ("auto", "torch"):
        attempts.append(("torch", lambda: _open_torch(manifest, precision, checkpoint, max_batch)))

    reasons = []
    for name, opener in attempts:
        if backend == "auto" and name == "tensorrt" and not _installed("tensorrt"):
            reasons.append("tensorrt: not installed")
            continue
        if backend == "auto" and name == "torch" and not _installed("torch"):
            reasons.append("torch: not installed")
            continue
        try:
            runners = opener()
        except (BackendError, DependencyError, ManifestError) as exc:
            if backend != "auto":
                raise
            reasons.append(f"{name}: {exc}")
            _log.debug("backend %s unavailable: %s", name, exc)
            continue
        _log.info("backend: %s", runners.describe())
        if reasons:
            _log.info("skipped faster backends: %s", "; ".join(reasons))
        return runners
    raise BackendError("no usable backend for this export folder: " + "; ".join(reasons))


def relation_scores(fast: dict[str, Runner], sketch_tokens, photo_tokens, photo_side=None, sketch_side=None):
    """Scores (B,) of one sketch's tokens (1, N, D) against B photos' tokens with the restructured head's runners.

    ``photo_side``: the photos' ``relation_photo`` outputs if already stored (e.g. with a gallery),
    else computed here; ``sketch_side`` likewise (a search computes it once per query, not per
    chunk). One implementation for every backend (what the searcher's stage 2 calls).
    """
    if sketch_side is None:
        sketch_side = fast["relation_sketch"].run({"sketch_tokens": sketch_tokens})
    if photo_side is None:
        photo_side = fast["relation_photo"].run({"photo_tokens": photo_tokens})
    inputs = {"sketch_tokens": sketch_tokens, **sketch_side, "photo_tokens": photo_tokens, **photo_side}
    return fast["relation_pair"].run(inputs)["score"]


def open_explain_runner(folder: str | os.PathLike, manifest: Manifest, runners: ModelRunners) -> Runner:
    """The explain graph's runner: on the PyTorch model when that backend runs, else ONNX Runtime.

    Explanations are occasional and their outputs are inspected on the host, so
    ONNX Runtime (GPU provider if present) serves every other backend.
    """
    graph = manifest.select_graph("explain", ("fp32",), ("plain",))
    if runners.backend == "torch":
        from .torch_backend import TorchRunner

        return TorchRunner(graph, runners.encoder.model)
    from .onnxruntime_backend import CPU, CUDA_EP, OrtRunner, available_providers

    providers = [p for p in (CUDA_EP,) if p in available_providers()] + [CPU]
    return OrtRunner(graph, folder, providers)
