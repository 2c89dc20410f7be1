"""Choosing a backend and the graphs it runs, from the manifest and what is installed: ``backend="auto"`` tries
them in the order docs/cpu.md gives and logs its choice; OpenVINO bf16 (``auto`` where :func:`prefer_openvino` says
so, or ``backend="openvino"``) is kept only if its self-check passes, else f32."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ...errors import BackendError, DependencyError, InputError, ManifestError, require
from ...manifest import Manifest
from . import onnxruntime_backend as ortb
from .base import ModelRunners, Runner
from .cpu_features import bf16_unit, cpu_features, describe
from .engine_locate import engine_batch, locate_engine_entry
from .int8_check import trusted_or_fp32
from .openvino_backend import OpenVinoRunner
from .precision_check import check_precision
from .tensorrt_backend import TrtRunner
from .torch_backend import TorchRunner, load_torch_model

_log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "onnxruntime-cpu", "openvino", "torch")
#: precisions a caller may ask for: graph precisions, plus bf16 (OpenVINO computing fp32 graphs in bfloat16)
REQUESTABLE_PRECISIONS = ("fp32", "fp16", "int8", "bf16")
ROLES = ("encoder", "relation_head")
RELATION_ROLES = ("relation_sketch", "relation_photo", "relation_pair")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _open_all(roles: tuple[str, ...], make: Callable[[str], Runner]) -> dict[str, Runner]:
    """``{role: make(role)}``; if one fails, those already opened are closed before the error propagates."""
    opened: dict[str, Runner] = {}
    try:
        for role in roles:
            opened[role] = make(role)
    except BaseException:
        for r in opened.values():
            r.close()
        raise
    return opened


def _precisions(requested: str | None, on_gpu: bool) -> tuple[str, ...]:
    if requested:
        return (requested,)
    # fp16 pays on GPUs; on CPUs ONNX Runtime emulates much of fp16 and is slower.
    return ("fp16", "fp32") if on_gpu else ("fp32",)


def _ort_plan(gpu: bool) -> tuple[list[str], tuple[str, ...]]:
    """(providers, graph variants) for ONNX Runtime: the TensorRT provider cannot take the ``*_fused`` graphs'
    ``com.microsoft`` attention, so with it the ``*_trt`` (or plain) graphs run. CPU is always last, as fallback."""
    available = ortb.available_providers() if gpu else []
    cuda = [ortb.CUDA_EP] if ortb.CUDA_EP in available else []
    if ortb.TRT_EP in available:
        return [ortb.TRT_EP, *cuda, ortb.CPU], ("trt", "plain")
    return [*cuda, ortb.CPU], ("ort_fused", "plain")


def _open_onnxruntime(
    folder: Path, manifest: Manifest, precision: str | None, gpu: bool, max_batch, threads
) -> ModelRunners:
    providers, variants = _ort_plan(gpu)
    on_gpu = providers[0] != ortb.CPU
    select = partial(manifest.select_graph, precisions=_precisions(precision, on_gpu), variants=variants)
    runners = _open_all(ROLES, lambda role: ortb.OrtRunner(select(role), folder, providers, max_batch, threads))
    actual_gpu = runners["encoder"].device != ortb.CPU
    if on_gpu and not actual_gpu and precision is None and runners["encoder"].graph.precision == "fp16":
        # GPU providers were listed but the session fell back to the CPU: use the fp32 graphs there.
        _log.warning("ONNX Runtime GPU providers are installed but no GPU runs them; using fp32 graphs on the CPU")
        return _open_onnxruntime(folder, manifest, "fp32", False, max_batch, threads)
    name = "onnxruntime-gpu" if actual_gpu else "onnxruntime-cpu"
    opened = ModelRunners(runners["encoder"], runners["relation_head"], name, runners["encoder"].graph.precision)
    if opened.precision == "int8":  # never wrong tokens in silence: checked on this CPU, else fp32 (logged)
        fp32 = partial(_open_onnxruntime, folder, manifest, "fp32", gpu, max_batch, threads)
        return trusted_or_fp32(opened, folder, manifest, fp32)
    return opened


def _trt_runner(folder: Path, manifest: Manifest, role: str, precision: str, max_batch: int | None) -> Runner:
    """A TensorRT runner for ``role``'s ``*_trt`` graph, limited by the batch range its engine was built for."""
    graph = manifest.select_graph(role, (precision,), ("trt",))
    path, entry = locate_engine_entry(folder, manifest, graph)
    return TrtRunner(graph, path, max_batch=max_batch, engine_batch=engine_batch(entry, graph))


def _open_tensorrt(folder: Path, manifest: Manifest, precision: str | None, max_batch) -> ModelRunners:
    require("tensorrt", "gpu", "The TensorRT backend")
    errors = []
    for p in _precisions(precision, True):
        try:
            runners = _open_all(ROLES, partial(_trt_runner, folder, manifest, precision=p, max_batch=max_batch))
            return ModelRunners(runners["encoder"], runners["relation_head"], "tensorrt", p)
        except (ManifestError, BackendError) as exc:
            errors.append(f"{p}: {exc}")
    raise BackendError("TensorRT backend unavailable: " + "; ".join(errors))


