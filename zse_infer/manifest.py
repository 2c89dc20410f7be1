"""``manifest.json``: the contract between the export side and the runtime side (its layout: docs/api/manifest.md);
the runtime builds everything from it and verifies each file's sha256 before use."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .config import ModelConfig, PreprocessConfig
from .errors import IntegrityError, ManifestError, check_blend

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
PRECISIONS = ("fp32", "fp16", "int8")
VARIANTS = ("plain", "ort_fused", "trt")

# The fixed graph contract every runtime and user pipeline relies on.
ENCODER_INPUT = "image"
ENCODER_OUTPUT = "tokens"
HEAD_INPUTS = ("sketch_tokens", "photo_tokens")
HEAD_OUTPUT = "score"

#: Stage-2 depth (candidates reranked) when neither the caller nor the folder's ``search.rerank`` chooses one.
DEFAULT_RERANK = 100


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "float32", "float16", "int64"
    shape: tuple[int | str, ...]  # ints are fixed, strings name a dynamic dimension

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        return cls(name=d["name"], dtype=d["dtype"], shape=tuple(d["shape"]))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class BatchRange:
    """The batch sizes a graph (or engine profile) accepts: plain data, as Polygraphy's profiles."""

    min: int = 1
    opt: int = 8
    max: int = 64

    def __post_init__(self):
        if not (1 <= self.min <= self.opt <= self.max):
            got = f"got {self.min}/{self.opt}/{self.max}"
            raise ManifestError(f"batch range must satisfy 1 <= min <= opt <= max, {got}")

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}

    def with_max(self, maximum: int) -> BatchRange:
        """This range with a new maximum (``min`` and ``opt`` clamped to it)."""
        return BatchRange(min(self.min, maximum), min(self.opt, maximum), maximum)


@dataclass(frozen=True)
class GraphSpec:
    id: str
    role: str
    precision: str
    variant: str
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batch: BatchRange = field(default_factory=BatchRange)
    parity: Mapping[str, float] = field(default_factory=dict)
    fused_nodes: Mapping[str, int] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, gid: str, d: Mapping[str, Any]) -> GraphSpec:
        try:
            known = {f.name for f in fields(cls)} - {"id", "extra"}
            return cls(
                id=gid,
                role=d["role"],
                precision=d["precision"],
                variant=d.get("variant", "plain"),
                file=d["file"],
                inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
                outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
                batch=BatchRange(**d.get("batch", {})),
                parity=dict(d.get("parity", {})),
                fused_nodes=dict(d.get("fused_nodes", {})),
                extra={k: v for k, v in d.items() if k not in known},
            )
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"graph {gid!r} in manifest is malformed: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "precision": self.precision,
            "variant": self.variant,
            "file": self.file,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "batch": self.batch.to_dict(),
            "parity": dict(self.parity),
            "fused_nodes": dict(self.fused_nodes),
            **self.extra,
        }


