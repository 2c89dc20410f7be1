"""What the TensorRT backend needs of the CUDA runtime, over ``cuda-python`` (the ``gpu`` extra): pinned host memory
as in NVIDIA's samples (only copies from it are truly asynchronous). Without cuda-python or a GPU, gpu_count() is 0."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ...errors import BackendError, DependencyError


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise DependencyError("CUDA access needs the 'cuda-python' package: pip install 'zse-infer[gpu]'") from exc
    return cudart


def _check(result: tuple, what: str):
    err, *rest = result
    if err != _cudart().cudaError_t.cudaSuccess:
        raise BackendError(f"CUDA {what} failed: {err}")
    return rest[0] if len(rest) == 1 else rest


def available() -> bool:
    """Whether cuda-python is installed (not whether a GPU is present)."""
    try:
        _cudart()
    except DependencyError:
        return False
    return True


def device_name(device: int = 0) -> str:
    name = _check(_cudart().cudaGetDeviceProperties(device), "cudaGetDeviceProperties").name
    return name.decode(errors="replace").rstrip("\x00") if isinstance(name, bytes) else str(name)


def gpu_count() -> int:
    """Number of usable CUDA devices; 0 when cuda-python, a driver or a GPU is missing."""
    try:
        cudart = _cudart()
        err, count = cudart.cudaGetDeviceCount()
    except (DependencyError, RuntimeError, OSError):
        return 0
    return int(count) if err == cudart.cudaError_t.cudaSuccess else 0


def compute_capability(device: int = 0) -> str:
    """e.g. "8.6"; part of every TensorRT engine cache key."""
    props = _check(_cudart().cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    return f"{props.major}.{props.minor}"


class Stream:
    def __init__(self):
        self.handle = _check(_cudart().cudaStreamCreate(), "cudaStreamCreate")

    def synchronize(self) -> None:
        _check(_cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            _cudart().cudaStreamDestroy(self.handle)
            self.handle = None


class PinnedBuffer:
    """Page-locked host memory of fixed capacity (``cudaMallocHost``), viewed as a flat numpy array of ``dtype``."""

    def __init__(self, nbytes: int, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.nbytes = max(int(nbytes), self.dtype.itemsize)
        self.ptr = _check(_cudart().cudaMallocHost(self.nbytes), "cudaMallocHost")
        pointer = ctypes.cast(int(self.ptr), ctypes.POINTER(np.ctypeslib.as_ctypes_type(self.dtype)))
        self.array: np.ndarray | None = np.ctypeslib.as_array(pointer, (self.nbytes // self.dtype.itemsize,))

    def view(self, shape) -> np.ndarray:
        """The first ``prod(shape)`` elements as an array of ``shape`` (no copy)."""
        count = int(np.prod(shape, dtype=np.int64))
        if count * self.dtype.itemsize > self.nbytes:
            raise BackendError(f"{count} elements exceed the {self.nbytes}-byte pinned buffer")
        if self.array is None:
            raise BackendError("the pinned buffer is closed: its runner was closed, make a new one")
        return self.array[:count].reshape(shape)

    def close(self) -> None:
        if self.ptr is not None:
            _cudart().cudaFreeHost(self.ptr)
            self.ptr = None
            self.array = None


class DeviceBuffer:
    """A device allocation of fixed capacity, reused across calls (no per-call cudaMalloc)."""

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        self.ptr = _check(_cudart().cudaMalloc(self.nbytes), "cudaMalloc")

    def upload(self, host: np.ndarray, stream: Stream) -> None:
        """Queue a host-to-device copy on ``stream`` (asynchronous when ``host`` is pinned memory)."""
        cudart = _cudart()
        if host.nbytes > self.nbytes:
            raise BackendError(f"upload of {host.nbytes} bytes exceeds the {self.nbytes}-byte device buffer")
        kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(cudart.cudaMemcpyAsync(self.ptr, host.ctypes.data, host.nbytes, kind, stream.handle), "H2D copy")

    def download(self, host: np.ndarray, stream: Stream) -> None:
        """Queue a device-to-host copy on ``stream``; ``host`` is valid after ``stream.synchronize()``."""
        cudart = _cudart()
        if host.nbytes > self.nbytes:
            raise BackendError(f"download of {host.nbytes} bytes exceeds the {self.nbytes}-byte device buffer")
        kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(host.ctypes.data, self.ptr, host.nbytes, kind, stream.handle), "D2H copy")

    def close(self) -> None:
        if self.ptr is not None:
            _cudart().cudaFree(self.ptr)
            self.ptr = None
