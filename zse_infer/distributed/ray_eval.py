"""Evaluation on Ray: query batches over actors, each with one runtime and the gallery at the driver's version."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import BackendError, GalleryError, ImageError, InputError, ZseError
from ..evaluation.executor import Task
from ..runtime.retriever import Retriever
from .ray_index import RayIndexExecutor, RayOptions
from .ray_setup import actor_pool, connect, default_actors, job_failed, ordered_quiet_data, ray_module
from .runtime_spec import RuntimeSpec

__all__ = ["RayExecutor", "RayOptions"]

_PURPOSE = "evaluating on Ray (--ray)"


class TaskActor:
    """Ray actor: one runtime and the gallery at one version; ``task`` on each batch of paths."""

    def __init__(self, spec: RuntimeSpec, gallery: str, version: int, task: Task, storage_options: dict | None = None):
        self.retriever = spec.retriever(gallery, storage_options)
        if (opened := self.retriever.gallery.version) != version:
            labelled = f"the driver labelled version {version}); evaluate a gallery nothing writes to"
            raise GalleryError(f"{gallery}: changed during evaluation (version {opened}, {labelled}")
        self.task = task

    def __call__(self, batch):
        import pyarrow as pa

        out = []
        for row in batch.to_pylist():
            item = {"b": row["b"], "data": b"", "dtype": "", "shape": [], "error_source": None, "error": None}
            try:
                result = np.ascontiguousarray(self.task(self.retriever, row["paths"]))
                item.update(data=result.tobytes(), dtype=result.dtype.str, shape=list(result.shape))
            except ImageError as exc:  # a bad sketch stops the run, as in one process
                item.update(error_source=exc.source, error=exc.reason)
            except ZseError as exc:
                item.update(error=str(exc))
            out.append(item)
        fields = [("b", pa.int64()), ("data", pa.large_binary()), ("dtype", pa.string())]
        fields += [("shape", pa.list_(pa.int64())), ("error_source", pa.string()), ("error", pa.string())]
        return pa.Table.from_pylist(out, schema=pa.schema(fields))


class RayExecutor:
    """The evaluation loop's executor on Ray, connecting on first use; reports ``{"ray": {"actors", "start_s"}}``."""

    where = " on Ray"

    def __init__(self, options: RayOptions | None = None):
        self.options = options or RayOptions()
        self._start_s: float | None = None
        self._actors = 0

    def _ray(self):
        ray = ray_module(_PURPOSE)
        seconds = connect(self.options.address, self.options.num_cpus, _PURPOSE)
        if self._start_s is None:
            self._start_s = seconds
        return ray

    def index(self, retriever: Retriever, photos: Sequence[str], progress: bool) -> None:
        self._ray()
        retriever.index(list(photos), ids=list(photos), progress=progress, executor=RayIndexExecutor(self.options))

    def map(self, retriever: Retriever, task: Task, batches: Sequence[Sequence[str]]) -> Iterator[np.ndarray]:
        ray = self._ray()
        rows = [{"b": b, "paths": list(batch)} for b, batch in enumerate(batches)]
        if not rows:
            return
        options = self.options
        self._actors = min(options.actors or default_actors(options.gpus_per_actor, options.cpus_per_actor), len(rows))
        spec = RuntimeSpec.of(retriever, threads=max(1, int(options.cpus_per_actor)))
        gallery = retriever.gallery
        with ordered_quiet_data(ray):  # results in batch order
            try:
                ds = ray.data.from_items(rows, override_num_blocks=len(rows))
                args = (spec, gallery.location.uri, gallery.version, task, gallery.storage_options)
                ds = ds.map_batches(TaskActor, fn_constructor_args=args, **actor_pool(ray, self._actors, options))
                for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                    for out in table.to_pylist():
                        if out["error"] is not None:
                            if out["error_source"] is not None:
                                raise ImageError(out["error_source"], out["error"])
                            raise InputError(out["error"])
                        yield np.frombuffer(out["data"], np.dtype(out["dtype"])).reshape(out["shape"])
            except ray.exceptions.RayError as exc:
                raise BackendError(job_failed("evaluation", exc)) from exc

    def report(self) -> dict[str, Any]:
        return {"ray": {"actors": self._actors, "start_s": round(self._start_s or 0.0, 3)}}
