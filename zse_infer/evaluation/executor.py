"""Where an evaluation's work runs (docs/evaluation.md): here, or on Ray (``RayExecutor``, chosen where the job starts,
so nothing here imports :mod:`zse_infer.distributed`); tasks are small picklable objects any executor can ship."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from ..runtime.retriever import Retriever

#: one unit of work: (the retriever of whoever runs it, one batch of image paths) -> an array
Task = Callable[[Retriever, Sequence[str]], np.ndarray]


class Executor(Protocol):
    """Runs indexing and per-batch tasks: ``map`` yields results in batch order, ``report`` adds to the JSON report."""

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
        yield from (task(retriever, batch) for batch in batches)

    def report(self) -> dict[str, Any]:
        return {}
