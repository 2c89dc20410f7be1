"""ONNX Runtime backend: CPU, and the CUDA / TensorRT execution providers where they really run.

``onnxruntime-gpu`` lists the CUDA and TensorRT providers even on a machine
without a GPU, and a session asked for them then runs on the CPU without a
word. So the provider actually in use is read back from
``session.get_providers()`` after the session exists, logged, and reported by
:attr:`OrtRunner.device`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import BackendError, require
from ...manifest import GraphSpec
from .base import Runner

_log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU = "CPUExecutionProvider"


def available_providers() -> list[str]:
    ort = require("onnxruntime", "runtime", "The ONNX Runtime backend")
    return list(ort.get_available_providers())


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
        ort = require("onnxruntime", "runtime", "The ONNX Runtime backend")
        path = Path(folder) / graph.file
        wanted = list(providers or [CPU])
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # warnings from provider fallbacks are reported by us, once
        provider_args = [(p, self._provider_options(p, graph, cache_dir)) for p in wanted]
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=provider_args)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types, all RuntimeError-like
            raise BackendError(f"{path}: ONNX Runtime cannot load graph {graph.id} ({exc})") from exc
        self.providers = list(self.session.get_providers())
        self._on_gpu = any(p in GPU_PROVIDERS for p in self.providers)
        missing = [p for p in wanted if p not in self.providers]
        if missing:
            _log.warning("graph %s: requested %s but ONNX Runtime runs it on %s", graph.id, missing, self.providers[0])
        _log.info("graph %s (%s) runs on ONNX Runtime %s", graph.id, graph.file, self.providers[0])
        self._output_names = [t.name for t in graph.outputs]
        session_inputs = sorted(i.name for i in self.session.get_inputs())
        if session_inputs != sorted(t.name for t in graph.inputs):
            raise BackendError(
                f"{path}: graph inputs {session_inputs} do not match the manifest's {[t.name for t in graph.inputs]}"
            )

    @staticmethod
    def _provider_options(provider: str, graph: GraphSpec, cache_dir) -> dict:
        if provider == "TensorrtExecutionProvider":
            opts = {"trt_fp16_enable": graph.precision == "fp16", "trt_max_workspace_size": str(2 << 30)}
            if cache_dir:
                opts.update(
                    trt_engine_cache_enable=True,
                    trt_engine_cache_path=str(cache_dir),
                    trt_timing_cache_enable=True,
                    trt_timing_cache_path=str(cache_dir),
                )
            return opts
        return {}

    @property
    def device(self) -> str:
        return self.providers[0]

    def _run_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._on_gpu:
            values = self.session.run(self._output_names, inputs)
            return dict(zip(self._output_names, values))
        # On a GPU: bind inputs once and let ORT place outputs on the device, so
        # the only host copies are the unavoidable upload and final download.
        binding = self.session.io_binding()
        for name, value in inputs.items():
            binding.bind_cpu_input(name, value)
        for name in self._output_names:
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        return dict(zip(self._output_names, binding.copy_outputs_to_cpu()))

    def close(self) -> None:
        self.session = None
