"""One small interface over every engine kind: ``Runner.run(inputs) -> outputs``, checked against the graph's
:class:`~zse_infer.manifest.GraphSpec` ("received X, expected Y") and split into batches its profile allows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ...errors import BackendError, InputError
from ...manifest import GraphSpec, TensorSpec


def _format_shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


class Runner(ABC):
    """Runs one graph. Subclasses implement :meth:`_run_batch` for a batch within the profile."""

    #: short backend name, e.g. "onnxruntime", "tensorrt", "torch"
    backend: str = "?"

    def __init__(self, graph: GraphSpec, max_batch: int | None = None, limit: int | None = None):
        """``limit``: the most rows one engine call takes (default: the graph's batch max; TensorRT: the engine's)."""
        self.graph = graph
        limit = int(limit or graph.batch.max)
        self.max_batch = min(max_batch or limit, limit)
        if self.max_batch < 1:
            raise BackendError(f"graph {graph.id}: max batch must be >= 1, received {max_batch}")

    @property
    def device(self) -> str:
        """Where the graph actually runs (e.g. "CPUExecutionProvider", "cuda:0")."""
        return "cpu"

    def check_inputs(self, inputs: Mapping[str, np.ndarray]) -> int:
        """Validate names, dtypes and shapes against the graph; return the batch size."""
        expected = [t.name for t in self.graph.inputs]
        if sorted(inputs) != sorted(expected):
            raise InputError(f"graph {self.graph.id}: received inputs {sorted(inputs)}, expected {expected}")
        batch = None
        for spec in self.graph.inputs:
            value = inputs[spec.name]
            where = f"graph {self.graph.id}: input '{spec.name}'"
            if not isinstance(value, np.ndarray):
                raise InputError(f"{where} received {type(value).__name__}, expected a numpy array")
            if value.dtype != np.dtype(spec.dtype):
                raise InputError(f"{where} received dtype {value.dtype}, expected {spec.dtype}")
            if not _shape_matches(value.shape, spec):
                shapes = f"received shape {_format_shape(value.shape)}, expected {_format_shape(spec.shape)}"
                raise InputError(f"{where} {shapes}")
            if not _batched(spec):
                continue  # a fixed leading dim (e.g. one query's tensors): broadcast, not split
            if batch is not None and value.shape[0] != batch:
                sizes = f"({batch} and {value.shape[0]} for '{spec.name}')"
                raise InputError(f"graph {self.graph.id}: inputs have different batch sizes {sizes}")
            batch = value.shape[0]
        return int(batch or 0)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run any number of rows, in batches of at most ``max_batch``; outputs are concatenated."""
        n = self.check_inputs(inputs)
        if n == 0:
            return {t.name: np.zeros(_empty_shape(t), dtype=t.dtype) for t in self.graph.outputs}
        parts: list[dict[str, np.ndarray]] = []
        batched = {t.name for t in self.graph.inputs if _batched(t)}
        for start in range(0, n, self.max_batch):
            rows = slice(start, start + self.max_batch)
            chunk = {k: np.ascontiguousarray(v[rows] if k in batched else v) for k, v in inputs.items()}
            parts.append(self._run_batch(chunk))
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    @abstractmethod
    def _run_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch (1 <= rows <= max_batch) of already validated, contiguous inputs."""

    # Not abstract: a runner that holds no engine or session has nothing to release.
    def close(self) -> None:  # noqa: B027  # pragma: no cover - overridden where resources are held
        """Release engine/session resources."""


def check_input_names(graph: GraphSpec, found, where: str) -> None:
    """Raise :class:`BackendError` unless the loaded session/engine takes exactly the manifest's inputs."""
    found, expected = sorted(found), sorted(t.name for t in graph.inputs)
    if found != expected:
        raise BackendError(f"{where} inputs {found} do not match the manifest's {expected}")


def _batched(spec: TensorSpec) -> bool:
    """Inputs whose leading dimension is dynamic are split into batches; fixed ones are broadcast."""
    return bool(spec.shape) and isinstance(spec.shape[0], str)


def _shape_matches(shape: tuple[int, ...], spec: TensorSpec) -> bool:
    return len(shape) == len(spec.shape) and all(
        isinstance(d, str) or d == s for d, s in zip(spec.shape, shape, strict=True)
    )


def _empty_shape(spec: TensorSpec) -> tuple[int, ...]:
    return tuple(0 if isinstance(d, str) else d for d in spec.shape)


@dataclass
class ModelRunners:
    """The two graphs a retriever needs, on one backend."""

    encoder: Runner
    relation_head: Runner
    backend: str
    precision: str

    def describe(self) -> str:
        head = f"relation head {self.relation_head.graph.id} on {self.relation_head.device}"
        return f"{self.backend} ({self.precision}): encoder {self.encoder.graph.id} on {self.encoder.device}, {head}"

    def close(self) -> None:
        self.encoder.close()
        self.relation_head.close()
