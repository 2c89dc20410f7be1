"""The GPU check: run once on a machine with an NVIDIA GPU, right after cloning.

    python benchmarks/gpu_check.py [--out benchmarks/results/gpu/gpu_check.json] [--budget-s 420]

Needs only Python, PyTorch with CUDA and onnxruntime (CPU); no network, no
install of this package (it runs from the clone). Everything else is optional
and each part that needs something missing is skipped, saying why:

* ``environment``: versions, the GPU, which onnxruntime distribution is installed;
* ``pytest_gpu``: every GPU test (``pytest -m gpu``), when pytest is installed;
* ``torch_cuda_parity``: the PyTorch model on CUDA (fp32 and fp16, attention through
  ``scaled_dot_product_attention``) on the parity inputs (``tests/data/official_seed1.npz``,
  the parity weights of docs/spec.md), against ONNX Runtime CPU running an ONNX graph of the
  same model exported in this run (the exporter needs onnx + onnxscript; without
  them the TorchScript exporter is tried; without any ONNX graph the stored outputs
  of the official code on the CPU are the reference, and the report says so);
* ``throughput``: encoder images/s and relation-head pairs/s of the full-size model on
  torch CUDA fp32/fp16 (and ONNX Runtime's CUDA provider if present);
* ``tensorrt``: where TensorRT 10.x is importable: a tiny export with engines built,
  ``zse-export validate --engines``, and a Retriever search on TensorRT compared with
  ONNX Runtime CPU (the export needs timm, onnx and onnxscript).

Writes one JSON report and prints a short table last. Exit status 1 when a check
failed, else 0 (skips are not failures: on a machine without a GPU every GPU part
is skipped with its reason and the script exits 0). Finishes within 8 minutes on
one data-centre GPU: parts that would start after ``--budget-s`` are skipped.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
DATA = REPO / "tests" / "data"
# The zse_vit_b16 recipe's tolerances (export/zse_vit_b16.json), as max abs errors.
TOLERANCE = {"fp32": {"tokens": 1e-3, "score": 1e-4}, "fp16": {"tokens": 2e-2, "score": 1e-3}}


class Skip(Exception):
    """A part that cannot run here; the message says why."""


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(module: str) -> str | None:
    if not _has(module):
        return None
    try:
        return str(getattr(importlib.import_module(module), "__version__", "installed"))
    except Exception as exc:  # noqa: BLE001 - a broken install is a finding to report
        return f"broken ({type(exc).__name__}: {exc})"


def _cuda_torch():
    """torch with a usable CUDA device, else Skip with the reason."""
    if not _has("torch"):
        raise Skip("PyTorch is not installed")
    import torch

    if not torch.cuda.is_available():
        raise Skip("no CUDA GPU visible to PyTorch (torch.cuda.is_available() is False)")
    return torch


# --------------------------------------------------------------------------- checks


def check_environment(ctx: dict) -> dict:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("numpy", "torch", "onnxruntime", "onnx", "onnxscript", "timm", "tensorrt", "pytest", "polygraphy"):
        info[name] = _version(name)
    try:
        from zse_infer.runtime.runners.onnxruntime_backend import onnxruntime_install

        info["onnxruntime_distributions"] = onnxruntime_install()["distributions"]
    except Exception as exc:  # noqa: BLE001
        info["onnxruntime_distributions"] = f"unknown ({exc})"
    if info["onnxruntime"] and not str(info["onnxruntime"]).startswith("broken"):
        import onnxruntime

        info["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    gpu: dict[str, Any] = {"available": False}
    if _has("torch"):
        import torch

        info["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            gpu = {
                "available": True,
                "name": props.name,
                "compute_capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1),
                "count": torch.cuda.device_count(),
            }
    try:
        from zse_infer.runtime.runners.trt_environment import probe_tensorrt

        env = probe_tensorrt()
        info["tensorrt_ready"], info["tensorrt_reason"] = env.ready, env.reason
    except Exception as exc:  # noqa: BLE001
        info["tensorrt_ready"], info["tensorrt_reason"] = False, str(exc)
    ctx["gpu"] = gpu
    ctx["versions"] = info
    return {"status": "pass", "figures": {"gpu": gpu.get("name", "none")}}


def check_pytest_gpu(ctx: dict) -> dict:
    _cuda_torch()
    if not _has("pytest"):
        raise Skip("pytest is not installed, so the GPU tests (pytest -m gpu) were not run")
    timeout = int(ctx["hard_deadline"] - time.monotonic())
    if timeout < 30:
        raise Skip("no time left in the 8-minute budget for the GPU tests; run: python -m pytest -m gpu tests")
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", "tests"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "fail", "reason": f"pytest -m gpu did not finish in {timeout} s"}
    tail = (done.stdout + done.stderr).strip().splitlines()
    counts = {
        k: int(v)
        for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", tail[-1] if tail else "")
    }
    if done.returncode == 5:
        raise Skip("pytest collected no GPU tests")
    status = "pass" if done.returncode == 0 else "fail"
    return {"status": status, "figures": counts, "reason": "" if status == "pass" else "\n".join(tail[-15:])}


def _parity_model(torch, golden_keys):
    """(encoder fn, relation fn, description) of the parity weights on CUDA, attention through SDPA.

    The repo's model (needs timm); without timm, the official-code transcription
    (benchmarks/official_reference.py, plain torch) with its attention switched to SDPA.
    """
    from tests.support.parity import parity_state_dict, read_key_list

    state = {
        k: torch.from_numpy(v) for k, v in parity_state_dict(read_key_list(DATA / "official_state_dict.tsv")).items()
    }
    if _has("timm"):
        from zse_infer.model import load_model

        model = load_model({"model": state}, config="zse_vit_b16").eval()
        return model, model.encode, model.relate, "zse_infer.model (timm blocks, fused SDPA attention)"
    import official_reference as ref
    import torch.nn.functional as F

    def sdpa_forward(self, x):
        b, n, c = x.shape
        q, k, v = (
            t.reshape(b, n, self.heads, c // self.heads).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1)
        )
        return self.to_out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))

    ref._Attention.forward = sdpa_forward  # this process only
    enc, head = ref.load_official(state)

    class Both(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.head = enc, head

    both = Both().eval()
    return both, both.enc, both.head, "benchmarks/official_reference.py with SDPA self-attention (timm not installed)"


def _ort_reference(torch, model, encode, relate, golden, ctx) -> tuple[dict, str]:
    """The parity model's encoder tokens and relation scores from ONNX Runtime CPU on a graph exported now."""
    if not _has("onnxruntime"):
        raise Skip("onnxruntime is not installed")
    import numpy as np
    import onnxruntime as ort

    tmp = Path(ctx["tmp"])

    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, image):
            return encode(image)

    class Rel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, sketch_tokens, photo_tokens):
            return relate(sketch_tokens, photo_tokens)

    pixels = np.concatenate([golden["sketch_pixels"], golden["photo_pixels"]])
    s = np.repeat(golden["sketch_tokens"], 3, 0)
    p = np.tile(golden["photo_tokens"], (3, 1, 1))
    how = []
    if all(_has(m) for m in ("timm", "onnx", "onnxscript")) and hasattr(model, "relation_head"):
        # The repo's own export path (the plain graphs zse-export writes), tested in CI.
        from zse_infer.exporting.graph_modules import build_export_module
        from zse_infer.exporting.torch_to_onnx import export_graph, save_graph

        for name, inputs in (
            ("encoder", {"image": torch.from_numpy(pixels[:2])}),
            ("relation_head", {"sketch_tokens": torch.from_numpy(s[:2]), "photo_tokens": torch.from_numpy(p[:2])}),
        ):
            proto = export_graph(build_export_module(model, name, "fp32", "divide"), inputs, ["out"], 18, 64, name)
            save_graph(proto, tmp / f"parity_{name}.onnx")
        how.append("zse_infer exporter (plain fp32 graphs, as zse-export writes them)")
    for name, module, example in (
        []
        if how
        else (
            ("encoder", Enc(), (torch.from_numpy(pixels[:2]),)),
            ("relation_head", Rel(), (torch.from_numpy(s[:2]), torch.from_numpy(p[:2]))),
        )
    ):
        path = tmp / f"parity_{name}.onnx"
        names = ["image"] if name == "encoder" else ["sketch_tokens", "photo_tokens"]
        axes = {n: {0: "batch"} for n in names}
        if _has("onnx") and _has("onnxscript"):
            torch.onnx.export(
                module,
                example,
                str(path),
                input_names=names,
                output_names=["out"],
                dynamo=True,
                dynamic_shapes={n: {0: torch.export.Dim("batch", min=1, max=64)} for n in names},
                opset_version=18,
            )
            how.append(f"{name}: torch.onnx.export(dynamo=True)")
        else:
            try:
                torch.onnx.export(
                    module,
                    example,
                    str(path),
                    input_names=names,
                    output_names=["out"],
                    dynamo=False,
                    dynamic_axes={**axes, "out": {0: "batch"}},
                    opset_version=17,
                )
            except Exception as exc:
                raise Skip(
                    f"no ONNX graph could be exported here (onnx/onnxscript missing; TorchScript exporter: {exc})"
                ) from exc
            how.append(f"{name}: torch.onnx.export(dynamo=False) (onnx/onnxscript not installed)")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    enc = ort.InferenceSession(str(tmp / "parity_encoder.onnx"), so, providers=["CPUExecutionProvider"])
    rel = ort.InferenceSession(str(tmp / "parity_relation_head.onnx"), so, providers=["CPUExecutionProvider"])
    tokens = enc.run(None, {enc.get_inputs()[0].name: pixels})[0]
    feeds = dict(zip([i.name for i in rel.get_inputs()], (s, p), strict=False))
    scores = rel.run(None, feeds)[0].reshape(3, 3)
    return {"tokens": tokens, "score": scores}, "; ".join(how)