def prefer_openvino(features: dict | None = None) -> tuple[bool, str]:
    """(whether ``auto`` tries OpenVINO bf16 before ONNX Runtime here, why): where openvino is installed and the CPU
    computes bf16 natively (AMX ~4x ONNX Runtime fp32, AVX512-BF16 ~2x; on AVX2 alone no gain: docs/cpu.md)."""
    features = features or cpu_features()
    unit = bf16_unit(features)
    if unit is None:
        return False, f"no bf16 unit on {describe(features)}"
    if not _installed("openvino"):
        return False, f"openvino not installed (pip install 'zse-infer[cpu]' for bf16 on {unit})"
    return True, f"bf16 on {unit} ({describe(features)})"


def _openvino_precision(requested: str | None, unit: str | None) -> str:
    if requested not in (None, "bf16", "fp32"):
        expected = "expected 'bf16', 'fp32' or None (it compiles the fp32 graphs; int8/fp16 graphs run on onnxruntime)"
        raise InputError(f"precision: received {requested!r} for the OpenVINO backend, {expected}")
    if requested == "bf16" and unit is None:
        _log.warning("precision bf16 asked for, but this CPU has no bf16 unit (AMX or AVX512-BF16): OpenVINO runs f32")
        return "fp32"
    return requested or ("bf16" if unit else "fp32")


def _open_openvino(
    folder: Path, manifest: Manifest, precision: str | None, max_batch, threads, auto: bool
) -> ModelRunners:
    """Encoder and relation head on OpenVINO; bf16 is kept only if it passes its self-check."""
    require("openvino", "cpu", "The OpenVINO backend")
    features = cpu_features()
    chosen = _openvino_precision(precision, bf16_unit(features))
    runners = _open_all(ROLES, lambda role: _openvino_runner(folder, manifest, role, chosen, max_batch, threads))
    opened = ModelRunners(runners["encoder"], runners["relation_head"], "openvino", chosen)
    if chosen != "bf16":
        return opened
    check = check_precision(folder, manifest, "bf16", runners.values(), where=f"on {describe(features)}")
    if check.trusted:
        _log.info("OpenVINO bf16 in use: %s (%.0f ms)", check.reason, check.seconds * 1000)
        return opened
    opened.close()
    if auto:
        _log.warning("OpenVINO bf16 not trusted on this CPU, using ONNX Runtime fp32 instead: %s", check.reason)
        raise BackendError(f"bf16 not trusted: {check.reason}")
    _log.warning("OpenVINO bf16 not trusted on this CPU, using OpenVINO f32 instead: %s", check.reason)
    return _open_openvino(folder, manifest, "fp32", max_batch, threads, auto)


def _open_onnxruntime_gpu(folder: Path, manifest: Manifest, max_batch, threads) -> ModelRunners:
    """ONNX Runtime on a GPU provider only (auto, where OpenVINO is preferred over ONNX Runtime on the CPU)."""
    if not any(p in ortb.GPU_PROVIDERS for p in ortb.available_providers()):
        raise BackendError("onnxruntime has no GPU provider")
    opened = _open_onnxruntime(folder, manifest, None, True, max_batch, threads)
    if opened.backend != "onnxruntime-gpu":
        opened.close()
        raise BackendError("ONNX Runtime's GPU providers are installed but no GPU runs them")
    return opened


def open_relation_runners(
    folder: str | os.PathLike, manifest: Manifest, runners: ModelRunners
) -> dict[str, Runner] | None:
    """Runners for the restructured relation head (``relation_sketch/photo/pair``) on ``runners``' backend, or None
    (without these graphs or engines, or on torch: the caller then scores pairs with ``relation_head``)."""
    folder = Path(folder)
    if not all(manifest.find_graphs(r) for r in RELATION_ROLES):
        return None
    try:
        if runners.backend == "tensorrt":
            return _open_all(RELATION_ROLES, partial(_trt_runner, folder, manifest, precision="fp32", max_batch=None))
        if runners.backend.startswith("onnxruntime") and runners.precision == "fp32":
            providers = list(getattr(runners.encoder, "providers", []) or [])
            variants = ("trt", "plain") if providers and providers[0] == ortb.TRT_EP else ("plain",)
            select = partial(manifest.select_graph, precisions=("fp32",), variants=variants)
            return _open_all(RELATION_ROLES, lambda role: ortb.OrtRunner(select(role), folder, providers or None))
        if runners.backend == "openvino":
            return _openvino_relation(folder, manifest, runners.encoder, runners.precision)
    except (ManifestError, BackendError) as exc:
        _log.info("restructured relation head unavailable on %s: %s", runners.backend, exc)
    return None


