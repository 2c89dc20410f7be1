"""Engines for an export folder: one per TensorRT-shaped graph, through the engine cache."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ExportError
from ..manifest import BatchRange, GraphSpec, Manifest, sha256_file
from ..runtime.runners.engine_cache import (
    EngineCache,
    EngineKey,
    default_cache_dir,
    engine_file_name,
    file_lock,
    write_unique_then_rename,
)
from ..runtime.runners.trt_environment import TrtEnvironment, require_tensorrt
from .profiles import profile_shapes, profile_to_json
from .tensorrt_build import BuildSettings, build_serialized_engine, combine_timing_caches

_log = logging.getLogger(__name__)

_PRECISION_ORDER = ("fp16", "fp32")


def engine_graphs(manifest: Manifest, precisions: Iterable[str] | None = None) -> list[GraphSpec]:
    """The ``trt`` graphs to build engines from: per role, the best precision present (fp16, else fp32)."""
    trt_graphs = [g for g in manifest.graphs.values() if g.variant == "trt"]
    if not trt_graphs:
        missing = "the export folder has no TensorRT graphs (variant 'trt'); re-export with a recipe that lists it"
        raise ExportError(missing)
    if precisions is not None:
        wanted = set(precisions)
        chosen = [g for g in trt_graphs if g.precision in wanted]
        if not chosen:
            have = sorted({g.precision for g in trt_graphs})
            raise ExportError(f"--precision: received {sorted(wanted)}, the folder's TensorRT graphs are {have}")
        return chosen
    chosen = []
    for role in dict.fromkeys(g.role for g in trt_graphs):
        of_role = [g for g in trt_graphs if g.role == role]
        present = [g.precision for g in of_role]
        best = next(p for p in (*_PRECISION_ORDER, *present) if p in present)
        chosen += [g for g in of_role if g.precision == best]
    return chosen


def engine_batch(graph: GraphSpec, max_batch: Mapping[str, int] | None) -> BatchRange:
    """The profile's batch range: the graph's, with ``--max-batch`` (ROLE=N; relation_* graphs follow relation_head)."""
    max_batch = max_batch or {}
    role = "relation_head" if graph.role not in max_batch and graph.role.startswith("relation_") else graph.role
    return graph.batch.with_max(int(max_batch[role])) if role in max_batch else graph.batch


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


def _merge_timing_cache(trt: ModuleType, path: Path, ours: bytes) -> None:
    """Merge ``ours`` into the shared timing cache under a file lock, keeping what other builders measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.with_name(path.name + ".lock")):
        stored = _read(path)
        write_unique_then_rename(path, combine_timing_caches(trt, stored, ours) if stored and stored != ours else ours)


def build_engines_for_manifest(
    folder: Path,
    manifest: Manifest,
    recipe_trt: Mapping[str, Any] | None = None,
    env: TrtEnvironment | None = None,
    cache_dir: str | os.PathLike | None = None,
    precisions: Iterable[str] | None = None,
    max_batch: Mapping[str, int] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Build (or take from the cache) an engine per chosen graph into ``folder/trt/``; records them in ``manifest``
    (graph hashes not recorded yet are computed here; the caller saves the manifest)."""
    trt, probed = require_tensorrt()  # also checks for a GPU: nothing below may run without one
    env = env if env is not None and env.ready else probed
    folder = Path(folder)
    cache = EngineCache(cache_dir or default_cache_dir())
    recipe_settings = dict(recipe_trt or manifest.extra.get("recipe", {}).get("tensorrt", {}))
    version, cc, device = str(env.version), str(env.compute_capability), str(env.device or "")
    timing = cache.timing_cache_path(version, cc, device)
    entries = []
    for graph in engine_graphs(manifest, precisions):
        if on_step:
            on_step(f"engine {graph.id}")
        sha256 = manifest.files.setdefault(graph.file, sha256_file(folder / graph.file))
        batch = engine_batch(graph, max_batch)
        shapes = profile_shapes(graph.inputs, batch)
        settings = BuildSettings.from_recipe(graph.precision, recipe_settings)
        key = EngineKey(
            onnx_sha256=sha256,
            tensorrt_version=version,
            compute_capability=cc,
            precision=graph.precision,
            profile=profile_to_json(shapes),
            device_name=device,
            builder=settings.key_fields(),
        )
        info: dict[str, Any] = {}

        def build(graph=graph, shapes=shapes, settings=settings, info=info) -> tuple[bytes, dict[str, Any]]:
            data, updated, built = build_serialized_engine(trt, folder / graph.file, shapes, settings, _read(timing))
            _merge_timing_cache(trt, timing, updated)
            info.update(built)
            return data, {"graph": graph.id, **built}

        cached, fresh = cache.get_or_build(key, build)
        if not fresh:
            _log.info("engine for %s found in cache %s", graph.id, cached)
        name = engine_file_name(graph.id, key)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, folder / name)
        entry: dict[str, Any] = {"graph": graph.id, "role": graph.role, "precision": graph.precision, "file": name}
        # batch: the profile, the runner's batch limit even above the graph's recipe range
        entry.update(cache_key=key.digest(), key=key.to_dict(), batch=batch.to_dict(), device=env.device)
        entry.update(built=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **info)
        manifest.engines = [e for e in manifest.engines if e.get("file") != name] + [entry]
        entries.append(entry)
    return entries


def build_engines(
    folder: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    precisions: Iterable[str] | None = None,
    max_batch: Mapping[str, int] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """``zse-export build DIR``: engines for an existing export folder (hashes verified first), manifest updated."""
    from ..exporting.folder import write_manifest

    folder = Path(folder)
    manifest = Manifest.load(folder, verify=True)
    _, env = require_tensorrt()
    entries = build_engines_for_manifest(folder, manifest, None, env, cache_dir, precisions, max_batch, on_step)
    manifest.extra["tensorrt"] = {"built": True, "version": env.version, "device": env.device}
    write_manifest(folder, manifest)
    return entries
