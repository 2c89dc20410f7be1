"""Engine cache keys: an engine is reused only for the exact ONNX file, TensorRT, GPU model and builder settings
(why the GPU's name, how builders share one folder: docs/gpus.md). Pure Python."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ...manifest import Manifest, sha256_file, write_json_atomic

ENGINE_DIR = "trt"  # engines live in this subfolder of an export folder
CACHE_ENV = "ZSE_ENGINE_CACHE"
USER_CACHE_ENV = "ZSE_CACHE_DIR"


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    compute_capability: str
    precision: str
    profile: Mapping[str, Any] = field(default_factory=dict)  # profile_to_json(...) of the shapes
    device_name: str = ""  # e.g. "NVIDIA A10": plans are not portable across GPU models of one compute capability
    builder: Mapping[str, Any] = field(default_factory=dict)  # BuildSettings.key_fields(): what shapes the plan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EngineKey:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def engine_file_name(graph_id: str, key: EngineKey) -> str:
    """Readable and unique per key, so engines for several GPUs can sit in one folder."""
    sm = key.compute_capability.replace(".", "")
    return f"{ENGINE_DIR}/{graph_id}.sm{sm}.trt{key.tensorrt_version}.{key.digest()[:12]}.engine"


def default_cache_dir() -> Path:
    """``$ZSE_ENGINE_CACHE``, else ``engines/cache`` under the working directory (engines/ is gitignored)."""
    return Path(os.environ.get(CACHE_ENV) or Path("engines") / "cache")


def user_cache_dir(*parts: str) -> Path:
    """``$ZSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/zse-infer``, else ``~/.cache/zse-infer``: never inside an export
    folder (those may be read-only and are hash-checked)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = os.environ.get(USER_CACHE_ENV) or (Path(xdg) if xdg else Path.home() / ".cache") / "zse-infer"
    return Path(root).joinpath(*parts)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory ``flock`` on ``path`` across processes (none on Windows, where unique temporary
    names and atomic renames still keep every file whole: only a duplicate build may happen)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def write_unique_then_rename(target: Path, data: bytes) -> str:
    """Write ``data`` to a per-process temporary file renamed onto ``target``; the sha256 read back from disk."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


class EngineCache:
    """A folder of ``<digest>.engine`` files, each beside a ``<digest>.json`` holding its full key and sha256."""

    def __init__(self, root: str | os.PathLike):
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
        return engine if info.get("key") == key.to_dict() and info.get("sha256") == sha256_file(engine) else None

    def get_or_build(self, key: EngineKey, build: Callable[[], tuple[bytes, Mapping[str, Any]]]) -> tuple[Path, bool]:
        """(engine path, whether ``build`` ran): the cached engine, else ``build()``'s bytes stored under ``key``.
        Under a per-key lock: a second builder of the key (another process or pod) waits, then finds it cached."""
        self.root.mkdir(parents=True, exist_ok=True)
        engine, meta = self._paths(key)
        with file_lock(self.root / f"{key.digest()}.lock"):
            existing = self.get(key)
            if existing is not None:
                return existing, False
            data, info = build()
            digest = write_unique_then_rename(engine, data)
            write_json_atomic(meta, {"key": key.to_dict(), "sha256": digest, **info})
        return engine, True

    def put(self, key: EngineKey, engine_bytes: bytes, info: Mapping[str, Any] | None = None) -> Path:
        """Store an engine; when several processes put one key at once, one intact entry remains (the first)."""
        return self.get_or_build(key, lambda: (engine_bytes, dict(info or {})))[0]

    def timing_cache_path(self, tensorrt_version: str, compute_capability: str, device_name: str = "") -> Path:
        """Timing caches are per TensorRT version and GPU model, shared by every graph built there."""
        slug = "".join(c if c.isalnum() else "-" for c in device_name).strip("-").lower() or "unknown"
        device = f".{slug}" if device_name else ""
        return self.root / f"timing.trt{tensorrt_version}.sm{compute_capability.replace('.', '')}{device}.cache"


def find_engine(
    manifest: Manifest, graph_id: str, tensorrt_version: str, compute_capability: str, device_name: str = ""
) -> dict[str, Any] | None:
    """The manifest's engine entry for ``graph_id`` valid on this TensorRT + GPU model, or None (the key is
    recomputed from the graph's *current* sha256: an engine of an older graph or another GPU never matches)."""
    graph = manifest.graphs.get(graph_id)
    if graph is None:
        return None
    sha256 = manifest.files.get(graph.file, "")
    for entry in (e for e in manifest.engines if e.get("graph") == graph_id):
        precision, recorded = entry.get("precision", ""), entry.get("key", {})
        profile, builder = recorded.get("profile", {}), recorded.get("builder", {})
        key = EngineKey(sha256, tensorrt_version, compute_capability, precision, profile, device_name, builder)
        if key.digest() == entry.get("cache_key"):
            return entry
    return None
