"""The benchmark's query group and gallery-size record on the Lance store.

Tiny model, small galleries; no timing asserted.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import run

from zse_infer.manifest import Manifest
from zse_infer.runtime.gallery.store import Gallery


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    """The seeded tiny model, exported with what search needs only (fp32 plain graphs and the restructured
    relation head): about a third of the shared fixture's time, so this file alone stays well under a minute."""
    torch = pytest.importorskip("torch")
    from dataclasses import replace

    from zse_infer.exporting.pipeline import ExportOptions, export_model
    from zse_infer.exporting.recipes import load_recipe
    from zse_infer.model import ZseModel

    root = tmp_path_factory.mktemp("tiny_query")
    torch.manual_seed(0)
    torch.save({"model": ZseModel("tiny").state_dict()}, root / "tiny.pth")
    recipe = replace(load_recipe("tiny"), variants=("plain",), precisions=("fp32",))
    export_model(
        root / "tiny.pth",
        root / "out",
        config="tiny",
        recipe=recipe,
        options=ExportOptions(lint="never", engines="never"),
    )
    return root / "out"


def test_synthetic_gallery_has_near_rows_with_real_tokens_and_zero_rows_elsewhere(tiny_export, tmp_path):
    manifest = Manifest.load(tiny_export, verify=False)
    width = manifest.model.width
    near = np.eye(2, width, dtype=np.float32)
    run.synthetic_gallery(tmp_path / "g", 700, manifest, near, per_query=20, projections=True, commit=300)
    g = Gallery.open(tmp_path / "g")
    snap = g.snapshot
    assert len(g) == 700 and len(set(snap.ids)) == 700 and g.projections
    rows, ids = snap.row_ids(), snap.ids
    hot = np.array([i.startswith(run.NEAR) for i in ids])
    assert hot.sum() == 40
    assert np.abs(snap.tokens(rows[hot][:3])).max() > 0 and np.abs(g.projections_of(rows[hot][:3])).max() > 0
    assert np.abs(snap.tokens(rows[~hot][-3:])).max() == 0  # written by the fast (template) appends
    assert np.allclose(np.linalg.norm(snap.ret_matrix(), axis=1), 1, atol=1e-5)
    cos = snap.ret_matrix() @ near.T
    assert cos[hot].max(axis=1).min() > cos[~hot].max()  # stage 1 puts every near row before the others


def test_query_group_runs_every_mode_on_the_store(tiny_export, tmp_path):
    records = run.work_query(
        {"export_dir": str(tiny_export), "gallery": 500, "cfg": {"queries": 2}, "tmp": str(tmp_path)}
    )
    assert [r["mode"] for r in records] == ["stage1", "two_stage", "two_stage_stored"]
    for r in records:
        assert r["component"] == "query" and r["gallery"] == 500 and r["unit"] == "ms" and len(r["times_s"]) == 2
        assert r["value"] > 0 and r["p95_ms"] >= r["value"] * 0.5 and r["stage1_index"] == "exact"
        assert 0 <= r["stage1_ms"] + r["stage2_ms"] <= r["value"]
    assert records[0]["stage2_ms"] < records[1]["stage2_ms"]  # stage 1 only: no relation head


def test_storage_record_reads_the_lance_dataset(tiny_export, tmp_path):
    r = run.storage_record(tiny_export, tmp_path)
    manifest = Manifest.load(tiny_export, verify=False)
    assert r["unit"] == "bytes/photo" and r["value"] > 2 * manifest.model.num_tokens * manifest.model.width
