"""Building TensorRT engines for export folders; running them is :mod:`zse_infer.runtime.runners`' job (this side
imports the runners, never the reverse). ``tensorrt`` is imported lazily."""

from .build import build_engines

__all__ = ["build_engines"]