def check_torch_cuda_parity(ctx: dict) -> dict:
    torch = _cuda_torch()
    import numpy as np

    with np.load(DATA / "official_seed1.npz") as npz:
        golden = {k: npz[k] for k in npz.files}
    model, encode, relate, described = _parity_model(torch, golden)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 must mean fp32 (TF32 misses the 1e-3 tolerance)
    torch.backends.cudnn.allow_tf32 = False
    official = {
        "tokens": np.concatenate([golden["sketch_tokens"], golden["photo_tokens"]]),
        "score": golden["rn_scores"],
    }
    try:
        with torch.no_grad():
            try:
                reference, how = _ort_reference(torch, model, encode, relate, golden, ctx)
            except (Skip, ImportError):
                raise
            except Exception as exc:
                raise Skip(f"exporting the reference graph failed ({type(exc).__name__}: {exc})") from exc
        ref_name = "ONNX Runtime CPU"
        ort_vs_official = {k: float(np.abs(reference[k] - official[k]).max()) for k in reference}
    except (Skip, ImportError) as exc:
        reference, how, ref_name, ort_vs_official = (
            official,
            f"ONNX Runtime CPU reference skipped: {exc}",
            "official fp32 CPU outputs (stored)",
            {},
        )
    pixels = np.concatenate([golden["sketch_pixels"], golden["photo_pixels"]])
    s = np.repeat(golden["sketch_tokens"], 3, 0)
    p = np.tile(golden["photo_tokens"], (3, 1, 1))
    figures: dict[str, Any] = {
        "model": described,
        "reference": ref_name,
        "reference_graphs": how,
        "ort_cpu_vs_official": ort_vs_official,
    }
    failed = []
    for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        m = model.cuda().to(dtype)
        with torch.inference_mode():
            tokens = encode(torch.from_numpy(pixels).cuda().to(dtype)).float().cpu().numpy()
            scores = (
                relate(torch.from_numpy(s).cuda().to(dtype), torch.from_numpy(p).cuda().to(dtype)).float().cpu().numpy()
            )
        errors = {
            "tokens": float(np.abs(tokens - reference["tokens"]).max()),
            "score": float(np.abs(scores.reshape(3, 3) - reference["score"]).max()),
        }
        ok = all(errors[k] <= TOLERANCE[precision][k] for k in errors)
        figures[precision] = {"max_abs_error": errors, "tolerance": TOLERANCE[precision], "passed": ok}
        if not ok:
            failed.append(precision)
        m.float()
    model.cpu()
    ctx["parity_model"] = (model, encode, relate)
    return {
        "status": "fail" if failed else "pass",
        "figures": figures,
        "reason": f"beyond tolerance: {failed}" if failed else "",
    }


