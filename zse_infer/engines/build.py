"""Engines for an export folder: one per TensorRT-shaped graph, through the engine cache.

Used by ``zse-export`` right after exporting (when TensorRT and a GPU are
present) and by ``zse-export build DIR`` later, on the GPU machine.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..errors import ExportError
from ..manifest import BatchRange, GraphSpec, Manifest, sha256_file
from ..runtime.runners.engine_cache import EngineCache, EngineKey, default_cache_dir, engine_file_name
from ..runtime.runners.trt_environment import TrtEnvironment, require_tensorrt
from .profiles import profile_shapes, profile_to_json
from .tensorrt_build import BuildSettings

_log = logging.getLogger(__name__)


def engine_graphs(manifest: Manifest, precisions: Iterable[str] | None = None) -> list[GraphSpec]:
    """The graphs to build engines from: the ``trt`` variants, by default in the best precision present.

    One engine per role: fp16 when the folder has fp16 TensorRT graphs (exported with --fp16), else fp32.
    """
    trt_graphs = [g for g in manifest.graphs.values() if g.variant == "trt"]
    if not trt_graphs:
        raise ExportError("the export folder has no TensorRT graphs (variant 'trt'); re-export with a recipe that lists it")
    if precisions is None:
        best = "fp16" if any(g.precision == "fp16" for g in trt_graphs) else "fp32"
        precisions = (best,)
    wanted = set(precisions)
    chosen = [g for g in trt_graphs if g.precision in wanted]
    if not chosen:
        have = sorted({g.precision for g in trt_graphs})
        raise ExportError(f"--precision: received {sorted(wanted)}, the folder's TensorRT graphs are {have}")
    return chosen


def engine_key(manifest: Manifest, graph: GraphSpec, env: TrtEnvironment, batch: BatchRange) -> EngineKey:
    return EngineKey(
        onnx_sha256=manifest.files[graph.file],
        tensorrt_version=str(env.version),
        compute_capability=str(env.compute_capability),
        precision=graph.precision,
        profile=profile_to_json(profile_shapes(graph.inputs, batch)),
    )


def build_engines_for_manifest(
    folder: Path,
    manifest: Manifest,
    recipe_trt: Mapping[str, Any] | None = None,
    env: TrtEnvironment | None = None,
    cache_dir: "str | os.PathLike | None" = None,
    precisions: Iterable[str] | None = None,
    max_batch: Mapping[str, int] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Build (or take from the cache) an engine per chosen graph into ``folder/trt/``; records them in ``manifest``.

    ``manifest.files`` must hold the graphs' sha256 (they are part of the key);
    they are computed here for graphs not recorded yet (during an export).
    The caller saves the manifest.
    """
    trt, probed = require_tensorrt()  # also checks for a GPU: nothing below may run without one
    env = env if env is not None and env.ready else probed
    folder = Path(folder)
    cache = EngineCache(cache_dir or default_cache_dir())
    settings = dict(recipe_trt or manifest.extra.get("recipe", {}).get("tensorrt", {}))
    timing_path = cache.timing_cache_path(str(env.version), str(env.compute_capability))
    timing = timing_path.read_bytes() if timing_path.is_file() else b""
    from .tensorrt_build import build_serialized_engine

    entries = []
    for graph in engine_graphs(manifest, precisions):
        if on_step:
            on_step(f"engine {graph.id}")
        manifest.files.setdefault(graph.file, sha256_file(folder / graph.file))
        batch = graph.batch
        if max_batch and graph.role in max_batch:
            m = max_batch[graph.role]
            batch = BatchRange(min=min(batch.min, m), opt=min(batch.opt, m), max=m)
        key = engine_key(manifest, graph, env, batch)
        cached = cache.get(key)
        info: dict[str, Any] = {}
        if cached is None:
            build = BuildSettings(
                precision=graph.precision,
                workspace_mib=int(settings.get("workspace_mib", 4096)),
                builder_optimization_level=int(settings.get("builder_optimization_level", 3)),
            )
            data, timing, info = build_serialized_engine(trt, folder / graph.file, profile_shapes(graph.inputs, batch), build)
            timing_path.parent.mkdir(parents=True, exist_ok=True)
            timing_path.write_bytes(timing)
            cached = cache.put(key, data, {"graph": graph.id, **info})
        else:
            _log.info("engine for %s found in cache %s", graph.id, cached)
        name = engine_file_name(graph.id, key)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, folder / name)
        entry = {
            "graph": graph.id,
            "role": graph.role,
            "precision": graph.precision,
            "file": name,
            "cache_key": key.digest(),
            "key": key.to_dict(),
            "batch": batch.to_dict(),
            "device": env.device,
            "built": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **info,
        }
        manifest.engines = [e for e in manifest.engines if e.get("file") != name] + [entry]
        entries.append(entry)
    return entries


def build_engines(
    folder: "str | os.PathLike",
    cache_dir: "str | os.PathLike | None" = None,
    precisions: Iterable[str] | None = None,
    max_batch: Mapping[str, int] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """``zse-export build DIR``: engines for an existing export folder (hashes verified first), manifest updated."""
    from ..exporting.folder import write_manifest

    folder = Path(folder)
    manifest = Manifest.load(folder, verify=True)
    _, env = require_tensorrt()
    entries = build_engines_for_manifest(folder, manifest, env=env, cache_dir=cache_dir, precisions=precisions,
                            max_batch=max_batch, on_step=on_step)
    manifest.extra["tensorrt"] = {"built": True, "version": env.version}
    write_manifest(folder, manifest)
    return entries
