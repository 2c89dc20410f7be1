"""TensorRT engines for export folders: build (``build``), cache keys (``cache``), profiles, running (``runner``).

``tensorrt`` is imported lazily, only in functions that need it, after
``environment.require_tensorrt()`` has checked that it is installed and that a
GPU is present. ``cache``, ``profiles`` and ``locate`` are pure Python: the
runtime calls :func:`locate_engine` to get the engine built for its TensorRT
version and GPU.
"""

from .build import build_engines
from .locate import locate_engine

__all__ = ["build_engines", "locate_engine"]
