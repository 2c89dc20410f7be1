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
    """The graphs to build engines from: the ``trt`` variants, per role in the best precision present (fp16
    where the role has an fp16 TensorRT graph, else fp32)."""
    trt_graphs = [g for g in manifest.graphs.values() if g.variant == "trt"]
    if not trt_graphs:
        raise ExportError(
            "the export folder has no TensorRT graphs (variant 'trt'); re-export with a recipe that lists it"
        )
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
        best = next(
            p for p in (*_PRECISION_ORDER, *(g.precision for g in of_role)) if any(g.precision == p for g in of_role)
        )
        chosen += [g for g in of_role if g.precision == best]
    return chosen


def engine_batch(graph: GraphSpec, max_batch: Mapping[str, int] | None) -> BatchRange:
    """The profile's batch range: the graph's, with ``--max-batch`` (ROLE=N; relation_* graphs follow relation_head)."""
    max_batch = max_batch or {}
    role = "relation_head" if graph.role not in max_batch and graph.role.startswith("relation_") else graph.role
    return graph.batch.with_max(int(max_batch[role])) if role in max_batch else graph.batch


class _TimingCache:
    """The shared timing cache file of this TensorRT + GPU model: read before each build, merged (under a file
    lock, not overwritten) after it, keeping what other graphs and builders measured."""

    def __init__(self, trt: ModuleType, path: Path):
        self.trt, self.path = trt, path

    def read(self) -> bytes:
        return self.path.read_bytes() if self.path.is_file() else b""

    def merge(self, ours: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path.with_name(self.path.name + ".lock")):
            stored = self.read()
            merged = combine_timing_caches(self.trt, stored, ours) if stored and stored != ours else ours
            write_unique_then_rename(self.path, merged)


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
    timing = _TimingCache(
        trt, cache.timing_cache_path(str(env.version), str(env.compute_capability), str(env.device or ""))
    )
    entries = []
    for graph in engine_graphs(manifest, precisions):
        if on_step:
            on_step(f"engine {graph.id}")
        manifest.files.setdefault(graph.file, sha256_file(folder / graph.file))
        batch = engine_batch(graph, max_batch)
        settings = BuildSettings.from_recipe(graph.precision, recipe_settings)
        key = EngineKey(
            onnx_sha256=manifest.files[graph.file],
            tensorrt_version=str(env.version),
            compute_capability=str(env.compute_capability),
            precision=graph.precision,
            profile=profile_to_json(profile_shapes(graph.inputs, batch)),
            device_name=str(env.device or ""),
            builder=settings.key_fields(),
        )
        info: dict[str, Any] = {}

        def build(graph=graph, batch=batch, settings=settings, info=info) -> tuple[bytes, dict[str, Any]]:
            data, updated, built = build_serialized_engine(
                trt, folder / graph.file, profile_shapes(graph.inputs, batch), settings, timing.read()
            )
            timing.merge(updated)
            info.update(built)
            return data, {"graph": graph.id, **built}

        cached, fresh = cache.get_or_build(key, build)
        if not fresh:
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
            "batch": batch.to_dict(),  # the profile: the runner's batch limit, even above the graph's recipe range
            "device": env.device,
            "built": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **info,
        }
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
    entries = build_engines_for_manifest(
        folder, manifest, env=env, cache_dir=cache_dir, precisions=precisions, max_batch=max_batch, on_step=on_step
    )
    manifest.extra["tensorrt"] = {"built": True, "version": env.version, "device": env.device}
    write_manifest(folder, manifest)
    return entries
