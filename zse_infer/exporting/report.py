"""``zse-export validate`` and ``inspect`` of an export folder: no checkpoint or torch (``parity_inputs.npz`` holds
the PyTorch outputs); TensorRT engines are compared against ONNX Runtime CPU and the PyTorch reference."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExportError
from ..manifest import Manifest
from . import extra_graphs, validation


@dataclass
class ParityRow:
    target: str  # graph id or engine file
    kind: str  # "onnx" or "tensorrt"
    precision: str
    errors: dict[str, float]  # vs the PyTorch reference
    tolerance: dict[str, float]
    vs_ort: dict[str, float] = field(default_factory=dict)  # engines only: vs ORT CPU on the source graph

    @property
    def passed(self) -> bool:
        return all(err <= self.tolerance.get(name, float("inf")) for name, err in self.errors.items())

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "passed": self.passed}


def _tolerance(manifest: Manifest, precision: str) -> dict[str, float]:
    tolerances = manifest.extra.get("tolerances") or manifest.extra.get("recipe", {}).get("tolerances", {})
    if precision not in tolerances:
        raise ExportError(f"manifest has no tolerances for precision {precision!r}")
    return dict(tolerances[precision])


def validate_folder(folder: str | os.PathLike, engines: bool = False, graphs: bool = True) -> list[ParityRow]:
    """Parity of every graph (ORT CPU) and, with ``engines``, every engine valid on this GPU, on the built-in inputs."""
    folder = Path(folder)
    manifest = Manifest.load(folder, verify=True)  # IntegrityError names a tampered file
    data, batch_sizes = validation.load_reference(folder / manifest.extra.get("parity_inputs", validation.PARITY_FILE))
    ort = lambda graph: validation.ort_cpu_runner(folder / graph.file)  # noqa: E731
    rows = []
    for gid, g in manifest.graphs.items() if graphs else ():
        if g.role in extra_graphs.EXTRA_ROLES:
            errors = extra_graphs.folder_parity(manifest, g.role, data, batch_sizes, ort, g.variant)
        else:
            errors = validation.measure_parity(ort(g), g.role, data, batch_sizes)
        rows.append(ParityRow(gid, "onnx", g.precision, errors, _tolerance(manifest, g.precision)))
    if engines:
        rows += _validate_engines(folder, manifest, data, batch_sizes)
    return rows


def _validate_engines(folder: Path, manifest: Manifest, data, batch_sizes) -> list[ParityRow]:
    from ..runtime.runners.engine_cache import find_engine
    from ..runtime.runners.engine_locate import engine_batch
    from ..runtime.runners.tensorrt_backend import TrtRunner
    from ..runtime.runners.trt_environment import require_tensorrt

    _, env = require_tensorrt()
    key = (str(env.version), str(env.compute_capability), str(env.device or ""))
    usable = [e for e in manifest.engines if find_engine(manifest, e["graph"], *key) is e]
    if not usable:
        built = f"TensorRT {env.version} on compute capability {env.compute_capability} ({env.device})"
        raise ExportError(f"{folder}: no engine built for {built}; run `zse-export build {folder}` first")
    manifest.verify(folder, [e["file"] for e in usable])

    def trt_run(entry):
        graph = manifest.graphs[entry["graph"]]
        return TrtRunner(graph, folder / entry["file"], engine_batch=engine_batch(entry, graph)).run

    rows = []
    by_graph = {e["graph"]: e for e in usable}  # one engine per role (engines.build)
    for entry in usable:
        graph = manifest.graphs[entry["graph"]]
        if graph.role in extra_graphs.RELATION_ROLES:
            continue  # checked together below
        fits = [b for b in batch_sizes if entry["batch"]["min"] <= b <= entry["batch"]["max"]]
        run = trt_run(entry)
        errors = validation.measure_parity(run, graph.role, data, fits)
        # ORT CPU on the source graph, at the largest batch: rows are independent, so its first b rows
        # are the reference for batch b.
        feeds = {n: data[n][: max(fits)] for n in validation.ROLE_INPUTS[graph.role]}
        ort_data = {**data, **validation.ort_cpu_runner(folder / graph.file)(feeds)}
        vs_ort = validation.measure_parity(run, graph.role, ort_data, fits)
        tolerance = _tolerance(manifest, graph.precision)
        rows.append(ParityRow(entry["file"], "tensorrt", graph.precision, errors, tolerance, vs_ort))
    if set(extra_graphs.RELATION_ROLES) <= {manifest.graphs[gid].role for gid in by_graph}:
        # The three restructured relation engines, composed (sketch side, photo side, pair) like the ONNX graphs.
        engine_of = lambda graph: trt_run(by_graph[graph.id])  # noqa: E731
        errors = extra_graphs.folder_parity(manifest, "relation_pair", data, batch_sizes, engine_of, "trt")
        tolerance = {"score": _tolerance(manifest, "fp32")["score"]}
        rows.append(ParityRow("relation_sketch/photo/pair engines (composed)", "tensorrt", "fp32", errors, tolerance))
    return rows


def format_rows(rows: list[ParityRow]) -> str:
    lines = [f"{'target':<58} {'kind':<9} {'prec':<5} {'max abs error vs PyTorch (tolerance)':<44} result"]
    for r in rows:
        errs = ", ".join(f"{k} {v:.2e} ({r.tolerance.get(k, float('nan')):.0e})" for k, v in r.errors.items())
        if r.vs_ort:
            errs += "; vs ORT CPU " + ", ".join(f"{k} {v:.2e}" for k, v in r.vs_ort.items())
        lines.append(f"{r.target:<58} {r.kind:<9} {r.precision:<5} {errs:<44} {'ok' if r.passed else 'FAIL'}")
    return "\n".join(lines)


def describe_folder(folder: str | os.PathLike, verify: bool = True) -> str:
    """A human-readable summary of an export folder's manifest (hashes verified unless ``verify=False``)."""
    folder, m = Path(folder), Manifest.load(folder, verify=verify)
    src = m.source_checkpoint
    out = [
        f"export folder {folder}  (schema {m.schema_version}, created {m.created}, opset {m.opset})",
        f"model {m.model.name}: {m.model.encoder.depth} blocks, width {m.model.width}, {m.model.num_tokens} tokens",
        f"checkpoint {src.get('path')} ({src.get('layout')}, sha256 {str(src.get('sha256', ''))[:16]}...)",
        "versions " + ", ".join(f"{k} {v}" for k, v in m.versions.items()),
        "",
        f"{'graph':<26} {'prec':<5} {'variant':<10} {'MB':>7} {'batch':>10}  parity / fused nodes",
    ]
    for gid, g in m.graphs.items():
        size = (folder / g.file).stat().st_size / 1e6 if (folder / g.file).is_file() else float("nan")
        parity = ", ".join(f"{k} {v:.1e}" for k, v in g.parity.items())
        fused = ", ".join(f"{k} x{v}" for k, v in g.fused_nodes.items())
        batch = f"{g.batch.min}/{g.batch.opt}/{g.batch.max}"
        row = f"{gid:<26} {g.precision:<5} {g.variant:<10} {size:>7.1f} {batch:>10}  {parity}"
        out.append(row + (f"; {fused}" if fused else ""))
    out.append("")
    for e in m.engines:
        key, batch = e.get("key", {}), e.get("batch", {})
        trt = f"TensorRT {key.get('tensorrt_version')}, sm {key.get('compute_capability')}"
        where = f"{key.get('device_name') or e.get('device')}, batch {batch.get('min')}..{batch.get('max')}"
        out.append(f"engine {e['file']}  {trt}, {where}")
    if not m.engines:
        out.append(f"no TensorRT engines ({m.extra.get('tensorrt', {}).get('reason', 'none built')})")
    out.append(f"{len(m.files)} files, sha256 " + ("verified" if verify else "not verified"))
    return "\n".join(out)
