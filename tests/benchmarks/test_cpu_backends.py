"""The benchmark's CPU-backend rows: OpenVINO throughput and startup groups, peak fractions (no timing asserted)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import cpu_peaks
import run

WORK = {"encoder": 35.0, "relation_head": 3.4, "relation_photo": 0.7, "relation_pair": 2.0}


def test_peak_fractions_use_each_rows_work_per_item():
    records = [
        run.record("encoder", "openvino", "bf16", {"batch": 8}, 2.0, "images/s", [1.0]),
        run.record("relation_head", "onnxruntime", "fp32", {"rerank": 100}, 10.0, "pairs/s", [1.0]),
        run.record("relation_head", "openvino-fast", "bf16", {"rerank": 100}, 10.0, "pairs/s", [1.0]),
        run.record("relation_head", "openvino-fast-cached", "bf16", {"rerank": 100}, 10.0, "pairs/s", [1.0]),
        run.record("query", "openvino", "bf16", {"gallery": 1000, "mode": "stage1"}, 12.0, "ms", [0.012]),
    ]
    cpu_peaks.add_peak_fractions(records, {"fp32": 100.0, "bf16": 200.0}, WORK)
    assert [r.get("gflops") for r in records] == [70.0, 34.0, 27.0, 20.0, None]
    assert (records[0]["of_fp32_peak"], records[0]["of_bf16_peak"]) == (0.7, 0.35)
    text = run.write_table(
        records,
        {
            "cpu": "c",
            "cores": 2,
            "torch": "t",
            "onnxruntime": "o",
            "gpus": 0,
            "cpu_features": {"flags": ["avx512_bf16"], "bf16": "avx512_bf16"},
            "peaks": {"fp32": 100.0, "bf16": 200.0},
        },
        Path("/dev/null"),
    )
    assert "| encoder | openvino | bf16 | batch 8 | 2.00 | images/s |  | 70 | 70% | 35% |" in text
    assert "bf16 unit: avx512_bf16" in text and "fp32 100.0 GFLOP/s" in text


def test_machine_records_the_cpu_flags():
    info = run.machine()
    assert {"flags", "vnni", "bf16"} <= set(info["cpu_features"]) and len(info["load_average_start"]) == 3


def test_openvino_runners_and_startup_rows_on_a_tiny_export(tiny_export, tmp_path):
    pytest.importorskip("openvino")
    cfg = {"batches": (1, 2), "reranks": (3,), "repeats": 1}
    base = {
        "checkpoint": str(tiny_export.parent / "tiny.pth"),
        "export_dir": str(tiny_export),
        "cfg": cfg,
        "tmp": str(tmp_path),
    }
    # the throughput workers' shapes are the full-size model's: here, which runner each backend name gets
    assert run._runner(str(tiny_export), "encoder", "bf16", "openvino").backend == "openvino"
    assert run._runner(str(tiny_export), "relation_pair", "fp32", "openvino-fast").backend == "openvino"
    assert run._runner(str(tiny_export), "encoder", "fp32", "onnxruntime").backend == "onnxruntime"
    starts = [
        run.work_startup({**base, "backend": "openvino", "start": s, "cache": str(tmp_path / "cache")})[0]
        for s in ("first", "second")
    ]
    assert [r["from_cache"] for r in starts] == [0, starts[1]["graphs"]] and starts[1]["graphs"] == 5
