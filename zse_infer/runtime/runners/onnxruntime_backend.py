"""ONNX Runtime backend: CPU, and the CUDA / TensorRT execution providers where the session confirms they run
(``onnxruntime-gpu`` lists GPU providers without a GPU; the two distributions' one import: docs/install.md)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

from ...errors import BackendError, require
from ...manifest import GraphSpec
from .base import Runner, check_input_names
from .engine_cache import user_cache_dir

_log = logging.getLogger(__name__)

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
GPU_PROVIDERS = (TRT_EP, CUDA_EP)
CPU = "CPUExecutionProvider"


def onnxruntime_install() -> dict[str, object]:
    """Which ONNX Runtime distributions are installed (``{"distributions": {name: version}, "conflict": bool}``)."""
    found = {}
    for name in ("onnxruntime", "onnxruntime-gpu"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return {"distributions": found, "conflict": len(found) > 1}


def _ort():
    ort = require("onnxruntime", "runtime", "The ONNX Runtime backend")
    _check_install(ort)
    return ort


@functools.cache  # once per process: the installed distributions do not change while it runs
def _check_install(ort) -> None:
    install = onnxruntime_install()
    if install["conflict"]:
        message = (
            "both onnxruntime and onnxruntime-gpu are installed (%s); they share one import and the one pip wrote "
            "last wins (providers %s). Keep one: pip uninstall -y onnxruntime onnxruntime-gpu && "
            "pip install onnxruntime-gpu  (or onnxruntime for CPU only)"
        )
        _log.warning(message, install["distributions"], ort.get_available_providers())
    else:
        _log.info("ONNX Runtime from %s", install["distributions"])


def available_providers() -> list[str]:
    return list(_ort().get_available_providers())


def trt_profile_options(graph: GraphSpec, max_batch: int) -> dict[str, str]:
    """``trt_profile_{min,opt,max}_shapes`` for the provider: "name:1x3x224x224,..." over the dynamic inputs."""

    def dims(spec, rows: int) -> str:
        return "x".join(str(rows if isinstance(d, str) else d) for d in spec.shape)

    dynamic = [t for t in graph.inputs if any(isinstance(d, str) for d in t.shape)]
    b, top = graph.batch, max(1, min(max_batch, graph.batch.max))
    rows = {"min": min(b.min, top), "opt": min(b.opt, top), "max": top}
    return {f"trt_profile_{k}_shapes": ",".join(f"{t.name}:{dims(t, n)}" for t in dynamic) for k, n in rows.items()}


class OrtRunner(Runner):
    backend = "onnxruntime"

    def __init__(
        self,
        graph: GraphSpec,
        folder: str | os.PathLike,
        providers: Sequence[str] | None = None,
        max_batch: int | None = None,
        threads: int | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        super().__init__(graph, max_batch)
        ort = _ort()
        path = Path(folder) / graph.file
        wanted = list(providers or [CPU])
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # warnings from provider fallbacks are reported by us, once
        provider_args = [(p, self._provider_options(p, graph, self.max_batch, cache_dir)) for p in wanted]
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=provider_args)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types, all RuntimeError-like
            raise BackendError(f"{path}: ONNX Runtime cannot load graph {graph.id} ({exc})") from exc
        self.providers = list(self.session.get_providers())
        self._on_gpu = any(p in GPU_PROVIDERS for p in self.providers)
        if missing := [p for p in wanted if p not in self.providers]:
            _log.warning("graph %s: requested %s but ONNX Runtime runs it on %s", graph.id, missing, self.providers[0])
        _log.info("graph %s (%s) runs on ONNX Runtime %s", graph.id, graph.file, self.providers[0])
        self._output_names = [t.name for t in graph.outputs]
        check_input_names(graph, (i.name for i in self.session.get_inputs()), f"{path}: graph")

    @staticmethod
    def _provider_options(provider: str, graph: GraphSpec, max_batch: int, cache_dir) -> dict:
        if provider != TRT_EP:
            return {}
        if graph.variant == "ort_fused":
            why = "cannot take its com.microsoft attention; use the *_trt or plain graph"
            raise BackendError(f"graph {graph.id}: the TensorRT execution provider {why}")
        # engines and timing caches: ``$ZSE_ORT_TRT_CACHE``, else the user cache folder
        cache = Path(cache_dir or os.environ.get("ZSE_ORT_TRT_CACHE") or user_cache_dir("ort-trt"))
        cache.mkdir(parents=True, exist_ok=True)
        options = {"trt_fp16_enable": graph.precision == "fp16", "trt_max_workspace_size": str(2 << 30)}
        for kind in ("engine", "timing"):
            options.update({f"trt_{kind}_cache_enable": True, f"trt_{kind}_cache_path": str(cache)})
        return {**options, **trt_profile_options(graph, max_batch)}

    @property
    def device(self) -> str:
        return self.providers[0]

    def _run_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._on_gpu:
            values = self.session.run(self._output_names, inputs)
            return dict(zip(self._output_names, values, strict=True))
        # On a GPU: ORT places outputs on the device, so the only host copies are the upload and final download.
        binding = self.session.io_binding()
        for name, value in inputs.items():
            binding.bind_cpu_input(name, value)
        for name in self._output_names:
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        return dict(zip(self._output_names, binding.copy_outputs_to_cpu(), strict=True))

    def close(self) -> None:
        self.session = None
