"""Indexing on Ray Data (docs/ray.md): decode tasks, encoder actors writing Lance fragments, commits by the driver."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import BackendError, ImageError, InputError, ZseError
from ..manifest import ENCODER_INPUT, ENCODER_OUTPUT
from ..runtime.gallery.store import Gallery, new_key
from ..runtime.indexer import Encoded, IndexReport, photo_batch, stored_path
from ..runtime.object_photos import load_photo, photo_name, photo_path
from .ray_setup import actor_pool, connect, default_actors, job_failed, ordered_quiet_data, ray_module
from .runtime_spec import RuntimeSpec

_log = logging.getLogger(__name__)

#: a decode task's bytes: its worker (~140 MB with numpy, PIL, Lance, as Ray measured) + pixels (~20 MB: 32 at 224 px)
DECODE_MEMORY = 256 * 2**20


@dataclass
class RayOptions:
    """Where and how wide to run (see :func:`~.ray_setup.connect` and :func:`~.ray_setup.default_actors`)."""

    address: str | None = None
    actors: int | None = None
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    num_cpus: int | None = None
    timings: dict = field(default_factory=dict)  # filled in: "ray_start_s", "driver_bytes" (what reached the driver)
    #: "workers": encoder actors write Lance fragments, the driver commits metadata; "driver":
    #: tokens travel to the driver, which commits them (forced for untrained codecs, projections)
    write: str = "workers"


# ---------------------------------------------------------------------- the worker side
def _pixels_table(rows: list[dict]):
    import pyarrow as pa

    indices, texts = pa.list_(pa.int32()), pa.list_(pa.string())
    fields = [("b", pa.int64()), ("ok", indices), ("data", pa.large_binary()), ("shape", pa.list_(pa.int64()))]
    fields += [("err_at", indices), ("err_reason", texts), ("err_message", texts), ("fragments", texts)]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def decode_batches(batch, config, storage_options=None):
    """Ray task: each row's paths -> their pixels (float32 bytes), and each failure's reason (errors stay here)."""
    out = []
    for row in batch.to_pylist():
        pixels, ok, err_at, reasons, messages = [], [], [], [], []
        for j, path in enumerate(row["paths"]):
            try:
                pixels.append(load_photo(path, config, storage_options or {}))  # files and s3:// URIs
                ok.append(j)
            except ZseError as exc:
                err_at.append(j)
                reasons.append(getattr(exc, "reason", str(exc)))
                messages.append(str(exc))
        stacked = np.stack(pixels) if pixels else np.zeros((0,), np.float32)
        item = {"b": row["b"], "ok": ok, "data": stacked.tobytes(), "shape": list(stacked.shape), "err_at": err_at}
        out.append({**item, "err_reason": reasons, "err_message": messages, "fragments": None})
    return _pixels_table(out)


class EncoderActor:
    """Ray actor, one runtime for all batches: with a gallery, each written there as a Lance fragment; else tokens."""

    def __init__(self, spec: RuntimeSpec, gallery: tuple[str, dict] | None = None, rows: dict | None = None):
        self.manifest, self.runners = spec.runners()
        self.gallery = Gallery.open(gallery[0], storage_options=gallery[1]) if gallery is not None else None
        self.rows = rows or {}  # b -> what the rows of that batch are (ids, stored paths, fingerprints, commit key)

    def __call__(self, batch):
        out = []
        for row in batch.to_pylist():
            if row["ok"]:
                pixels = np.frombuffer(row["data"], np.float32).reshape(row["shape"])
                encoded = self.runners.encoder.run({ENCODER_INPUT: pixels})[ENCODER_OUTPUT]
                tokens = np.ascontiguousarray(encoded, np.float32)
                if self.gallery is None:
                    row["data"], row["shape"] = tokens.tobytes(), list(tokens.shape)
                else:
                    row["fragments"], row["data"], row["shape"] = self._write(self.gallery, row, tokens), b"", []
            out.append(row)
        return _pixels_table(out)

    def _write(self, gallery: Gallery, row: dict, tokens: np.ndarray) -> list[str]:
        meta, ok = self.rows[row["b"]], row["ok"]
        ids, stored, fps = ([meta[name][j] for j in ok] for name in ("ids", "stored", "fps"))
        return gallery.write_fragments(photo_batch(ids, stored, fps, tokens, gallery.codec.stores_tokens), meta["key"])


# ---------------------------------------------------------------------- the driver side
class RayIndexExecutor:
    """Encodes an indexing run's chunks on Ray: ``Retriever.index(executor=...)`` or ``zse index --ray``."""

    where = " on Ray"

    def __init__(self, options: RayOptions | None = None):
        self.options = options or RayOptions()
        if self.options.write not in ("workers", "driver"):
            raise InputError(f"write: received {self.options.write!r}, expected 'workers' or 'driver'")

    def check(self, todo: list) -> None:
        memory = [photo_name(item[0]) for item in todo if photo_path(item[0]) is None]
        if memory:
            message = f"received an in-memory image ({memory[0]}); Ray workers read photos by path: pass files"
            raise InputError(f"photos: {message}")

    def encode(
        self, indexer, chunks: list[list], batch: int, on_error: str, report: IndexReport, bar
    ) -> Iterator[Encoded]:
        ray = ray_module("indexing on Ray (--ray)")
        options = self.options
        options.timings["ray_start_s"] = connect(options.address, options.num_cpus, "indexing on Ray (--ray)")
        gallery = indexer.gallery
        workers_write = options.write == "workers" and not gallery.codec.needs_training and not gallery.projections
        keys = [new_key() for _ in chunks]
        rows, meta = plan_batches(chunks, batch, keys)
        actors = options.actors or default_actors(options.gpus_per_actor, options.cpus_per_actor)
        bar.set_description(f"indexing on Ray ({actors} encoder actor{'s' * (actors > 1)})")
        spec = RuntimeSpec.of_indexer(indexer, threads=max(1, int(options.cpus_per_actor)))
        target = (gallery.location.uri, gallery.storage_options) if workers_write else None
        decode = {"config": indexer.manifest.preprocess["photo"], "storage_options": gallery.storage_options}
        encoder = {"spec": spec, "gallery": target, "rows": meta if target else None}
        options.timings["driver_bytes"] = 0
        # batches reach the driver in photo order: commits (and row ids) as in one process
        with ordered_quiet_data(ray):
            try:
                ds = ray.data.from_items(rows, override_num_blocks=len(rows))
                # The memory request also keeps Ray from fusing the decode tasks into the encoder actors (it fuses
                # operators with equal resource requests): a fused actor would decode, then encode, not both at once.
                one_row = {"batch_size": 1, "batch_format": "pyarrow"}
                ds = ds.map_batches(decode_batches, fn_kwargs=decode, num_cpus=1, memory=DECODE_MEMORY, **one_row)
                ds = ds.map_batches(EncoderActor, fn_constructor_kwargs=encoder, **actor_pool(ray, actors, options))
                yield from _in_order(ds, rows, chunks, keys, on_error, report, bar, indexer.manifest.model, options)
            except ray.exceptions.RayError as exc:
                kept = f"the {report.added} photos committed before it are kept: re-run to continue"
                raise BackendError(f"{job_failed('indexing', exc)}; {kept}") from exc
        if report.failed:
            _log.warning("indexing skipped %d unreadable photos (listed in the report)", len(report.failed))


