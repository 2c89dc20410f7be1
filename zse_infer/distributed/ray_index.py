"""Indexing on Ray Data: the indexer's reader -> encoder -> writer, with the encoder spread out.

* reader (driver): :meth:`Indexer.plan` as in a single process: what is stored and unchanged
  is skipped, changed files are replaced. The photo list becomes a Ray dataset of *encoder
  batches* (the same chunks a single process encodes, so every photo is encoded in the same
  company and the tokens are bit-identical);
* decode + preprocess: parallel Ray tasks (``map_batches``), one CPU each;
* encoder: a pool of actors (``concurrency=``), each holding one runtime session opened from
  the export folder (``num_gpus=1`` per actor on a GPU cluster, CPU actors otherwise);
* writer (driver): one gallery commit per ``commit_size`` photos through the gallery store's
  own ``append``, in photo order.

Why the driver commits through the store rather than lance-ray's ``write_lance`` from the
workers: a commit per batch is what makes a killed job resumable (committed batches stay and a
re-run skips them, exactly as for a single process), and the store's append is the one place
that knows the gallery's schema, codec (trained tables), replacement of changed photos and
conflict handling beside other writers. ``write_lance`` commits once at the end of the job (a
killed job keeps nothing) and would need that logic duplicated. The cost: tokens travel to the
driver (tens of KB to ~300 KB a photo); the model work, which dominates, stays on the workers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..errors import BackendError, ImageError, InputError, ZseError
from ..manifest import ENCODER_INPUT, ENCODER_OUTPUT
from ..preprocess import ImageSource, describe_source, load_image, source_path
from ..runtime.indexer import COMMIT_SIZE, IndexReport
from .ray_setup import connect, default_actors, ordered_quiet_data, ray_module
from .runtime_spec import RuntimeSpec

_log = logging.getLogger(__name__)

#: bytes a decode task asks for: its worker process (~140 MB with numpy, PIL and Lance loaded,
#: as Ray Data measured here) plus a batch of pixels (~20 MB at 224 px, batch 32)
DECODE_MEMORY = 256 * 2**20


@dataclass
class RayOptions:
    """Where and how wide to run. ``address``: see :func:`~.ray_setup.connect`. ``actors``:
    encoder actors (default: one per GPU, or one per ``cpus_per_actor`` CPUs less one).
    ``num_cpus`` only sizes a local cluster started by this call."""

    address: str | None = None
    actors: int | None = None
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    num_cpus: int | None = None
    timings: dict = field(default_factory=dict)  # filled in: "ray_start_s"


# ---------------------------------------------------------------------- the worker side
def _pixels_table(rows: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("b", pa.int64()), ("ok", pa.list_(pa.int32())), ("data", pa.large_binary()), ("shape", pa.list_(pa.int64())),
        ("err_at", pa.list_(pa.int32())), ("err_reason", pa.list_(pa.string())), ("err_message", pa.list_(pa.string())),
    ]))


def decode_batches(batch, config):
    """Ray task: each row is one encoder batch of paths -> its preprocessed pixels (float32
    bytes) and, for files that failed, the reason (the error itself does not cross processes)."""
    out = []
    for row in batch.to_pylist():
        pixels, ok, err_at, reasons, messages = [], [], [], [], []
        for j, path in enumerate(row["paths"]):
            try:
                pixels.append(load_image(path, config))
                ok.append(j)
            except ZseError as exc:
                err_at.append(j)
                reasons.append(getattr(exc, "reason", str(exc)))
                messages.append(str(exc))
        stacked = np.stack(pixels) if pixels else np.zeros((0,), np.float32)
        out.append({"b": row["b"], "ok": ok, "data": stacked.tobytes(), "shape": list(stacked.shape),
                    "err_at": err_at, "err_reason": reasons, "err_message": messages})
    return _pixels_table(out)


class EncoderActor:
    """Ray actor: one runtime session, reused for every batch it is given."""

    def __init__(self, spec: RuntimeSpec):
        self.manifest, self.runners = spec.runners()

    def __call__(self, batch):
        out = []
        for row in batch.to_pylist():
            if row["ok"]:
                pixels = np.frombuffer(row["data"], np.float32).reshape(row["shape"])
                tokens = np.ascontiguousarray(self.runners.encoder.run({ENCODER_INPUT: pixels})[ENCODER_OUTPUT], np.float32)
                row["data"], row["shape"] = tokens.tobytes(), list(tokens.shape)
            out.append(row)
        return _pixels_table(out)


# ---------------------------------------------------------------------- the driver side
def plan_batches(todo: list, commit_size: int, batch: int) -> list[dict]:
    """Encoder batches inside commit chunks, exactly as :meth:`Indexer.encode` cuts them."""
    rows = []
    for c0 in range(0, len(todo), commit_size):
        chunk = todo[c0 : c0 + commit_size]
        for b0 in range(0, len(chunk), batch):
            rows.append({"b": len(rows), "start": c0 + b0, "commit": c0 // commit_size,
                         "paths": [str(source_path(item[0])) for item in chunk[b0 : b0 + batch]]})
    return rows


def index_on_ray(
    retriever,
    photos: ImageSource | Iterable[ImageSource],
    ids: Sequence[str] | None = None,
    batch_size: int | None = None,
    on_error: str = "raise",
    progress: bool = True,
    commit_size: int = COMMIT_SIZE,
    options: RayOptions | None = None,
) -> IndexReport:
    """:meth:`Retriever.index` on a Ray cluster; the same gallery, token for token."""
    options = options or RayOptions()
    batch = retriever.indexer.batch_size(on_error, batch_size, commit_size)
    ray = ray_module("indexing on Ray (--ray)")
    indexer = retriever.indexer
    todo, skipped = indexer.plan(photos, ids)
    report = IndexReport(skipped_existing=skipped)
    memory = [describe_source(item[0]) for item in todo if source_path(item[0]) is None]
    if memory:
        raise InputError(f"photos: received an in-memory image ({memory[0]}); Ray workers read photos by path: pass files")
    if not todo:
        return report
    options.timings["ray_start_s"] = connect(options.address, options.num_cpus, "indexing on Ray (--ray)")
    rows = plan_batches(todo, commit_size, batch)
    actors = options.actors or default_actors(options.gpus_per_actor, options.cpus_per_actor)
    spec = RuntimeSpec.of(retriever, threads=max(1, int(options.cpus_per_actor)))
    from tqdm.auto import tqdm

    started = time.time()
    bar = tqdm(total=len(todo), desc=f"indexing on Ray ({actors} encoder actor{'s' * (actors > 1)})", unit="photo", disable=not progress)
    with ordered_quiet_data(ray):  # batches reach the writer in photo order: commits (and row ids) as in one process
        try:
            ds = ray.data.from_items(rows, override_num_blocks=len(rows))
            # The memory request (a batch of pixels, with room) also keeps Ray from fusing the decode
            # tasks into the encoder actors: it fuses operators whose resource requests are equal,
            # and a fused actor would decode and encode in turn instead of side by side.
            ds = ds.map_batches(decode_batches, fn_kwargs={"config": retriever.manifest.preprocess["photo"]},
                                batch_size=1, batch_format="pyarrow", num_cpus=1, memory=DECODE_MEMORY)
            ds = ds.map_batches(EncoderActor, fn_constructor_kwargs={"spec": spec}, batch_size=1, batch_format="pyarrow",
                                compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=options.gpus_per_actor or None,
                                num_cpus=options.cpus_per_actor)
            _write_in_order(ds, rows, todo, indexer, on_error, report, bar, retriever.manifest.model)
        except ray.exceptions.RayError as exc:
            raise BackendError(f"the Ray indexing job failed ({type(exc).__name__}: {_first_line(exc)}); "
                               f"the {report.added} photos committed before it are kept: re-run to continue") from exc
        finally:
            bar.close()
            retriever.gallery.sync(since=started)  # Lance does not fsync: make what this job committed durable
    if report.failed:
        _log.warning("indexing skipped %d unreadable photos (listed in the report)", len(report.failed))
    return report


def _write_in_order(ds, rows, todo, indexer, on_error, report, bar, model) -> None:
    """Commit each chunk of ``commit_size`` photos once all its encoder batches have arrived."""
    per_commit = np.bincount([r["commit"] for r in rows])
    pending: list[tuple[dict, dict]] = []
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for out in table.to_pylist():
            row = rows[out["b"]]
            for j, reason, message in zip(out["err_at"], out["err_reason"], out["err_message"]):
                source = todo[row["start"] + j][0]
                if on_error == "raise":  # batches committed before this one stay, as in one process
                    raise ImageError(describe_source(source), reason)
                report.failed.append((describe_source(source), message))
            pending.append((row, out))
            bar.update(len(row["paths"]))
            if len(pending) == per_commit[row["commit"]]:
                _commit(pending, todo, indexer, report, model)
                pending = []


def _commit(pending, todo, indexer, report, model) -> None:
    kept, tokens = [], []
    for row, out in pending:
        if out["ok"]:
            tokens.append(np.frombuffer(out["data"], np.float32).reshape(-1, model.num_tokens, model.width))
            kept.extend(todo[row["start"] + j] for j in out["ok"])
    if kept:
        indexer.commit(np.concatenate(tokens), kept, report)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
