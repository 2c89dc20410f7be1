"""TensorRT backend: runs a serialized engine built by ``zse-export build``.

Thin by design. Device buffers are allocated once for the profile's maximum
batch and reused, so a call costs one upload per input and one download per
output. ``tensorrt`` is imported only when this backend is created, and an
engine is only deserialized when a GPU is present (deserializing without one
crashed the process when tried).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ...errors import BackendError, require
from ...manifest import GraphSpec
from . import cuda
from .base import Runner

_log = logging.getLogger(__name__)


class TrtRunner(Runner):
    backend = "tensorrt"

    def __init__(self, graph: GraphSpec, engine_path: str | os.PathLike, max_batch: int | None = None):
        super().__init__(graph, max_batch)
        trt = require("tensorrt", "gpu", "The TensorRT backend")
        if cuda.gpu_count() == 0:
            raise BackendError("the TensorRT backend needs an NVIDIA GPU; none is visible (CUDA device count is 0)")
        path = Path(engine_path)
        if not path.is_file():
            raise BackendError(f"{path}: TensorRT engine not found; build it with: zse-export build <export dir>")
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise BackendError(
                f"{path}: TensorRT could not deserialize the engine (built with another TensorRT version or GPU?); "
                "rebuild it with: zse-export build <export dir>"
            )
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self._names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._inputs = [n for n in self._names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in self._names if n not in self._inputs]
        expected = sorted(t.name for t in graph.inputs)
        if sorted(self._inputs) != expected:
            raise BackendError(f"{path}: engine inputs {sorted(self._inputs)} do not match the manifest's {expected}")
        # The profile bounds the batch: never hand the engine more rows than it was built for.
        profile_max = min(int(self.engine.get_tensor_profile_shape(n, 0)[2][0]) for n in self._inputs)
        self.max_batch = min(self.max_batch, profile_max)
        self._dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in self._names}
        self._buffers: dict[str, cuda.DeviceBuffer] = {}
        specs = {t.name: t for t in (*graph.inputs, *graph.outputs)}
        for name in self._names:
            row_shape = [d for d in specs[name].shape[1:]] if name in specs else list(self.engine.get_tensor_shape(name))[1:]
            nbytes = self.max_batch * int(np.prod(row_shape, dtype=np.int64)) * self._dtypes[name].itemsize
            self._buffers[name] = cuda.DeviceBuffer(max(nbytes, 1))
            self.context.set_tensor_address(name, int(self._buffers[name].ptr))
        _log.info("graph %s runs on TensorRT %s (engine %s, max batch %d)", graph.id, trt.__version__, path.name, self.max_batch)

    @property
    def device(self) -> str:
        return "cuda:0 (TensorRT)"

    def _run_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name in self._inputs:
            host = np.ascontiguousarray(inputs[name], dtype=self._dtypes[name])
            self.context.set_input_shape(name, host.shape)
            self._buffers[name].upload(host, self.stream)
        if not self.context.execute_async_v3(self.stream.handle):
            raise BackendError(f"graph {self.graph.id}: TensorRT execution failed")
        outputs = {}
        for name in self._outputs:
            host = np.empty(tuple(self.context.get_tensor_shape(name)), dtype=self._dtypes[name])
            self._buffers[name].download(host, self.stream)
            outputs[name] = host
        self.stream.synchronize()
        return {name: value.astype(np.float32, copy=False) for name, value in outputs.items()}

    def close(self) -> None:
        for buffer in self._buffers.values():
            buffer.close()
        self._buffers = {}
        self.stream.close()
        self.context = None
        self.engine = None
