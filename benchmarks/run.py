"""Benchmarks, side by side in one run: ``python benchmarks/run.py [--quick] --out DIR``.

Every figure is measured in this run, on the same inputs, next to the official
computation as the authors run it (``official_reference.py``), and reported as
a ratio to it: machines are shared and noisy, so only ratios measured side by
side mean anything. Warm-up runs are excluded; the median of the repeats is
reported. Each (component, backend) group runs in a fresh child process so
its peak memory is its own.

GPU rows: on a machine with an NVIDIA GPU the same run adds every GPU
backend that can run there (PyTorch on CUDA, ONNX Runtime's CUDA provider,
TensorRT engines built in the run), each in its own child like the CPU rows;
backends that cannot run get a row saying why (``gpu_backends``).

Output in DIR: ``results.json`` (``{"machine": {...}, "records": [...]}``),
``results.md`` (a table) and ``results.png`` (latency vs gallery size per
mode; throughput per backend).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import cpu_peaks  # noqa: E402 - after the sys.path setup above

_log = logging.getLogger("benchmarks")

# Query latencies: one run per sketch, at least 7 (median and p95; 3 runs gave medians 1.5-2.6 s for one figure).
FULL = {
    "batches": (1, 8, 32),
    "reranks": (10, 100, 1000),
    "galleries": (1_000, 10_000, 100_000),
    "repeats": 5,
    "queries": 11,
}
QUICK = {"batches": (1, 8), "reranks": (10, 100), "galleries": (1_000, 10_000, 100_000), "repeats": 3, "queries": 7}
#: CPU backends side by side with ONNX Runtime: OpenVINO at f32 and bf16 (bf16 where the CPU has AMX/AVX512-BF16)
OPENVINO = "openvino"


# --------------------------------------------------------------------------- timing helpers


def measure(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Wall times of ``repeats`` calls after ``warmup`` calls (excluded)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def record(
    component: str, backend: str, precision: str, setting: dict, value: float, unit: str, times: list[float], **extra
) -> dict:
    return {
        "component": component,
        "backend": backend,
        "precision": precision,
        **setting,
        "value": value,
        "unit": unit,
        "ratio_vs_official": None,
        "median_s": statistics.median(times) if times else None,
        "times_s": [round(t, 5) for t in times],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **extra,
    }


# --------------------------------------------------------------------------- shared inputs


def make_checkpoint(path: Path, seed: int = 0) -> Path:
    """A full-size model with random weights (speed does not depend on the values), official layout."""
    import torch

    from zse_infer.model import ZseModel, to_official_state_dict

    torch.manual_seed(seed)
    model = ZseModel("zse_vit_b16").eval()
    torch.save({"model": to_official_state_dict(model.state_dict()), "epoch": 0}, path)
    return path


def export(checkpoint: Path, out: Path, fp16: bool, int8: bool, trt: bool = False) -> Path:
    """``trt``: also the TensorRT-shaped graphs (engines are built by :func:`build_gpu_engines`)."""
    from dataclasses import replace

    from zse_infer.exporting import ExportOptions, export_model
    from zse_infer.exporting.recipes import load_recipe

    recipe = replace(
        load_recipe("zse_vit_b16"), variants=("plain", "ort_fused", "trt") if trt else ("plain", "ort_fused")
    )
    options = ExportOptions(fp16=fp16, overwrite=True, engines="never", lint="never")
    if int8:
        options = replace(options, int8=True)
    export_model(checkpoint, out, config="zse_vit_b16", recipe=recipe, options=options)
    return out


# --------------------------------------------------------------------------- child workers


def _threads() -> int:
    return os.cpu_count() or 1


def work_encoder(args: dict) -> list[dict]:
    import numpy as np

    backend, precision, cfg = args["backend"], args["precision"], args["cfg"]
    rng = np.random.default_rng(0)
    if precision == "int8" and (skipped := _int8_untrusted(args, "encoder")):
        return skipped
    run = _encoder_fn(backend, precision, args)
    out = []
    for batch in cfg["batches"]:
        x = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
        times = measure(lambda x=x: run(x), cfg["repeats"])
        out.append(
            record("encoder", backend, precision, {"batch": batch}, batch / statistics.median(times), "images/s", times)
        )
    return out


def _encoder_fn(backend: str, precision: str, args: dict):
    if backend in GPU_BACKENDS:
        return _gpu_encoder_fn(backend, precision, args)
    if backend in ("official", "torch"):
        import torch

        torch.set_num_threads(_threads())
        if backend == "official":
            from official_reference import load_official

            from zse_infer.model import read_checkpoint

            module = load_official(read_checkpoint(args["checkpoint"])[0])[0]
        else:
            from zse_infer.model import load_model

            module = load_model(args["checkpoint"]).encoder

        def run(x):
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()

        return run
    runner = _runner(args["export_dir"], "encoder", precision, backend)
    return lambda x: runner.run({"image": x})


def _runner(export_dir: str, role: str, precision: str, backend: str):
    """An ONNX Runtime (CPU) runner, or for ``openvino*`` an OpenVINO runner (fp32 graph at ``precision``)."""
    if backend.startswith(OPENVINO):
        from zse_infer.manifest import Manifest
        from zse_infer.runtime.runners.openvino_backend import OpenVinoRunner

        graph = Manifest.load(export_dir, verify=False).select_graph(role, ("fp32",), ("plain",))
        return OpenVinoRunner(graph, export_dir, precision, cache_dir=False)  # compile time: the startup rows
    return _ort_runner(export_dir, role, precision, backend)


def _ort_runner(export_dir: str, role: str, precision: str, backend: str):
    from zse_infer.manifest import Manifest
    from zse_infer.runtime.runners.onnxruntime_backend import OrtRunner

    manifest = Manifest.load(export_dir, verify=False)
    variant = "ort_fused" if backend == "onnxruntime-fused" else "plain"
    graph = manifest.select_graph(role, (precision,), (variant,))
    return OrtRunner(graph, export_dir, ["CPUExecutionProvider"])


def _int8_untrusted(args: dict, component: str) -> list[dict]:
    """A note instead of figures where the int8 graphs fail the runtime's check on this CPU (which
    would run fp32 instead): int8 timings are only reported for int8 graphs that give right tokens here."""
    from zse_infer.manifest import Manifest
    from zse_infer.runtime.runners.base import ModelRunners
    from zse_infer.runtime.runners.int8_check import check_int8

    folder = Path(args["export_dir"])
    runners = ModelRunners(
        *(_ort_runner(str(folder), role, "int8", "onnxruntime") for role in ("encoder", "relation_head")),
        "onnxruntime-cpu",
        "int8",
    )
    check = check_int8(folder, Manifest.load(folder, verify=False), runners)
    runners.close()
    _log.info("int8 check: %s", check.reason)
    if check.trusted:
        return []
    return [
        {"component": component, "backend": args["backend"], "precision": "int8", "note": f"skipped: {check.reason}"}
    ]


def work_relation(args: dict) -> list[dict]:
    import numpy as np

    backend, precision, cfg = args["backend"], args["precision"], args["cfg"]
    rng = np.random.default_rng(1)
    if precision == "int8" and (skipped := _int8_untrusted(args, "relation_head")):
        return skipped
    sketch = rng.standard_normal((1, 197, 768)).astype(np.float32)
    out = []
    for rerank in cfg["reranks"]:
        photos = rng.standard_normal((rerank, 197, 768)).astype(np.float32)
        run = _relation_fn(backend, precision, args, sketch, photos)
        times = measure(run, cfg["repeats"])
        out.append(
            record(
                "relation_head",
                backend,
                precision,
                {"rerank": rerank},
                rerank / statistics.median(times),
                "pairs/s",
                times,
            )
        )
    return out


def _relation_fn(backend: str, precision: str, args: dict, sketch, photos):
    import numpy as np

    if backend in GPU_BACKENDS:
        return _gpu_relation_fn(backend, precision, args, sketch, photos)
    if backend in ("official", "torch", "torch-fast", "torch-fast-cached"):
        import torch

        torch.set_num_threads(_threads())
        s, p = torch.from_numpy(sketch), torch.from_numpy(photos)
        from zse_infer.model import read_checkpoint

        state = args.setdefault("_state", read_checkpoint(args["checkpoint"])[0])
        if backend == "official":
            from official_reference import load_official, official_rerank

            head = args.setdefault("_official", load_official(state)[1])
            fn = lambda: official_rerank(head, s, p)  # noqa: E731
        else:
            from zse_infer.model import load_model
            from zse_infer.model.fast_relation import FastRelationHead

            model = args.setdefault("_model", load_model(state))
            if backend == "torch":
                fn = lambda: model.relation_head(s.expand(p.shape[0], -1, -1), p)  # noqa: E731
            else:
                fast = FastRelationHead(model.relation_head).eval()
                if backend == "torch-fast":
                    fn = lambda: fast.score_prepared(fast.prepare_sketch(s), fast.prepare_photos(p))  # noqa: E731
                else:
                    with torch.inference_mode():
                        cached = fast.prepare_photos(p)  # at index time
                    fn = lambda: fast.score_prepared(fast.prepare_sketch(s), cached)  # noqa: E731

        def run():
            with torch.inference_mode():
                return fn()

        return run
    if backend.startswith(("onnxruntime-fast", "openvino-fast")):
        graphs = {
            r: args.setdefault(
                f"_runner_{r}",
                _runner(args["export_dir"], r, precision if backend.startswith(OPENVINO) else "fp32", backend),
            )
            for r in ("relation_sketch", "relation_photo", "relation_pair")
        }
        cached = graphs["relation_photo"].run({"photo_tokens": photos}) if backend.endswith("cached") else None

        def run():
            side = {"sketch_tokens": sketch, **graphs["relation_sketch"].run({"sketch_tokens": sketch})}
            photo_side = cached if cached is not None else graphs["relation_photo"].run({"photo_tokens": photos})
            return graphs["relation_pair"].run({**side, "photo_tokens": photos, **photo_side})

        return run
    runner = args.setdefault(
        f"_runner_{backend}_{precision}", _runner(args["export_dir"], "relation_head", precision, backend)
    )
    tiled = np.ascontiguousarray(np.broadcast_to(sketch, photos.shape))
    return lambda: runner.run({"sketch_tokens": tiled, "photo_tokens": photos})


NEAR = "/photos/near-"  # ids of the synthetic rows that stage 2 reads (real token bytes)


def synthetic_gallery(
    root: Path,
    n: int,
    manifest,
    near,
    per_query: int = 100,
    seed: int = 0,
    projections: bool = False,
    commit: int = 10_000,
) -> Path:
    """A Lance gallery of ``n`` synthetic photos for timing searches with the unit sketch ret-tokens ``near`` (Q, D).

    Near rows (ids ``NEAR...``): ``per_query`` per sketch, ret-tokens close to it (cosine ~0.9), random tokens
    (and projections), committed through ``Gallery.append``: every stage-2 candidate of those sketches is one of
    them, read as real rows are. The other rows: clustered unit ret-tokens (``gallery_scale``'s; far from the
    sketches: stage 1 ranks them, stage 2 never reads them) and all-zero tokens, which Lance stores as constant
    pages (100k real token sets would be 30 GB, 120 GB with projections). Reading rows of a constant page decodes
    the whole page, so timings are only valid while stage 2 stays on the near rows (``work_query`` checks). The
    zero rows are copies of one zero batch's Arrow rows (encoded once, by the store) with new ids and ret-tokens,
    appended with Lance: through the codec's per-row conversions, 100k photos would take minutes."""
    import lance
    import numpy as np
    import pyarrow as pa
    from gallery_scale import clustered, unit_centres

    from zse_infer.runtime.gallery.store import Batch, Gallery
    from zse_infer.runtime.retriever import Retriever
    from zse_infer.vectors import l2_normalize

    shape = (manifest.model.num_tokens, manifest.model.width)
    gallery = Gallery.create(root, shape, Retriever._model_info(manifest), projections=projections, exist_ok=True)
    rng = np.random.default_rng(seed)

    def batch(ids: list[str], ret, fill) -> Batch:
        unknown = np.full(len(ids), -1, np.int64)
        return Batch(
            ids,
            ids,
            unknown,
            unknown,
            ret,
            fill((len(ids), *shape)),
            fill((len(ids), *gallery.proj_shape)) if projections else None,
        )

    for q, centre in enumerate(near[: n // per_query]):
        ret = l2_normalize(centre + 0.5 * rng.standard_normal((per_query, shape[1]), np.float32) / np.sqrt(shape[1]))
        gallery.append(
            batch(
                [f"{NEAR}{q:03d}-{i:04d}.jpg" for i in range(per_query)],
                ret,
                lambda size: rng.standard_normal(size, np.float32),
            )
        )
    start = len(gallery)
    centres = unit_centres(n - start, 100, shape[1], rng)

    def ids_ret(a: int, b: int):
        return [f"/photos/{i:08d}.jpg" for i in range(a, b)], clustered(b - a, centres, rng, 0.6)

    def put(table, name: str, values):
        return table.set_column(table.schema.get_field_index(name), table.schema.field(name), values)

    m = min(n - start, 128)
    if m > 0:
        first = batch(*ids_ret(start, start + m), np.zeros)
        gallery.append(first)
        rows = gallery._arrow(first, 0)
    for a in range(start + m, n, commit):
        ids, ret = ids_ret(a, min(a + commit, n))
        table = pa.concat_tables([rows] * -(-len(ids) // m)).slice(0, len(ids))
        table = put(put(table, "id", pa.array(ids, pa.string())), "path", pa.array(ids, pa.string()))
        table = put(table, "ret", pa.FixedSizeListArray.from_arrays(pa.array(ret.reshape(-1)), shape[1]))
        lance.write_dataset(table, gallery.uri, mode="append")
    return root


def work_query(args: dict) -> list[dict]:
    """Query latency (sketch encoding + stage 1 + stage 2) on synthetic galleries of ``args["gallery"]``
    photos: stage 1 only, two-stage (photo-side projections computed per candidate) and two-stage
    with the projections read from the gallery. Stage times come from the searcher's own timing."""
    import numpy as np

    from zse_infer.manifest import Manifest
    from zse_infer.runtime.retriever import Retriever
    from zse_infer.vectors import l2_normalize

    cfg, rerank, backend = args["cfg"], 100, args.get("backend", "onnxruntime-cpu")
    manifest = Manifest.load(args["export_dir"], verify=False)
    rng = np.random.default_rng(2)
    sketches = [np.where(rng.random((224, 224, 3)) < 0.05, 0, 255).astype(np.uint8) for _ in range(cfg["queries"])]
    out = []
    with tempfile.TemporaryDirectory(dir=args["tmp"]) as tmp:
        # Opened (their galleries created empty) before the rows are written, so that the sketches'
        # ret-tokens can place the near rows; refresh() then sees what synthetic_gallery wrote.
        retrievers = {
            p: Retriever.load(
                args["export_dir"],
                gallery=Path(tmp) / f"g{int(p)}",
                create=True,
                projections=p,
                backend=backend,
                verify=False,
            )
            for p in (False, True)
        }
        near = l2_normalize(retrievers[False].encode(sketches, "sketch")[:, 0])
        for p, x in retrievers.items():
            synthetic_gallery(x.gallery.root, args["gallery"], manifest, near, per_query=rerank, projections=p)
            x.refresh()
            x.search(sketches[0], k=10, rerank=10)  # warm-up (stage-1 index, sessions)
        for mode, depth, x in (
            ("stage1", 0, retrievers[False]),
            ("two_stage", rerank, retrievers[False]),
            ("two_stage_stored", rerank, retrievers[True]),
        ):
            times, stages = [], []
            for sketch in sketches:
                timing: dict[str, float] = {}
                t0 = time.perf_counter()
                tokens = x.encode([sketch], "sketch")[0]
                x.search_tokens(tokens, k=10, rerank=depth, timing=timing)
                times.append(time.perf_counter() - t0)
                stages.append(timing)
                if depth and not all(h.id.startswith(NEAR) for h in x.search_tokens(tokens, k=depth, rerank=0)):
                    raise RuntimeError(
                        "stage 2 read rows with all-zero tokens (constant Lance pages): the timing is not valid"
                    )
            out.append(
                record(
                    "query",
                    x.backend,
                    x.runners.precision,
                    {"gallery": args["gallery"], "mode": mode},
                    statistics.median(times) * 1000,
                    "ms",
                    times,
                    p95_ms=float(np.percentile(times, 95) * 1000),
                    stage1_ms=statistics.median(t["stage1"] for t in stages) * 1000,
                    stage2_ms=statistics.median(t["stage2"] for t in stages) * 1000,
                    stage1_index=x.searcher.stage1.index_for(x.gallery.snapshot).kind,
                )
            )
        for x in retrievers.values():
            x.close()
    return out


# --------------------------------------------------------------------------- GPU workers
#
# Each GPU figure includes the host<->device copies of its inputs and outputs, as
# a caller handing numpy arrays would pay them (the CPU rows' inputs are numpy too).

GPU_BACKENDS = ("torch-cuda", "onnxruntime-cuda", "tensorrt", "tensorrt-fast")


from zse_infer.errors import ZseError  # noqa: E402 - after the sys.path setup above


def gpu_backends() -> tuple[list[str], list[dict]]:
    """(GPU backends that can run here, a note row for each that cannot, saying why)."""
    notes, ready = [], []

    def skip(backend: str, why: str) -> None:
        notes.extend(
            [{"component": c, "backend": backend, "note": f"skipped: {why}"} for c in ("encoder", "relation_head")]
        )

    try:
        import torch

        torch_cuda = torch.cuda.is_available()
    except ImportError:
        torch_cuda = False
    if torch_cuda:
        ready.append("torch-cuda")
    else:
        skip("torch-cuda", "no CUDA GPU visible to torch")
    try:
        from zse_infer.runtime.runners.onnxruntime_backend import CUDA_EP, available_providers

        providers = available_providers()
    except ZseError as exc:  # onnxruntime missing: a reason to report, not to stop
        providers, why, CUDA_EP = [], f"onnxruntime unavailable ({exc})", "CUDAExecutionProvider"
    else:
        why = "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu instead of onnxruntime)"
    if CUDA_EP in providers and torch_cuda:
        ready.append("onnxruntime-cuda")
    else:
        skip("onnxruntime-cuda", why if CUDA_EP not in providers else "no CUDA GPU")
    from zse_infer.runtime.runners.trt_environment import probe_tensorrt

    env = probe_tensorrt()
    if env.ready:
        ready += ["tensorrt", "tensorrt-fast"]
    else:
        skip("tensorrt", env.reason)
    return ready, notes


def build_gpu_engines(export_dir: Path, tmp: Path) -> None:
    """fp32 and fp16 engines of every TensorRT graph (encoder, relation head, restructured relation head)."""
    from zse_infer.engines import build_engines

    build_engines(export_dir, cache_dir=tmp / "engine-cache", precisions=("fp32", "fp16"))


def _torch_cuda_model(args: dict, precision: str):
    import torch

    from zse_infer.model import load_model

    model = args.get("_cuda_model")
    if model is None:
        model = load_model(args["checkpoint"]).eval().cuda()
        model = model.half() if precision == "fp16" else model
        args["_cuda_model"] = model
    return torch, model, (torch.float16 if precision == "fp16" else torch.float32)


def _trt_runner(args: dict, role: str, precision: str):
    from zse_infer.manifest import Manifest
    from zse_infer.runtime.runners.select import _trt_runner as open_engine

    manifest = Manifest.load(args["export_dir"], verify=False)
    return open_engine(Path(args["export_dir"]), manifest, role, precision, None)


def _gpu_encoder_fn(backend: str, precision: str, args: dict):
    if backend == "torch-cuda":
        torch, model, dtype = _torch_cuda_model(args, precision)

        def run(x):
            with torch.inference_mode():
                return model.encode(torch.from_numpy(x).cuda().to(dtype)).float().cpu().numpy()

        return run
    if backend == "onnxruntime-cuda":
        from zse_infer.manifest import Manifest
        from zse_infer.runtime.runners.onnxruntime_backend import CPU, CUDA_EP, OrtRunner

        manifest = Manifest.load(args["export_dir"], verify=False)
        runner = OrtRunner(
            manifest.select_graph("encoder", (precision,), ("ort_fused", "plain")), args["export_dir"], [CUDA_EP, CPU]
        )
    else:
        runner = _trt_runner(args, "encoder", precision)
    return lambda x: runner.run({"image": x})


def _gpu_relation_fn(backend: str, precision: str, args: dict, sketch, photos):
    import numpy as np

    if backend == "torch-cuda":
        torch, model, dtype = _torch_cuda_model(args, precision)

        def run():
            with torch.inference_mode():
                s, p = torch.from_numpy(sketch).cuda().to(dtype), torch.from_numpy(photos).cuda().to(dtype)
                return model.relation_head(s.expand(p.shape[0], -1, -1), p).float().cpu().numpy()

        return run
    if backend == "tensorrt-fast":
        from zse_infer.runtime.runners.select import relation_scores

        graphs = {
            r: args.setdefault(f"_trt_{r}", _trt_runner(args, r, "fp32"))
            for r in ("relation_sketch", "relation_photo", "relation_pair")
        }
        return lambda: relation_scores(graphs, sketch, photos)
    if backend == "onnxruntime-cuda":
        from zse_infer.manifest import Manifest
        from zse_infer.runtime.runners.onnxruntime_backend import CPU, CUDA_EP, OrtRunner

        manifest = Manifest.load(args["export_dir"], verify=False)
        graph = manifest.select_graph("relation_head", (precision,), ("ort_fused", "plain"))
        runner = args.setdefault(f"_ort_cuda_{precision}", OrtRunner(graph, args["export_dir"], [CUDA_EP, CPU]))
    else:
        runner = args.setdefault(f"_trt_head_{precision}", _trt_runner(args, "relation_head", precision))
    tiled = np.ascontiguousarray(np.broadcast_to(sketch, photos.shape))
    return lambda: runner.run({"sketch_tokens": tiled, "photo_tokens": photos})


def work_startup(args: dict) -> list[dict]:
    """One start of a backend in a fresh process: both graphs and the restructured relation head opened
    (OpenVINO: compiled, or imported from the compiled-model cache in ``args["cache"]``; bf16 self-check included)."""
    from zse_infer.runtime.runners.openvino_backend import CACHE_ENV

    os.environ[CACHE_ENV] = args["cache"]
    t0 = time.perf_counter()
    from zse_infer.manifest import Manifest
    from zse_infer.runtime.runners.select import open_relation_runners, open_runners

    manifest = Manifest.load(args["export_dir"], verify=False)
    runners = open_runners(args["export_dir"], manifest, backend=args["backend"])
    fast = open_relation_runners(args["export_dir"], manifest, runners) or {}
    seconds = time.perf_counter() - t0
    opened = [runners.encoder, runners.relation_head, *fast.values()]
    cached = [bool(getattr(r, "from_cache", False)) for r in opened]
    return [
        record(
            "startup",
            runners.backend,
            runners.precision,
            {"start": args["start"]},
            seconds * 1000,
            "ms",
            [seconds],
            graphs=len(opened),
            from_cache=sum(cached),
            compile_s=round(sum(getattr(r, "compile_seconds", 0.0) for r in opened), 2),
        )
    ]


WORKERS = {"encoder": work_encoder, "relation": work_relation, "query": work_query, "startup": work_startup}


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    records = WORKERS[spec["work"]](spec)
    Path(spec["result"]).write_text(json.dumps(records))


def run_child(work: str, spec: dict, tmp: Path) -> list[dict]:
    spec = {**spec, "work": work, "tmp": str(tmp)}
    spec_path = tmp / f"spec-{time.monotonic_ns()}.json"
    result = tmp / f"result-{time.monotonic_ns()}.json"
    spec["result"] = str(result)
    spec_path.write_text(json.dumps(spec))
    label = f"{work} {spec.get('backend', '')} {spec.get('precision', '')} {spec.get('gallery', '')}".strip()
    _log.info("running %s", label)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(spec_path)], check=False, capture_output=True, text=True
    )
    if proc.returncode != 0:
        _log.warning("%s failed:\n%s", label, proc.stderr[-2000:])
        component = {"relation": "relation_head"}.get(work, work)
        return [
            {
                "component": component,
                "backend": spec.get("backend"),
                "precision": spec.get("precision"),
                "error": (proc.stderr.strip().splitlines() or ["failed"])[-1],
            }
        ]
    _log.info("%s done in %.0f s", label, time.perf_counter() - t0)
    return json.loads(result.read_text())


# --------------------------------------------------------------------------- report


def add_ratios(records: list[dict]) -> None:
    """ratio_vs_official = this figure / the official figure at the same setting (larger is better)."""
    official = {
        (r["component"], r.get("batch"), r.get("rerank")): r["value"]
        for r in records
        if r.get("backend") == "official" and "value" in r
    }
    for r in records:
        base = official.get((r["component"], r.get("batch"), r.get("rerank")))
        if base and "value" in r and r["component"] != "query":
            r["ratio_vs_official"] = round(r["value"] / base, 3)


def machine() -> dict:
    import numpy as np

    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
    }
    for name in ("torch", "onnxruntime", "onnx", "faiss", "openvino"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    from zse_infer.runtime.runners.cpu_features import cpu_features

    features = cpu_features()  # flags: AVX2 / AVX-512 / VNNI / AVX512-BF16 / AMX; bf16: the unit OpenVINO uses
    info["cpu_features"] = {k: features[k] for k in ("vendor", "model", "flags", "vnni", "bf16")}
    info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    from zse_infer.runtime.runners import cuda

    info["gpus"] = cuda.gpu_count()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def setting_of(r: dict) -> str:
    for key in ("batch", "rerank", "gallery", "start"):
        if r.get(key) is not None:
            return f"{key} {r[key]}" + (f", {r['mode']}" if r.get("mode") else "")
    return ""


def write_table(records: list[dict], info: dict, path: Path) -> str:
    features = info.get("cpu_features") or {}
    peaks = info.get("peaks") or {}
    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores; torch {info['torch']}, onnxruntime {info['onnxruntime']}, "
        f"openvino {info.get('openvino')}, GPUs: {info['gpus']}",
        f"CPU flags: {', '.join(features.get('flags') or []) or 'unknown'}; bf16 unit: {features.get('bf16')}; "
        f"load average {info.get('load_average_start')} at the start, {info.get('load_average_end')} at the end",
        f"Peaks (matrix products, {peaks.get('how', '')}): fp32 {peaks.get('fp32')} GFLOP/s, bf16 {peaks.get('bf16')} GFLOP/s",
        "",
        "| component | backend | precision | setting | value | unit | x official | GFLOP/s | of fp32 peak | of bf16 peak |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in records:
        if "value" not in r:
            lines.append(f"| {r['component']} | {r.get('backend')} | | | {r.get('note') or r.get('error')} | | | | | |")
            continue
        value = f"{r['value']:.2f}" + (f" (p95 {r['p95_ms']:.0f})" if r.get("p95_ms") else "")
        if r.get("extrapolated"):
            value += " (extrapolated)"
        if r.get("from_cache") is not None:
            value += f" ({r['from_cache']}/{r['graphs']} graphs from cache)"
        ratio = f"{r['ratio_vs_official']:.2f}" if r.get("ratio_vs_official") else ""
        peak = " | ".join(f"{r[k]:.0%}" if r.get(k) is not None else "" for k in ("of_fp32_peak", "of_bf16_peak"))
        gflops = f"{r['gflops']:.0f}" if r.get("gflops") is not None else ""
        lines.append(
            f"| {r['component']} | {r['backend']} | {r['precision']} | {setting_of(r)} | {value} | {r['unit']} | {ratio} | {gflops} | {peak} |"
        )
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def write_plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_bars = sum(
        1
        for r in records
        if "value" in r
        and (
            (r["component"] == "encoder" and r.get("batch") == 8)
            or (r["component"] == "relation_head" and r.get("rerank") == 100)
        )
    )
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, max(4.8, 0.22 * n_bars + 1.2)))
    queries = [r for r in records if r["component"] == "query" and "value" in r]
    for backend, mode in sorted({(r["backend"], r["mode"]) for r in queries}):
        pts = sorted((r["gallery"], r["value"]) for r in queries if (r["backend"], r["mode"]) == (backend, mode))
        label = f"{mode} ({backend}{', extrapolated' if mode == 'exhaustive' else ''})"
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel="gallery size (photos)",
        ylabel="query latency, median (ms)",
        title="Query latency",
    )
    ax1.legend(fontsize=7)
    bars = [
        r
        for r in records
        if "value" in r
        and (
            (r["component"] == "encoder" and r.get("batch") == 8)
            or (r["component"] == "relation_head" and r.get("rerank") == 100)
        )
    ]
    labels = [f"{r['component'].replace('relation_head', 'rel. head')}: {r['backend']} {r['precision']}" for r in bars]
    ax2.barh(
        range(len(bars)),
        [r.get("ratio_vs_official") or 0 for r in bars],
        color=["#4c72b0" if r["component"] == "encoder" else "#dd8452" for r in bars],
    )
    ax2.set_yticks(range(len(bars)), labels, fontsize=7)
    ax2.axvline(1.0, color="black", lw=0.8)
    ax2.set(xlabel="throughput / official (encoder batch 8, relation head rerank 100)", title="Throughput vs official")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="results folder (required)")
    parser.add_argument("--quick", action="store_true", help="fewer settings and repeats (a few minutes on 2 cores)")
    parser.add_argument("--export-dir", type=Path, help="reuse an export folder of random full-size weights")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return
    if args.out is None:
        parser.error("the following arguments are required: --out")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    for name in ("benchmarks", "zse_infer"):  # not onnxscript's per-pass INFO chatter
        logging.getLogger(name).setLevel(logging.INFO)
    cfg = QUICK if args.quick else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    info = machine()
    info["peaks_start"] = cpu_peaks.matmul_peaks()
    gpu_ready, gpu_skipped = gpu_backends()
    info["gpu_backends"] = gpu_ready
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="zse-bench-") as tmp_name:
        tmp = Path(tmp_name)
        checkpoint = make_checkpoint(tmp / "random.pth")
        export_dir = args.export_dir or tmp / "export"
        if not args.export_dir:
            t0 = time.perf_counter()
            try:
                export(checkpoint, export_dir, fp16=True, int8=_int8_supported(), trt="tensorrt" in gpu_ready)
            except ZseError as exc:  # int8 refused (rankings changed on this CPU): say so, keep every other row
                _log.warning("export with int8 failed, exporting without: %s", exc)
                info["int8_export"] = f"refused: {exc}"
                export(checkpoint, export_dir, fp16=True, int8=False, trt="tensorrt" in gpu_ready)
            _log.info("export took %.0f s", time.perf_counter() - t0)
        if "tensorrt" in gpu_ready:
            try:
                build_gpu_engines(export_dir, tmp)
            except Exception as exc:  # noqa: BLE001 - report the reason in the table, keep the CPU rows
                _log.warning("TensorRT engines could not be built: %s", exc)
                gpu_ready = [b for b in gpu_ready if not b.startswith("tensorrt")]
                gpu_skipped += [
                    {"component": c, "backend": "tensorrt", "error": f"engine build failed: {exc}"}
                    for c in ("encoder", "relation_head")
                ]
        from zse_infer.manifest import Manifest

        manifest = Manifest.load(export_dir, verify=False)
        precisions = sorted({g.precision for g in manifest.graphs.values()})
        base = {"checkpoint": str(checkpoint), "export_dir": str(export_dir), "cfg": cfg}
        records: list[dict] = []
        openvino = _openvino_installed()
        encoders = [("official", "fp32"), ("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime-fused", "fp32")]
        encoders += [(OPENVINO, p) for p in ("fp32", "bf16") if openvino]
        encoders += [("onnxruntime", p) for p in precisions if p != "fp32"]
        encoders += [(b, p) for b in gpu_ready if b != "tensorrt-fast" for p in ("fp32", "fp16")]
        for backend, precision in encoders:
            records += run_child("encoder", {**base, "backend": backend, "precision": precision}, tmp)
        heads = [
            ("official", "fp32"),
            ("torch", "fp32"),
            ("torch-fast", "fp32"),
            ("torch-fast-cached", "fp32"),
            ("onnxruntime", "fp32"),
            ("onnxruntime-fused", "fp32"),
            ("onnxruntime-fast", "fp32"),
            ("onnxruntime-fast-cached", "fp32"),
        ]
        heads += [
            (b, p) for b in (OPENVINO, "openvino-fast", "openvino-fast-cached") for p in ("fp32", "bf16") if openvino
        ]
        heads += [("onnxruntime", p) for p in precisions if p != "fp32"]
        heads += [(b, p) for b in gpu_ready for p in (("fp32",) if b == "tensorrt-fast" else ("fp32", "fp16"))]
        for backend, precision in heads:
            records += run_child("relation", {**base, "backend": backend, "precision": precision}, tmp)
        for backend in ("onnxruntime-cpu", *((OPENVINO,) if openvino else ())):
            for n in cfg["galleries"]:
                records += run_child("query", {**base, "gallery": n, "backend": backend}, tmp)
        for backend in (
            "onnxruntime-cpu",
            *((OPENVINO,) if openvino else ()),
        ):  # first start (empty cache), then two more
            for start in ("first", "second", "third"):
                records += run_child(
                    "startup", {**base, "backend": backend, "start": start, "cache": str(tmp / f"cache-{backend}")}, tmp
                )
        records += exhaustive_estimates(records, cfg)
        records += gpu_notes(info, gpu_skipped)
        records.append(storage_record(export_dir, tmp))
        info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        end = cpu_peaks.matmul_peaks()  # peaks at the start and the end: the best of both (the machine is shared)
        info["peaks"] = {
            **end,
            **{
                k: max(end[k], info["peaks_start"][k])
                for k in ("fp32_numpy", "fp32_torch", "bf16_torch", "fp32", "bf16")
            },
        }
        info["work_gflop"] = cpu_peaks.graph_work(str(checkpoint))
    add_ratios(records)
    cpu_peaks.add_peak_fractions(records, info["peaks"], info["work_gflop"])
    result = {
        "machine": info,
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
        "records": records,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    table = write_table(records, info, args.out / "results.md")
    write_plot(records, args.out / "results.png")
    sys.stdout.write(table)


def _openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _int8_supported() -> bool:
    from zse_infer.exporting import ExportOptions

    return "int8" in ExportOptions.__dataclass_fields__


def exhaustive_estimates(records: list[dict], cfg: dict) -> list[dict]:
    """Exhaustive ranking latency = gallery size / measured pairs/s of the same backend (marked)."""
    heads = [
        r
        for r in records
        if r["component"] == "relation_head" and r.get("backend") == "onnxruntime-fused" and "value" in r
    ]
    if not heads:
        return []
    best = max(heads, key=lambda r: r["rerank"])
    out = []
    for n in cfg["galleries"]:
        stage = [
            r
            for r in records
            if r["component"] == "query" and r.get("gallery") == n and r.get("mode") == "stage1" and "value" in r
        ]
        base_ms = stage[0]["value"] if stage else 0.0
        out.append(
            record(
                "query",
                "onnxruntime-cpu",
                "fp32",
                {"gallery": n, "mode": "exhaustive"},
                base_ms + n / best["value"] * 1000,
                "ms",
                [],
                extrapolated=True,
                note=f"stage-1 latency + {n} pairs at {best['value']:.1f} pairs/s (rerank {best['rerank']})",
            )
        )
    return out


def gpu_notes(info: dict, skipped: list[dict] | None = None) -> list[dict]:
    """Rows for the GPU backends that did not run, each with its reason (none on a machine where all ran)."""
    if not info["gpus"]:
        return [
            {"component": c, "backend": b, "note": "skipped: no GPU on this machine"}
            for c in ("encoder", "relation_head")
            for b in ("torch-cuda", "onnxruntime-cuda", "tensorrt")
        ]
    return list(skipped or [])


def storage_record(export_dir: Path, tmp: Path) -> dict:
    """Bytes stored per gallery photo, from a real gallery of 8 indexed photos."""
    from tests.support.images import make_photo_files
    from zse_infer.runtime.gallery.store import DATASET
    from zse_infer.runtime.retriever import Retriever

    photos = make_photo_files(tmp / "photos", 8, size=64)
    with Retriever.load(export_dir, gallery=tmp / "storage", create=True, backend="onnxruntime-cpu", verify=False) as r:
        r.index(photos, progress=False)
    total = sum(p.stat().st_size for p in (tmp / "storage" / DATASET).rglob("*") if p.is_file())
    return {
        "component": "gallery",
        "backend": "any",
        "precision": "fp16",
        "value": total / 8,
        "unit": "bytes/photo",
        "ratio_vs_official": None,
        "note": "Lance dataset: tokens (float16) + ret-token (float32) + ids/paths/fingerprints + manifest",
    }


if __name__ == "__main__":
    main()