def plan_batches(chunks: list[list], batch: int, keys: list[int]) -> tuple[list[dict], dict[int, dict]]:
    """Encoder batches, cut as :meth:`Indexer.encode` cuts them: rows for Ray (paths), and what writers need."""
    rows: list[dict] = []
    meta: dict[int, dict] = {}
    for c, chunk in enumerate(chunks):
        for b0 in range(0, len(chunk), batch):
            items = chunk[b0 : b0 + batch]
            b = len(rows)
            rows.append({"b": b, "start": b0, "commit": c, "paths": [str(photo_path(item[0])) for item in items]})
            stored, fps = [stored_path(item[0]) for item in items], [tuple(item[2]) for item in items]
            meta[b] = {"ids": [item[1] for item in items], "stored": stored, "fps": fps, "key": keys[c]}
    return rows, meta


def _in_order(ds, rows, chunks, keys, on_error, report, bar, model, options: RayOptions) -> Iterator[Encoded]:
    """One :class:`Encoded` per commit chunk, once all its encoder batches have arrived."""
    per_commit = np.bincount([r["commit"] for r in rows], minlength=len(chunks))
    pending: list[tuple[dict, dict]] = []
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        options.timings["driver_bytes"] += table.nbytes
        for out in table.to_pylist():
            row = rows[out["b"]]
            chunk = chunks[row["commit"]]
            for j, reason, message in zip(out["err_at"], out["err_reason"], out["err_message"], strict=False):
                source = chunk[row["start"] + j][0]
                if on_error == "raise":  # batches committed before this one stay, as in one process
                    raise ImageError(photo_name(source), reason)
                report.failed.append((photo_name(source), message))
            pending.append((row, out))
            bar.update(len(row["paths"]))
            if len(pending) == per_commit[row["commit"]]:
                encoded = _encoded(pending, chunk, keys[row["commit"]], model)
                pending = []
                if encoded.kept:
                    yield encoded


def _encoded(pending, chunk, key, model) -> Encoded:
    kept: list = []
    tokens: list[np.ndarray] = []
    fragments: list[str] = []
    for row, out in pending:
        kept.extend(chunk[row["start"] + j] for j in out["ok"])
        if out["fragments"] is not None:
            fragments.extend(out["fragments"])
        elif out["ok"]:
            tokens.append(np.frombuffer(out["data"], np.float32).reshape(-1, model.num_tokens, model.width))
    if tokens:
        return Encoded(kept, np.concatenate(tokens))
    return Encoded(kept, fragments=fragments, key=key)
