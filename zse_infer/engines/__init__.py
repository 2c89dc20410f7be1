"""Building TensorRT engines for export folders (the build side).

``build`` drives a folder's engines, ``tensorrt_build`` talks to TensorRT's
builder, ``profiles`` turns batch ranges into optimisation profiles. Running
engines, and finding the one built for this GPU, is the runtime's job
(:mod:`zse_infer.runtime.runners`): this side imports the runners it validates
with, never the other way round. ``tensorrt`` is imported lazily, only in
functions that need it.
"""

from .build import build_engines

__all__ = ["build_engines"]
