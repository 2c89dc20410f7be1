"""Where an evaluation's work runs: the seam between the one evaluation loop and Ray (docs/evaluation.md).

:class:`LocalExecutor` works in this process; :class:`zse_infer.distributed.ray_eval.RayExecutor` is chosen where
the job starts (``zse eval --ray``), so nothing here imports :mod:`zse_infer.distributed`. Tasks are small
picklable objects (:class:`~zse_infer.evaluation.protocol.SketchDistances`) so any executor can ship them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from ..runtime.retriever import Retriever

#: one unit of work: (the retriever of whoever runs it, one batch of image paths) -> an array
Task = Callable[[Retriever, Sequence[str]], np.ndarray]


class Executor(Protocol):
    """Runs an evaluation's indexing and per-batch tasks: ``map`` yields results in batch order, ``report``
    what it adds to the JSON report."""

    #: appended to progress bars ("" in this process, " on Ray" on Ray)
    where: str

    def index(self, retriever: Retriever, photos: Sequence[str], progress: bool) -> None: ...
    def map(self, retriever: Retriever, task: Task, batches: Sequence[Sequence[str]]) -> Iterator[np.ndarray]: ...
    def report(self) -> dict[str, Any]: ...


class LocalExecutor:
    """Everything in this process, on the caller's retriever."""

    where = ""

    def index(self, retriever: Retriever, photos: Sequence[str], progress: bool) -> None:
        retriever.index(list(photos), ids=list(photos), progress=progress)

    def map(self, retriever: Retriever, task: Task, batches: Sequence[Sequence[str]]) -> Iterator[np.ndarray]:
        for batch in batches:
            yield task(retriever, batch)

    def report(self) -> dict[str, Any]:
        return {}
