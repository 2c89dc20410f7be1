"""Building TensorRT engines for export folders (the build side).

Running engines and finding the one built for this GPU is the runtime's job (:mod:`zse_infer.runtime.runners`):
this side imports the runners it validates with, never the reverse. ``tensorrt`` is imported lazily.
"""

from .build import build_engines

__all__ = ["build_engines"]
