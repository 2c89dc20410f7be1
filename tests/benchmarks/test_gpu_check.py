"""benchmarks/gpu_check.py on a machine without a GPU: every GPU part skipped with its reason, exit 0, valid JSON.

(On a GPU machine this test still only checks the report's shape: the GPU figures are the script's job.)
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402
import run  # noqa: E402


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(_has_cuda(), reason="a CUDA GPU is present: the full check runs minutes (run the script itself)")
def test_runs_on_a_cpu_machine_skipping_every_gpu_part(tmp_path):
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["passed"] is True and report["gpu"] == {"available": False}
    assert set(report["checks"]) == {"environment", "pytest_gpu", "torch_cuda_parity", "throughput", "tensorrt"}
    assert report["checks"]["environment"]["status"] == "pass"
    assert report["versions"]["python"] and "numpy" in report["versions"]
    for name, check in report["checks"].items():
        if name != "environment":
            assert check["status"] == "skip" and check["reason"], name  # skipped, saying why
    assert report["throughput"] == []
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("result: PASS")  # the short table comes last
    assert any(line.startswith("tensorrt ") and "skip" in line for line in lines)


def test_a_failing_part_fails_the_run_without_hiding_the_others(monkeypatch):
    def broken(ctx):
        raise RuntimeError("simulated")

    monkeypatch.setattr(gpu_check, "CHECKS", [("environment", gpu_check.check_environment), ("broken", broken)])
    report = gpu_check.run_checks(60)
    assert report["passed"] is False and report["checks"]["environment"]["status"] == "pass"
    assert report["checks"]["broken"]["status"] == "fail" and "simulated" in report["checks"]["broken"]["reason"]
    assert "result: FAIL" in gpu_check.table(report)


def test_parts_past_the_budget_are_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(gpu_check, "CHECKS", [("environment", gpu_check.check_environment)] * 1)
    report = gpu_check.run_checks(-1)
    assert (
        report["checks"]["environment"]["status"] == "skip"
        and "time budget" in report["checks"]["environment"]["reason"]
    )


def test_benchmark_rows_name_every_gpu_backend_that_did_not_run():
    ready, notes = run.gpu_backends()
    if _has_cuda():
        pytest.skip("a GPU is present")
    assert ready == []
    assert {n["backend"] for n in notes} == {"torch-cuda", "onnxruntime-cuda", "tensorrt"}
    assert all(n["note"].startswith("skipped: ") and len(n["note"]) > 12 for n in notes)
    rows = run.gpu_notes({"gpus": 0})
    assert {(r["component"], r["backend"]) for r in rows} == {
        (c, b) for c in ("encoder", "relation_head") for b in ("torch-cuda", "onnxruntime-cuda", "tensorrt")
    }
