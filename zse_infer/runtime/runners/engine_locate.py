"""The runtime's question: which engine file of an export folder may run here? (No TensorRT import.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import BackendError
from ...manifest import BatchRange, GraphSpec, Manifest
from . import trt_environment as environment
from .engine_cache import find_engine


def locate_engine_entry(folder: str | os.PathLike, manifest: Manifest, graph: GraphSpec) -> tuple[Path, dict[str, Any]]:
    """(engine path, manifest entry) for ``graph`` on this TensorRT + GPU model, hash-verified; else BackendError."""
    folder = Path(folder)
    env = environment.probe_tensorrt()
    if not env.ready:
        raise BackendError(f"TensorRT engines cannot run here: {env.reason}")
    entry = find_engine(manifest, graph.id, str(env.version), str(env.compute_capability), str(env.device or ""))
    if entry is None:
        keys = [(e.get("key", {}), e) for e in manifest.engines if e.get("graph") == graph.id]
        built = ", ".join(
            f"TensorRT {k.get('tensorrt_version')} sm {k.get('compute_capability')} "
            f"on {k.get('device_name') or e.get('device') or '?'}"
            for k, e in keys
        )
        here = f"TensorRT {env.version} on compute capability {env.compute_capability} ({env.device})"
        fix = f"(engines for it: {built or 'none'}); build one with `zse-export build {folder}`"
        raise BackendError(f"{folder}: no engine for graph {graph.id} built for {here} {fix}")
    manifest.verify(folder, [entry["file"]])
    return folder / entry["file"], entry


def locate_engine(folder: str | os.PathLike, manifest: Manifest, graph: GraphSpec) -> Path:
    """The engine file only (see :func:`locate_engine_entry`)."""
    return locate_engine_entry(folder, manifest, graph)[0]


def engine_batch(entry: dict[str, Any], graph: GraphSpec) -> BatchRange:
    """The batch range the engine was built for (``zse-export build --max-batch`` may exceed the graph's)."""
    batch = entry.get("batch")
    return BatchRange(**batch) if batch else graph.batch