def _openvino_runner(
    folder: Path, manifest: Manifest, role: str, precision: str, max_batch, threads, cache_dir=None
) -> Runner:
    """The OpenVINO runner of ``role``'s plain fp32 graph at ``precision``."""
    graph = manifest.select_graph(role, ("fp32",), ("plain",))
    sha256 = manifest.files.get(graph.file)
    return OpenVinoRunner(graph, folder, precision, max_batch, threads, cache_dir, graph_sha256=sha256)


def _openvino_relation(folder: Path, manifest: Manifest, encoder, precision: str) -> dict[str, Runner]:
    opened = _open_all(
        RELATION_ROLES,
        lambda role: _openvino_runner(folder, manifest, role, precision, None, encoder.threads, encoder.cache_dir),
    )
    if precision == "bf16":
        check = check_precision(folder, manifest, "bf16", (), fast=opened)
        if not check.trusted:
            _log.warning("restructured relation graphs in bf16 not trusted, running them in f32: %s", check.reason)
            for r in opened.values():
                r.close()
            return _openvino_relation(folder, manifest, encoder, "fp32")
    return opened


def _open_torch(manifest: Manifest, precision: str | None, checkpoint, max_batch) -> ModelRunners:
    model = load_torch_model(manifest, checkpoint, precision or "fp32")
    select = partial(manifest.select_graph, precisions=("fp32",), variants=("plain", "ort_fused"))
    encoder, relation_head = (TorchRunner(select(role), model, max_batch) for role in ROLES)
    return ModelRunners(encoder, relation_head, "torch", precision or "fp32")


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
    if precision is not None and precision not in REQUESTABLE_PRECISIONS:
        raise InputError(f"precision: received {precision!r}, expected one of {', '.join(REQUESTABLE_PRECISIONS)}")
    if precision == "bf16" and backend not in ("auto", "openvino"):
        raise InputError(f"precision 'bf16' runs on the OpenVINO backend, received backend {backend!r}")
    ort = partial(_open_onnxruntime, folder, manifest, precision, max_batch=max_batch, threads=threads)
    openvino = partial(_open_openvino, folder, manifest, precision, max_batch, threads)
    attempts: list[tuple[str, Callable[[], ModelRunners]]] = []
    if backend in ("auto", "tensorrt") and precision != "bf16":
        attempts.append(("tensorrt", lambda: _open_tensorrt(folder, manifest, precision, max_batch)))
    openvino_first, why = prefer_openvino() if backend == "auto" and precision in (None, "bf16") else (False, "")
    if openvino_first:
        _log.info("auto: OpenVINO before ONNX Runtime on the CPU (%s)", why)
        if precision is None:
            attempts.append(("onnxruntime-gpu", partial(_open_onnxruntime_gpu, folder, manifest, max_batch, threads)))
        attempts.append(("openvino", partial(openvino, auto=True)))
    if backend == "openvino" or (backend == "auto" and precision == "bf16" and not openvino_first):
        attempts.append(("openvino", partial(openvino, auto=False)))
    if backend in ("auto", "onnxruntime") and precision != "bf16":
        attempts.append(("onnxruntime", partial(ort, gpu=True)))
    if backend == "onnxruntime-cpu":
        attempts.append(("onnxruntime-cpu", partial(ort, gpu=False)))
    if backend in ("auto", "torch") and precision != "bf16":
        attempts.append(("torch", lambda: _open_torch(manifest, precision, checkpoint, max_batch)))
    reasons = []
    for name, opener in attempts:
        if backend == "auto" and name in ("tensorrt", "torch") and not _installed(name):
            reasons.append(f"{name}: not installed")
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
    """Scores (B,) of one sketch's tokens (1, N, D) against B photos' tokens with the restructured head's runners
    (every backend's search stage 2); ``photo_side`` / ``sketch_side``: those graphs' outputs if already computed."""
    if sketch_side is None:
        sketch_side = fast["relation_sketch"].run({"sketch_tokens": sketch_tokens})
    if photo_side is None:
        photo_side = fast["relation_photo"].run({"photo_tokens": photo_tokens})
    inputs = {"sketch_tokens": sketch_tokens, **sketch_side, "photo_tokens": photo_tokens, **photo_side}
    return fast["relation_pair"].run(inputs)["score"]


def open_explain_runner(folder: str | os.PathLike, manifest: Manifest, runners: ModelRunners) -> Runner:
    """The explain graph's runner: the PyTorch model's on the torch backend, else ONNX Runtime (CUDA if present)."""
    graph = manifest.select_graph("explain", ("fp32",), ("plain",))
    if runners.backend == "torch":
        encoder = runners.encoder
        if not isinstance(encoder, TorchRunner):  # backend "torch" makes TorchRunners only
            raise BackendError(f"the torch backend's encoder is a {type(encoder).__name__}, expected a TorchRunner")
        return TorchRunner(graph, encoder.model)
    providers = [p for p in (ortb.CUDA_EP,) if p in ortb.available_providers()] + [ortb.CPU]
    return ortb.OrtRunner(graph, folder, providers)
