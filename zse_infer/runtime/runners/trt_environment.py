"""Is TensorRT usable here? The one place that answers: TensorRT needs a GPU even to create a Builder, and
deserialising an engine without one crashes, so the GPU check asks the CUDA runtime (cuda-python, else torch)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ...errors import DependencyError, ExportError
from . import cuda

INSTALL_HINT = "pip install 'zse-infer[gpu]' (TensorRT's wheels come from NVIDIA's package index)"
#: TensorRT majors this is written against; 11 removed the weakly typed builder API, is untested here: refused.
SUPPORTED_MAJORS = (10,)
_NO_PROBE = "neither cuda-python nor torch is installed, so no GPU could be detected (pip install 'zse-infer[gpu]')"


@dataclass(frozen=True)
class TrtEnvironment:
    ready: bool
    reason: str = ""
    version: str | None = None
    compute_capability: str | None = None  # "8.6"
    device: str | None = None


def _import_tensorrt() -> tuple[ModuleType | None, str]:
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        return None, f"the 'tensorrt' package is not installed ({exc}); {INSTALL_HINT}"
    if not hasattr(trt, "Builder"):
        # PyPI's `tensorrt` stub installs a shell that only downloads the real wheels.
        return None, f"the installed 'tensorrt' package is NVIDIA's download stub, not TensorRT; {INSTALL_HINT}"
    return trt, ""


def probe_gpu() -> tuple[str | None, str | None, str]:
    """(compute capability "M.m", device name, reason when there is none), from cuda-python, else torch."""
    if cuda.available():
        if cuda.gpu_count() == 0:
            return None, None, "no CUDA GPU is visible (CUDA device count is 0)"
        return cuda.compute_capability(0), cuda.device_name(0), ""
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        return None, None, _NO_PROBE
    if not torch.cuda.is_available():
        return None, None, "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    major, minor = torch.cuda.get_device_capability(0)
    return f"{major}.{minor}", torch.cuda.get_device_name(0), ""


def probe_tensorrt() -> TrtEnvironment:
    trt, reason = _import_tensorrt()
    if trt is None:
        return TrtEnvironment(False, reason)
    version = str(trt.__version__)
    if int(version.split(".")[0]) not in SUPPORTED_MAJORS:
        reason = f"TensorRT {version} is installed, expected TensorRT 10.x (>=10.0,<11); {INSTALL_HINT}"
        return TrtEnvironment(False, reason, version)
    cc, device, reason = probe_gpu()
    if cc is None:
        return TrtEnvironment(False, f"TensorRT {version} is installed but {reason}", version)
    return TrtEnvironment(True, "", version, cc, device)


def require_tensorrt() -> tuple[ModuleType, TrtEnvironment]:
    """The ``tensorrt`` module and the environment, or a clear error naming what is missing."""
    env = probe_tensorrt()
    if not env.ready:
        if env.version is None or int(env.version.split(".")[0]) not in SUPPORTED_MAJORS:
            raise DependencyError(f"building or running TensorRT engines: {env.reason}")
        raise ExportError(f"building or running TensorRT engines needs an NVIDIA GPU: {env.reason}")
    trt, reason = _import_tensorrt()
    if trt is None:  # uninstalled between the probe and now
        raise DependencyError(f"building or running TensorRT engines: {reason}")
    return trt, env