def _per_second(torch, fn, rows: int, repeats: int = 10) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return rows * repeats / (time.perf_counter() - t0)


def check_throughput(ctx: dict) -> dict:
    torch = _cuda_torch()
    import numpy as np

    if "parity_model" not in ctx:
        raise Skip("the parity model could not be built (see torch_cuda_parity)")
    model, encode, relate = ctx["parity_model"]
    rows = []
    rng = np.random.default_rng(0)
    images = rng.standard_normal((32, 3, 224, 224)).astype(np.float32)
    sketch = rng.standard_normal((1, 197, 768)).astype(np.float32)
    photos = rng.standard_normal((256, 197, 768)).astype(np.float32)
    for precision, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        model.cuda().to(dtype)
        with torch.inference_mode():
            x = torch.from_numpy(images).cuda().to(dtype)
            s = torch.from_numpy(sketch).cuda().to(dtype).expand(256, -1, -1)
            p = torch.from_numpy(photos).cuda().to(dtype)
            rows.append(
                {
                    "component": "encoder",
                    "backend": "torch-cuda",
                    "precision": precision,
                    "batch": 32,
                    "value": round(_per_second(torch, lambda x=x: encode(x), 32), 1),
                    "unit": "images/s",
                }
            )
            rows.append(
                {
                    "component": "relation_head",
                    "backend": "torch-cuda",
                    "precision": precision,
                    "rerank": 256,
                    "value": round(_per_second(torch, lambda s=s, p=p: relate(s, p), 256), 1),
                    "unit": "pairs/s",
                }
            )
        model.float()
    model.cpu()
    ctx["throughput"] += rows
    return {
        "status": "pass",
        "figures": {f"{r['component']} {r['precision']}": f"{r['value']} {r['unit']}" for r in rows},
        "reason": "device tensors in, device tensors out (no host copies); full-size model",
    }


