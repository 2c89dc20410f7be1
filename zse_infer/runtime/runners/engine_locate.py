"""The runtime's question: which engine file of an export folder may run here? (No TensorRT import.)"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import BackendError
from ...manifest import GraphSpec, Manifest
from . import trt_environment as environment
from .engine_cache import find_engine


def locate_engine(folder: "str | os.PathLike", manifest: Manifest, graph: GraphSpec) -> Path:
    """The engine built from ``graph`` for this machine's TensorRT version and GPU, hash-verified.

    Raises :class:`BackendError` when TensorRT or a GPU is missing or no engine
    in the folder matches (an engine for another GPU, TensorRT version or an
    older graph is never returned), and
    :class:`~zse_infer.errors.IntegrityError` when the engine file was modified.
    """
    folder = Path(folder)
    env = environment.probe_tensorrt()
    if not env.ready:
        raise BackendError(f"TensorRT engines cannot run here: {env.reason}")
    entry = find_engine(manifest, graph.id, str(env.version), str(env.compute_capability))
    if entry is None:
        built = ", ".join(
            f"TensorRT {e.get('key', {}).get('tensorrt_version')} sm {e.get('key', {}).get('compute_capability')}"
            for e in manifest.engines if e.get("graph") == graph.id
        ) or "none"
        raise BackendError(
            f"{folder}: no engine for graph {graph.id} built for TensorRT {env.version} on compute capability "
            f"{env.compute_capability} (engines for it: {built}); build one with `zse-export build {folder}`"
        )
    manifest.verify(folder, [entry["file"]])
    return folder / entry["file"]
