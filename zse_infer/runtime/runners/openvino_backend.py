"""OpenVINO backend (CPU): the export folder's plain fp32 ONNX graphs compiled by OpenVINO, bf16 where trusted;
``"fp32"`` asks for f32 explicitly (OpenVINO's default on a bf16-capable CPU is bf16). The cache: docs/cpu.md."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...errors import BackendError, InputError, require
from ...manifest import GraphSpec, sha256_file, write_json_atomic
from .base import Runner, check_input_names
from .cpu_features import cpu_features
from .engine_cache import file_lock, user_cache_dir

_log = logging.getLogger(__name__)

#: our precision names -> OpenVINO's inference precision hint
INFERENCE_PRECISION = {"bf16": "bf16", "fp32": "f32"}
CACHE_ENV = "ZSE_OPENVINO_CACHE"


def _ov():
    return require("openvino", "cpu", "The OpenVINO backend")


@functools.cache
def openvino_core():
    """One ``openvino.Core`` per process (it holds the plugin; making one costs ~100 ms)."""
    return _ov().Core()


def openvino_version() -> str:
    """``2026.4.1`` (the release, without the build suffix OpenVINO appends)."""
    return _ov().__version__.split("-")[0]


@dataclass(frozen=True)
class CompiledKey:
    """What a compiled blob depends on; a change of any field compiles anew (a new folder)."""

    onnx_sha256: str
    openvino_version: str
    cpu_model: str
    cpu_flags: tuple[str, ...]  # VMs report generic model names ("Intel Xeon Processor"): the ISA tells them apart
    precision: str

    def digest(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def compiled_key(graph_sha256: str, precision: str, features: dict | None = None) -> CompiledKey:
    features = features or cpu_features()
    flags = features.get("flags")
    flags = tuple(flags) if isinstance(flags, list) else (str(flags),)
    return CompiledKey(graph_sha256, openvino_version(), str(features.get("model")), flags, precision)


def cache_folder(root: Path, graph_id: str, key: CompiledKey) -> Path:
    """``<root>/<graph id>.<precision>.<digest[:16]>/`` with ``key.json`` written beside OpenVINO's blob."""
    folder = Path(root) / f"{graph_id}.{key.precision}.{key.digest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "key.json"
    if not key_file.is_file():
        write_json_atomic(key_file, asdict(key))
    return folder


class OpenVinoRunner(Runner):
    backend = "openvino"

    def __init__(
        self,
        graph: GraphSpec,
        folder: str | os.PathLike,
        precision: str = "fp32",
        max_batch: int | None = None,
        threads: int | None = None,
        cache_dir: str | os.PathLike | bool | None = None,
        graph_sha256: str | None = None,
    ):
        """``precision``: "bf16" or "fp32" (the inference precision; the graph itself is fp32). ``cache_dir``: the
        compiled-model cache root (None: ``$ZSE_OPENVINO_CACHE``, else the user cache folder; False: none).
        ``graph_sha256``: the graph file's recorded hash (the manifest's), else the file is hashed."""
        super().__init__(graph, max_batch)
        if precision not in INFERENCE_PRECISION:
            expected = f"expected one of {sorted(INFERENCE_PRECISION)}"
            raise InputError(f"OpenVINO precision: received {precision!r}, {expected}")
        if graph.precision != "fp32":
            received = f"received a {graph.precision} graph"
            raise InputError(f"graph {graph.id}: the OpenVINO backend compiles fp32 graphs, {received}")
        core, path = openvino_core(), Path(folder) / graph.file
        self.precision, self.threads, self.cache_dir = precision, threads, cache_dir
        config: dict[str, object] = {
            "INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision],
            "PERFORMANCE_HINT": "LATENCY",  # one stream: our callers send one batch at a time
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.cache_folder = self._cache(cache_dir, graph, path, graph_sha256, precision)
        lock: contextlib.AbstractContextManager = contextlib.nullcontext()
        if self.cache_folder is not None:
            config["CACHE_DIR"] = str(self.cache_folder)
            lock = file_lock(self.cache_folder / ".lock")
        t0 = time.perf_counter()
        try:
            with lock:  # a second process starting at once imports what the first compiled
                self.compiled = core.compile_model(str(path), "CPU", config)
        except RuntimeError as exc:  # OpenVINO raises RuntimeError subclasses for unreadable/unsupported graphs
            raise BackendError(f"{path}: OpenVINO cannot compile graph {graph.id} ({exc})") from exc
        self.compile_seconds = time.perf_counter() - t0
        self.from_cache = bool(_property(self.compiled, "LOADED_FROM_CACHE", False))
        hint = _property(self.compiled, "INFERENCE_PRECISION_HINT", None)  # an openvino.Type: "bf16" / "f32"
        self.inference_precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        check_input_names(graph, (i.get_any_name() for i in self.compiled.inputs), f"{path}: OpenVINO model")
        # Outputs by the manifest's names: a tensor may carry several names and get_any_name() picks any.
        self._outputs = {t.name: self.compiled.output(t.name) for t in graph.outputs}
        self._request = self.compiled.create_infer_request()
        how = "from cache" if self.from_cache else "compiled"
        args = (graph.id, graph.file, openvino_version(), self.inference_precision, self.compile_seconds, how)
        _log.info("graph %s (%s) compiled by OpenVINO %s for %s in %.2f s (%s)", *args)

    @staticmethod
    def _cache(cache_dir, graph: GraphSpec, path: Path, graph_sha256: str | None, precision: str) -> Path | None:
        """This graph's cache folder, or None (turned off, or not writable: then every start compiles, logged).
        A damaged blob inside is no risk: OpenVINO checks what it imports and compiles anew when it cannot."""
        if cache_dir is False:
            return None
        root = Path(cache_dir) if cache_dir else Path(os.environ.get(CACHE_ENV) or user_cache_dir("openvino"))
        try:
            return cache_folder(root, graph.id, compiled_key(graph_sha256 or sha256_file(path), precision))
        except OSError as exc:
            _log.warning("OpenVINO compiled-model cache %s not usable (%s): compiling without a cache", root, exc)
            return None

    @property
    def device(self) -> str:
        return f"openvino-cpu ({self.inference_precision})"

    def _run_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Inputs shared (already contiguous, Runner.run); outputs copied: the request reuses its buffers next call.
        results = self._request.infer(inputs, share_inputs=True, share_outputs=False)
        return {name: results[port] for name, port in self._outputs.items()}

    def close(self) -> None:
        self._request = None
        self.compiled = None


def _property(compiled, name: str, default):
    try:
        return compiled.get_property(name)
    except RuntimeError:  # older OpenVINO versions lack some read-only properties
        return default