def check_tensorrt(ctx: dict) -> dict:
    _cuda_torch()
    from zse_infer.runtime.runners.trt_environment import probe_tensorrt

    env = probe_tensorrt()
    if not env.ready:
        raise Skip(env.reason)
    missing = [m for m in ("timm", "onnx", "onnxscript") if not _has(m)]
    if missing:
        raise Skip(f"the tiny export needs {', '.join(missing)} (pip install 'zse-infer[export]')")
    import numpy as np
    import torch

    from zse_infer.exporting import ExportOptions, export_model
    from zse_infer.exporting.report import validate_folder
    from zse_infer.model import ZseModel, to_official_state_dict

    tmp = Path(ctx["tmp"])
    torch.manual_seed(0)
    ckpt = tmp / "tiny.pth"
    torch.save({"model": to_official_state_dict(ZseModel("tiny").eval().state_dict())}, ckpt)
    t0 = time.perf_counter()
    options = ExportOptions(fp16=True, engines="require", cache_dir=tmp / "engine-cache", lint="never")
    manifest = export_model(ckpt, tmp / "tiny_export", config="tiny", recipe="tiny", options=options)
    figures: dict[str, Any] = {
        "export_and_build_s": round(time.perf_counter() - t0, 1),
        "engines": [e["file"] for e in manifest.engines],
        "device": env.device,
        "tensorrt": env.version,
    }
    rows = validate_folder(tmp / "tiny_export", engines=True, graphs=False)
    figures["validate_engines"] = {r.target: {"errors": r.errors, "vs_ort": r.vs_ort, "passed": r.passed} for r in rows}
    failed = [r.target for r in rows if not r.passed]
    figures["search"] = _retriever_search(tmp / "tiny_export", tmp)
    if figures["search"].get("status") == "fail":
        failed.append("search")
    from zse_infer.manifest import Manifest
    from zse_infer.runtime.runners.select import open_runners

    runners = open_runners(tmp / "tiny_export", Manifest.load(tmp / "tiny_export"), backend="tensorrt")
    x = np.random.default_rng(0).standard_normal((16, 3, 64, 64)).astype(np.float32)
    tok = np.random.default_rng(1).standard_normal((32, *runners.encoder.graph.outputs[0].shape[1:])).astype(np.float32)
    for comp, fn, n, unit in (
        ("encoder", lambda: runners.encoder.run({"image": x}), 16, "images/s"),
        (
            "relation_head",
            lambda: runners.relation_head.run({"sketch_tokens": tok, "photo_tokens": tok}),
            32,
            "pairs/s",
        ),
    ):
        for _ in range(3):
            fn()
        t = time.perf_counter()
        for _ in range(20):
            fn()
        ctx["throughput"].append(
            {
                "component": comp,
                "backend": "tensorrt",
                "precision": runners.precision,
                "model": "tiny",
                "value": round(n * 20 / (time.perf_counter() - t), 1),
                "unit": unit,
            }
        )
    runners.close()
    return {"status": "fail" if failed else "pass", "figures": figures, "reason": f"failed: {failed}" if failed else ""}


