"""TensorRT backend: runs an engine built by ``zse-export build`` (TensorRT 10.x; pinned buffers, async copies, one
lock per execution context: docs/gpus.md). Deserialized only when a GPU is present: without one that crashes."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from ...errors import BackendError, require
from ...manifest import BatchRange, GraphSpec
from . import cuda
from .base import Runner, check_input_names

_log = logging.getLogger(__name__)


def batch_limit(engine_profile_max: int, recorded: BatchRange | None, graph: GraphSpec) -> int:
    """The most rows one engine call takes: the smaller of the plan's profile max and the manifest's record."""
    recorded_max = recorded.max if recorded is not None else graph.batch.max
    return max(1, min(int(engine_profile_max), int(recorded_max)))


class TrtRunner(Runner):
    backend = "tensorrt"

    def __init__(
        self,
        graph: GraphSpec,
        engine_path: str | os.PathLike,
        max_batch: int | None = None,
        engine_batch: BatchRange | None = None,
    ):
        """``engine_batch``: the batch range the engine was built for (default: the graph's); it bounds the batches."""
        trt = require("tensorrt", "gpu", "The TensorRT backend")
        if cuda.gpu_count() == 0:
            raise BackendError("the TensorRT backend needs an NVIDIA GPU; none is visible (CUDA device count is 0)")
        path = Path(engine_path)
        if not path.is_file():
            raise BackendError(f"{path}: TensorRT engine not found; build it with: zse-export build <export dir>")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            why = "(built with another TensorRT version or GPU?); rebuild it with: zse-export build <export dir>"
            raise BackendError(f"{path}: TensorRT could not deserialize the engine {why}")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if n not in self._inputs]
        check_input_names(graph, self._inputs, f"{path}: engine")
        specs = {t.name: t for t in (*graph.inputs, *graph.outputs)}
        dynamic = [n for n in self._inputs if isinstance(specs[n].shape[0], str)]
        # Static inputs (relation_pair's one-query side) have no profile entry; the dynamic ones bound the batch.
        profile_max = min((int(self.engine.get_tensor_profile_shape(n, 0)[2][0]) for n in dynamic), default=1)
        super().__init__(graph, max_batch, limit=batch_limit(profile_max, engine_batch, graph))
        self.context = self.engine.create_execution_context()
        self.stream = cuda.Stream()
        self._lock = threading.Lock()
        self._dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self._device: dict[str, cuda.DeviceBuffer] = {}
        self._host: dict[str, cuda.PinnedBuffer] = {}
        for name in names:
            spec_shape = specs[name].shape if name in specs else tuple(self.engine.get_tensor_shape(name))
            rows = self.max_batch if isinstance(spec_shape[0], str) or name not in specs else int(spec_shape[0])
            row_shape = [int(d) for d in spec_shape[1:]]
            nbytes = max(rows * int(np.prod(row_shape, dtype=np.int64)) * self._dtypes[name].itemsize, 1)
            self._device[name] = cuda.DeviceBuffer(nbytes)
            self._host[name] = cuda.PinnedBuffer(nbytes, self._dtypes[name])
            if not self.context.set_tensor_address(name, int(self._device[name].ptr)):
                raise BackendError(f"graph {graph.id}: TensorRT refused the device address of tensor {name!r}")
        message = "graph %s runs on TensorRT %s (engine %s, max batch %d)"
        _log.info(message, graph.id, trt.__version__, path.name, self.max_batch)

    @property
    def device(self) -> str:
        return "cuda:0 (TensorRT)"

    def _run_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:  # one context, stream and buffer set: one batch at a time (see the module docstring)
            for name in self._inputs:
                value = inputs[name]
                staged = self._host[name].view(value.shape)
                np.copyto(staged, value, casting="same_kind")  # float32 -> the engine's dtype where it differs
                if not self.context.set_input_shape(name, tuple(value.shape)):
                    where = f"graph {self.graph.id}: TensorRT rejected input shape {tuple(value.shape)} for {name!r}"
                    raise BackendError(f"{where} (outside the engine's profile; max batch {self.max_batch})")
                self._device[name].upload(staged, self.stream)
            if not self.context.execute_async_v3(self.stream.handle):
                raise BackendError(f"graph {self.graph.id}: TensorRT execution failed")
            staged_out = {}
            for name in self._outputs:
                staged_out[name] = self._host[name].view(tuple(self.context.get_tensor_shape(name)))
                self._device[name].download(staged_out[name], self.stream)
            self.stream.synchronize()  # the only host wait of the call
            # Copy out of the pinned buffers: they are reused by the next call.
            return {name: np.array(value, dtype=np.float32, copy=True) for name, value in staged_out.items()}

    def close(self) -> None:
        buffers: list[cuda.DeviceBuffer | cuda.PinnedBuffer] = [*self._device.values(), *self._host.values()]
        for buffer in buffers:
            buffer.close()
        self._device, self._host = {}, {}
        self.stream.close()
        self.context = None
        self.engine = None
