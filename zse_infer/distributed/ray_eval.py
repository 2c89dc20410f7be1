"""Evaluation on Ray: query sketches spread over actors, the same metrics as one process.

Each actor opens one runtime and the shared gallery (pinned to the version the driver labelled)
and, for one batch of sketches at a time, runs the protocol's own :func:`ranking_distances`
(stage 1 and stage 2, the searcher's ranking functions). The driver feeds the distance rows,
in query order, to the same :class:`~zse_infer.evaluation.metrics.RankingMetrics` a single
process uses, so the metrics are those of ``zse eval`` to the last bit: the batches are cut
exactly as :func:`~zse_infer.evaluation.protocol.evaluate` cuts them.

The gallery folder must be readable by every actor at the same path (a shared file system);
``zse eval --ray`` without ``--gallery`` uses a temporary folder on the driver, which only a
cluster on this machine can read.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np

from ..errors import BackendError, GalleryError, ImageError, InputError, ZseError
from ..evaluation.datasets import EvalSet
from ..evaluation.metrics import RankingMetrics
from ..evaluation.protocol import checked_ranking, evaluation_report, gallery_labels, ranking_distances
from .ray_index import RayOptions, _first_line
from .ray_setup import connect, default_actors, ordered_quiet_data, ray_module
from .runtime_spec import RuntimeSpec


class EvalActor:
    """Ray actor: one runtime and the gallery at one version; distances for batches of sketches."""

    def __init__(self, spec: RuntimeSpec, gallery: str, version: int, ranking: str, rerank: int):
        self.retriever = spec.retriever(gallery)
        if self.retriever.gallery.version != version:
            raise GalleryError(f"{gallery}: changed during evaluation (version {self.retriever.gallery.version}, "
                               f"the driver labelled version {version}); evaluate a gallery nothing writes to")
        self.ranking, self.rerank = ranking, rerank

    def __call__(self, batch):
        import pyarrow as pa

        out = []
        for row in batch.to_pylist():
            item = {"q": row["q"], "data": b"", "dtype": "", "shape": [], "error_source": None, "error": None}
            try:
                tokens = self.retriever.encode(row["paths"], "sketch")
                distance = ranking_distances(self.retriever, tokens, self.ranking, self.rerank)
                item.update(data=distance.tobytes(), dtype=distance.dtype.str, shape=list(distance.shape))
            except ImageError as exc:  # a bad sketch stops the run, as in one process
                item.update(error_source=exc.source, error=exc.reason)
            except ZseError as exc:
                item.update(error=str(exc))
            out.append(item)
        return pa.Table.from_pylist(out, schema=pa.schema([
            ("q", pa.int64()), ("data", pa.large_binary()), ("dtype", pa.string()), ("shape", pa.list_(pa.int64())),
            ("error_source", pa.string()), ("error", pa.string()),
        ]))


def evaluate_on_ray(
    retriever,
    eval_set: EvalSet,
    ranking: str = "two-stage",
    rerank: int | None = None,
    ks: Iterable[int] = (),
    batch_size: int = 16,
    index: bool = True,
    progress: bool = True,
    ties: str = "official",
    options: RayOptions | None = None,
) -> dict[str, Any]:
    """:func:`~zse_infer.evaluation.protocol.evaluate` with the queries spread over Ray actors
    (and, with ``index=True``, the photos indexed on Ray first)."""
    options = options or RayOptions()
    rerank = checked_ranking(retriever, ranking, rerank)
    if batch_size < 1:
        raise InputError(f"batch_size: received {batch_size}, expected >= 1")
    ray = ray_module("evaluating on Ray (--ray)")
    started = time.perf_counter()
    ray_start = connect(options.address, options.num_cpus, "evaluating on Ray (--ray)")
    if index:
        from .ray_index import index_on_ray

        paths = [str(p) for p in eval_set.photo_paths]
        index_on_ray(retriever, paths, ids=paths, progress=progress, options=options)
    labels = gallery_labels(retriever, eval_set)
    metrics = RankingMetrics(labels, ks=ks, ties=ties)
    sketches = [str(p) for p in eval_set.sketch_paths]
    rows = [{"q": q, "paths": sketches[s : s + batch_size]} for q, s in enumerate(range(0, len(sketches), batch_size))]
    actors = min(options.actors or default_actors(options.gpus_per_actor, options.cpus_per_actor), len(rows))
    spec = RuntimeSpec.of(retriever, threads=max(1, int(options.cpus_per_actor)))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(sketches), desc=f"evaluating ({ranking}) on Ray", unit="sketch", disable=not progress)
    with ordered_quiet_data(ray):  # rows in query order
        try:
            ds = ray.data.from_items(rows, override_num_blocks=len(rows))
            ds = ds.map_batches(EvalActor, fn_constructor_args=(spec, str(retriever.gallery.root), retriever.gallery.version, ranking, rerank),
                                batch_size=1, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=actors),
                                num_gpus=options.gpus_per_actor or None, num_cpus=options.cpus_per_actor)
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for out in table.to_pylist():
                    if out["error"] is not None:
                        if out["error_source"] is not None:
                            raise ImageError(out["error_source"], out["error"])
                        raise InputError(out["error"])
                    distance = np.frombuffer(out["data"], np.dtype(out["dtype"])).reshape(out["shape"])
                    start = out["q"] * batch_size
                    metrics.update(distance, eval_set.sketch_labels[start : start + len(distance)])
                    bar.update(len(distance))
        except ray.exceptions.RayError as exc:
            raise BackendError(f"the Ray evaluation job failed ({type(exc).__name__}: {_first_line(exc)})") from exc
        finally:
            bar.close()
    return evaluation_report(retriever, eval_set, ranking, rerank, metrics, started,
                             ray={"actors": actors, "start_s": round(ray_start, 3)})