def _retriever_search(export: Path, tmp: Path) -> dict:
    """Index 12 synthetic photos with ONNX Runtime CPU, search one sketch on TensorRT and on ORT CPU: same hits?"""
    import numpy as np

    try:
        from zse_infer.runtime.retriever import Retriever
    except ImportError as exc:
        return {"status": "skip", "reason": f"the Retriever cannot be imported here ({exc})"}
    rng = np.random.default_rng(3)
    photos = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(12)]
    sketch = np.where(rng.random((64, 64, 3)) < 0.1, 0, 255).astype(np.uint8)
    cpu = Retriever.load(export, gallery=tmp / "gallery", create=True, backend="onnxruntime-cpu")
    cpu.index(photos, ids=[f"p{i}" for i in range(12)], progress=False)
    want = cpu.search(sketch, k=5, rerank=12)
    gpu = Retriever.load(export, gallery=tmp / "gallery", backend="tensorrt")
    got = gpu.search(sketch, k=5, rerank=12)
    # Near-equal scores of a random tiny model may swap places between fp16 engines and fp32 CPU:
    # ask for 4 of the top 5 shared and every shared photo's score within the fp16 tolerance.
    want_scores = {h.id: h.score for h in want}
    shared = [h for h in got if h.id in want_scores]
    gap = max((abs(h.score - want_scores[h.id]) for h in shared), default=float("inf"))
    ok = len(shared) >= 4 and gap <= TOLERANCE["fp16"]["score"]
    return {
        "status": "pass" if ok else "fail",
        "backend": gpu.backend,
        "precision": gpu.runners.precision,
        "top5_tensorrt": [h.id for h in got],
        "top5_onnxruntime_cpu": [h.id for h in want],
        "shared_of_top5": len(shared),
        "max_score_gap": gap,
    }


