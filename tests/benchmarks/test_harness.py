"""The benchmark harness's own logic (no timing asserted): ratios, tables, the official baseline."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import run


def _rec(component, backend, value, **setting):
    return run.record(component, backend, "fp32", setting, value, "x/s", [1.0])


def test_ratios_are_against_the_official_figure_of_the_same_setting():
    records = [
        _rec("encoder", "official", 2.0, batch=8),
        _rec("encoder", "onnxruntime", 3.0, batch=8),
        _rec("encoder", "onnxruntime", 5.0, batch=1),  # no official figure at batch 1
        _rec("relation_head", "official", 10.0, rerank=100),
        _rec("relation_head", "onnxruntime-fast", 17.0, rerank=100),
        run.record("query", "onnxruntime-cpu", "fp32", {"gallery": 1000, "mode": "stage1"}, 12.0, "ms", [0.012]),
    ]
    run.add_ratios(records)
    assert [r["ratio_vs_official"] for r in records] == [1.0, 1.5, None, 1.0, 1.7, None]


def test_table_and_plot(tmp_path):
    records = [
        _rec("encoder", "official", 2.0, batch=8),
        run.record(
            "query", "onnxruntime-cpu", "fp32", {"gallery": 1000, "mode": "stage1"}, 12.0, "ms", [0.012], p95_ms=13.0
        ),
        {"component": "encoder", "backend": "tensorrt", "note": "skipped: no GPU on this machine"},
    ]
    run.add_ratios(records)
    text = run.write_table(
        records, {"cpu": "cpu", "cores": 2, "torch": "t", "onnxruntime": "o", "gpus": 0}, tmp_path / "r.md"
    )
    assert "| encoder | official | fp32 | batch 8 | 2.00 | x/s | 1.00 |" in text
    assert "skipped: no GPU" in text and "(p95 13)" in text
    pytest.importorskip("matplotlib")
    run.write_plot(records, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000


@pytest.mark.slow
def test_official_reference_reproduces_the_golden_vectors(parity_state, golden):
    import torch
    from official_reference import load_official, official_rerank

    encoder, head = load_official(parity_state)
    with torch.no_grad():
        tokens = encoder(torch.from_numpy(golden["sketch_pixels"])).numpy()
        assert np.abs(tokens - golden["sketch_tokens"]).max() <= 1e-4
        photos = torch.from_numpy(golden["photo_tokens"])
        for i in range(3):
            scores = official_rerank(head, torch.from_numpy(golden["sketch_tokens"][i : i + 1]), photos).numpy()
            assert np.abs(scores - golden["rn_scores"][i]).max() <= 1e-5