@dataclass
class Manifest:
    model: ModelConfig
    graphs: dict[str, GraphSpec]
    files: dict[str, str]
    versions: dict[str, str] = field(default_factory=dict)
    source_checkpoint: dict[str, Any] = field(default_factory=dict)
    opset: int | None = None
    engines: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def preprocess(self) -> Mapping[str, PreprocessConfig]:
        return self.model.preprocess

    @property
    def default_rerank(self) -> int:
        """The rerank depth this folder recommends (``search.rerank``), else :data:`DEFAULT_RERANK`."""
        value = (self.extra.get("search") or {}).get("rerank", DEFAULT_RERANK)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ManifestError(f"{MANIFEST_NAME}: search.rerank {value!r} is not an integer >= 0")
        return value

    @property
    def default_blend(self) -> float:
        """The share of the ret-token cosine in a reranked photo's score (``search.blend``), else 0: the
        relation score alone, as the official model ranks (:func:`zse_infer.runtime.searcher.blend_scores`)."""
        search = self.extra.get("search") or {}
        return check_blend(search.get("blend", 0.0), f"{MANIFEST_NAME}: search.blend", ManifestError)

    def find_graphs(self, role: str) -> list[GraphSpec]:
        return [g for g in self.graphs.values() if g.role == role]

    def select_graph(
        self, role: str, precisions: Iterable[str] = ("fp32",), variants: Iterable[str] = ("ort_fused", "plain")
    ) -> GraphSpec:
        """The first graph of ``role`` in order of preference: precision first, then variant."""
        candidates = self.find_graphs(role)
        for precision in precisions:
            for variant in variants:
                if found := [g for g in candidates if (g.precision, g.variant) == (precision, variant)]:
                    return found[0]
        have = ", ".join(f"{g.id} ({g.precision}/{g.variant})" for g in candidates) or "none"
        wanted = f"precision in {list(precisions)} and variant in {list(variants)}"
        raise ManifestError(f"no {role} graph with {wanted}; the folder has: {have}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "created": self.created or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "versions": dict(self.versions),
            "model": self.model.to_dict(),
            "source_checkpoint": dict(self.source_checkpoint),
            "opset": self.opset,
            "graphs": {gid: g.to_dict() for gid, g in self.graphs.items()},
            "files": dict(self.files),
            "engines": list(self.engines),
            **self.extra,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = MANIFEST_NAME) -> Manifest:
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ManifestError(f"{where}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
        try:
            known = {f.name for f in fields(cls)} - {"extra"}
            return cls(
                model=ModelConfig.from_dict(d["model"]),
                graphs={gid: GraphSpec.from_dict(gid, g) for gid, g in d["graphs"].items()},
                files=dict(d["files"]),
                versions=dict(d.get("versions", {})),
                source_checkpoint=dict(d.get("source_checkpoint", {})),
                opset=d.get("opset"),
                engines=list(d.get("engines", [])),
                created=d.get("created", ""),
                extra={k: v for k, v in d.items() if k not in known},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"{where}: malformed manifest ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def load(cls, folder: str | os.PathLike, verify: bool = True) -> Manifest:
        folder = Path(folder)
        path = folder / MANIFEST_NAME
        if not folder.is_dir():
            raise ManifestError(f"{folder}: export folder not found")
        if not path.is_file():
            raise ManifestError(f"{path}: no manifest.json; expected an export folder written by zse-export")
        manifest = cls.from_dict(read_json(path, ManifestError), where=str(path))
        if verify:
            manifest.verify(folder)
        return manifest

    def verify(self, folder: str | os.PathLike, names: Iterable[str] | None = None) -> None:
        """Recompute sha256 of the listed files (all by default); IntegrityError names the first bad one."""
        folder = Path(folder)
        for gid, g in self.graphs.items():
            if g.file not in self.files:
                raise ManifestError(f"{folder / MANIFEST_NAME}: graph {gid!r} file {g.file} has no recorded sha256")
        for name in self.files if names is None else names:
            expected, path = self.files.get(name), folder / name
            if expected is None:
                raise ManifestError(f"{folder / MANIFEST_NAME}: no sha256 recorded for {name}")
            if not path.is_file():
                raise IntegrityError(f"{path}: listed in the manifest but missing")
            if (actual := sha256_file(path)) != expected:
                mismatch = f"sha256 {actual[:16]}... does not match the manifest ({expected[:16]}...); the file was"
                raise IntegrityError(f"{path}: {mismatch} modified or copied incompletely: re-export the folder")

    def save(self, folder: str | os.PathLike) -> Path:
        """Write manifest.json atomically (temp file + rename): readers never see half a manifest."""
        write_json_atomic(path := Path(folder) / MANIFEST_NAME, self.to_dict())
        return path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> str:
    """Write ``data`` via a temp file beside ``path``, fsync and rename (readers never see half of it); its sha256."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; these files are meant to be read by others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def read_json(path: str | os.PathLike, error: type[Exception]) -> Any:
    """Parse a JSON file; unreadable or invalid JSON raises ``error`` naming the file."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from exc


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode())
