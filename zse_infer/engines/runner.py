"""Running a serialized TensorRT engine once on numpy inputs (for parity reports). Needs TensorRT and a GPU.

Device buffers are torch CUDA tensors: the export side already depends on
torch, and this avoids a dependency on cuda-python or pycuda. TensorRT 10's
name-based I/O API (``set_input_shape`` / ``set_tensor_address`` /
``execute_async_v3``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import ExportError
from .environment import require_tensorrt


class EngineRunner:
    """Deserialise an engine once; call with numpy feeds (any batch inside its profile) -> float32 outputs."""

    def __init__(self, engine_path: "str | Path"):
        trt, _ = require_tensorrt()  # never deserialise without a GPU: it crashes the process
        import torch

        self._torch = torch
        self._dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
                        trt.DataType.INT32: torch.int32, trt.DataType.INT64: torch.int64, trt.DataType.BOOL: torch.bool}
        self.path = Path(engine_path)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ExportError(f"{self.path}: TensorRT could not deserialise the engine (built for another version/GPU?)")
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        missing = sorted(set(self.inputs) - set(feeds))
        if missing:
            raise ExportError(f"{self.path}: inputs {missing} not provided (received {sorted(feeds)})")
        buffers = {}
        for name in self.inputs:
            dtype = self._dtypes[self.engine.get_tensor_dtype(name)]
            tensor = torch.from_numpy(np.ascontiguousarray(feeds[name])).to("cuda", dtype)
            self.context.set_input_shape(name, tuple(tensor.shape))
            buffers[name] = tensor
        for name in self.names:
            if name not in buffers:
                shape = tuple(self.context.get_tensor_shape(name))
                buffers[name] = torch.empty(shape, dtype=self._dtypes[self.engine.get_tensor_dtype(name)], device="cuda")
        for name, tensor in buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        stream = torch.cuda.Stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise ExportError(f"{self.path}: TensorRT execution failed")
        stream.synchronize()
        return {n: buffers[n].float().cpu().numpy() for n in self.names if n not in self.inputs}