CHECKS: list[tuple[str, Callable[[dict], dict]]] = [  # in order: the GPU tests last, with the time left
    ("environment", check_environment),
    ("torch_cuda_parity", check_torch_cuda_parity),
    ("throughput", check_throughput),
    ("tensorrt", check_tensorrt),
    ("pytest_gpu", check_pytest_gpu),
]
HARD_LIMIT_S = 460  # the whole run stays under 8 minutes


# --------------------------------------------------------------------------- driver


def run_checks(budget_s: float) -> dict:
    started = time.monotonic()
    report: dict[str, Any] = {
        "tool": "benchmarks/gpu_check.py",
        "started": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "checks": {},
        "throughput": [],
    }
    with tempfile.TemporaryDirectory(prefix="zse-gpu-check-") as tmp:
        ctx: dict[str, Any] = {
            "tmp": tmp,
            "deadline": started + budget_s,
            "throughput": report["throughput"],
            "gpu": {},
        }
        ctx["hard_deadline"] = started + HARD_LIMIT_S
        for name, fn in CHECKS:
            t0 = time.monotonic()
            if t0 > ctx["deadline"]:
                result = {"status": "skip", "reason": f"time budget of {budget_s:.0f} s used up before this part"}
            else:
                try:
                    result = fn(ctx)
                except Skip as exc:
                    result = {"status": "skip", "reason": str(exc)}
                except Exception as exc:  # noqa: BLE001 - one broken part must not hide the others' results
                    result = {
                        "status": "fail",
                        "reason": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc(limit=6),
                    }
            result = {
                "status": result["status"],
                "reason": result.get("reason", ""),
                "figures": result.get("figures", {}),
                **({"traceback": result["traceback"]} if "traceback" in result else {}),
                "seconds": round(time.monotonic() - t0, 1),
            }
            report["checks"][name] = result
        report["versions"] = ctx.get("versions", {})
        report["gpu"] = ctx.get("gpu", {})
    report["seconds"] = round(time.monotonic() - started, 1)
    statuses = [c["status"] for c in report["checks"].values()]
    report["summary"] = {s: statuses.count(s) for s in ("pass", "fail", "skip")}
    report["passed"] = "fail" not in statuses
    return report


def table(report: dict) -> str:
    lines = [
        f"GPU check on {report['gpu'].get('name', 'a machine without a CUDA GPU')} ({report['seconds']} s)",
        f"{'check':<20} {'result':<6} detail",
    ]
    for name, c in report["checks"].items():
        detail = c["reason"].splitlines()[0] if c["reason"] else ""
        if name == "torch_cuda_parity" and c["status"] != "skip":
            detail = (
                "; ".join(
                    f"{p} tokens {c['figures'][p]['max_abs_error']['tokens']:.1e} score {c['figures'][p]['max_abs_error']['score']:.1e}"
                    for p in ("fp32", "fp16")
                    if p in c["figures"]
                )
                + f" (vs {c['figures'].get('reference')})"
            )
        lines.append(f"{name:<20} {c['status']:<6} {detail[:110]}")
    for r in report["throughput"]:
        lines.append(
            f"  {r['component']:<14} {r['backend']:<10} {r['precision']:<5} {r['value']:>10} {r['unit']}"
            + (f" ({r['model']} model)" if r.get("model") else "")
        )
    lines.append(f"result: {'PASS' if report['passed'] else 'FAIL'} ({report['summary']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "benchmarks" / "results" / "gpu" / "gpu_check.json",
        help="JSON report path [default: benchmarks/results/gpu/gpu_check.json]",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="parts that would start after this many seconds are skipped [default: 420]",
    )
    args = parser.parse_args(argv)
    report = run_checks(args.budget_s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    sys.stdout.write(f"report: {args.out}\n{table(report)}\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
