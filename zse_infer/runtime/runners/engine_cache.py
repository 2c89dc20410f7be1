"""Engine cache keys: an engine is reused only for the exact ONNX file, TensorRT version, GPU and profile.

A TensorRT engine is specific to the TensorRT version and the GPU's compute
capability it was built with, and to the optimisation profile and precision;
loading one built for anything else fails or, worse, misbehaves. The key
covers all of them plus the ONNX file's sha256, so a stale engine is never
loaded: a changed graph, an upgraded TensorRT or another GPU simply misses.
Pure Python, no TensorRT: unit-tested on any machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ...manifest import Manifest, sha256_file, write_json_atomic

ENGINE_DIR = "trt"  # engines live in this subfolder of an export folder
CACHE_ENV = "ZSE_ENGINE_CACHE"


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    compute_capability: str
    precision: str
    profile: Mapping[str, Any] = field(default_factory=dict)  # profile_to_json(...) of the shapes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EngineKey":
        return cls(**{k: d[k] for k in ("onnx_sha256", "tensorrt_version", "compute_capability", "precision", "profile")})


def engine_file_name(graph_id: str, key: EngineKey) -> str:
    """Readable and unique per key, so engines for several GPUs can sit in one folder."""
    sm = key.compute_capability.replace(".", "")
    return f"{ENGINE_DIR}/{graph_id}.sm{sm}.trt{key.tensorrt_version}.{key.digest()[:12]}.engine"


def default_cache_dir() -> Path:
    """``$ZSE_ENGINE_CACHE``, else ``engines/cache`` under the working directory (engines/ is gitignored)."""
    return Path(os.environ.get(CACHE_ENV) or Path("engines") / "cache")


class EngineCache:
    """A folder of ``<digest>.engine`` files, each beside a ``<digest>.json`` holding its full key."""

    def __init__(self, root: "str | os.PathLike"):
        self.root = Path(root)

    def _paths(self, key: EngineKey) -> tuple[Path, Path]:
        digest = key.digest()
        return self.root / f"{digest}.engine", self.root / f"{digest}.json"

    def get(self, key: EngineKey) -> Path | None:
        """The cached engine for exactly this key (sidecar key and engine hash both checked), or None."""
        engine, meta = self._paths(key)
        if not (engine.is_file() and meta.is_file()):
            return None
        try:
            info = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if info.get("key") != key.to_dict() or info.get("sha256") != sha256_file(engine):
            return None
        return engine

    def put(self, key: EngineKey, engine_bytes: bytes, info: Mapping[str, Any] | None = None) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        engine, meta = self._paths(key)
        tmp = engine.with_suffix(".engine.tmp")
        tmp.write_bytes(engine_bytes)
        os.replace(tmp, engine)
        write_json_atomic(meta, {"key": key.to_dict(), "sha256": sha256_file(engine), **(info or {})})
        return engine

    def timing_cache_path(self, tensorrt_version: str, compute_capability: str) -> Path:
        """Timing caches are per TensorRT version and GPU, shared by every graph built there."""
        return self.root / f"timing.trt{tensorrt_version}.sm{compute_capability.replace('.', '')}.cache"


def find_engine(
    manifest: Manifest, graph_id: str, tensorrt_version: str, compute_capability: str
) -> dict[str, Any] | None:
    """The manifest's engine entry for ``graph_id`` valid on this TensorRT + GPU, or None.

    The key is recomputed from the graph file's *current* recorded sha256, so an
    engine built from an older graph is never returned.
    """
    graph = manifest.graphs.get(graph_id)
    if graph is None:
        return None
    for entry in manifest.engines:
        if entry.get("graph") != graph_id:
            continue
        key = EngineKey(
            onnx_sha256=manifest.files.get(graph.file, ""),
            tensorrt_version=tensorrt_version,
            compute_capability=compute_capability,
            precision=entry.get("precision", ""),
            profile=entry.get("key", {}).get("profile", {}),
        )
        if key.digest() == entry.get("cache_key"):
            return entry
    return None
