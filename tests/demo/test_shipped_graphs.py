"""The ONNX graphs shipped with the demo (so ``zse-demo`` runs without torch) are exactly
what ``zse-export`` makes from the bundled weights: the same weights by hash, every graph
file intact, and (with torch) every graph's outputs equal to a fresh export's on the same
inputs. Regenerate them with ``python -m tools.demo_graphs``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zse_infer.demo.assets import load_demo_assets
from zse_infer.demo.cli import _copy_shipped, choose_graphs, demo_recipe
from zse_infer.errors import InputError, IntegrityError
from zse_infer.manifest import Manifest


@pytest.fixture(scope="module")
def assets():
    return load_demo_assets()


def test_shipped_graphs_come_from_the_bundled_weights(assets):
    folder = assets.check_shipped_export()
    manifest = Manifest.load(folder)  # verifies every listed file's sha256
    assert manifest.source_checkpoint["sha256"] == assets.model_sha256
    assert manifest.source_checkpoint["path"] == assets.checkpoint.name  # no machine's absolute path
    # exactly the demo recipe's graphs: fp32 plain ones, no engines
    recipe = demo_recipe(assets.config)
    assert {g.variant for g in manifest.graphs.values()} == set(recipe.variants)
    assert {g.precision for g in manifest.graphs.values()} == {"fp32"}
    assert not manifest.engines
    assert sorted(p.name for p in folder.iterdir()) == sorted([*manifest.files, "manifest.json"])


def test_graphs_from_other_weights_are_refused(tmp_path, assets):
    import shutil

    root = tmp_path / "assets"
    shutil.copytree(assets.root, root)
    manifest_path = root / "export" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source_checkpoint"]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=r"regenerate them with `python -m tools\.demo_graphs`"):
        load_demo_assets(root, verify=False).check_shipped_export()


def test_copy_names_the_installed_weights(tmp_path, assets):
    out = _copy_shipped(assets, tmp_path / "export")
    manifest = Manifest.load(out)
    assert Path(manifest.source_checkpoint["path"]) == assets.checkpoint
    assert manifest.source_checkpoint["sha256"] == assets.model_sha256


def test_graph_choice():
    assert choose_graphs("auto", "auto", exportable=True) == "export"
    assert choose_graphs("auto", "onnxruntime", exportable=False) == "shipped"
    assert choose_graphs("shipped", "auto", exportable=True) == "shipped"
    with pytest.raises(InputError, match=r"--graphs export: exporting needs .*zse-infer\[export\]"):
        choose_graphs("export", "auto", exportable=False)
    with pytest.raises(InputError, match="--graphs shipped with --backend tensorrt"):
        choose_graphs("shipped", "tensorrt", exportable=True)


def _inputs(spec, parity) -> dict[str, np.ndarray]:
    """Each input by name from the export's parity inputs, else seeded noise of the declared shape."""
    rng = np.random.default_rng(0)
    feeds = {}
    for t in spec.inputs:
        shape = [d if isinstance(d, int) else 2 for d in t.shape]  # symbolic (batch) dims: 2
        known = parity.get(t.name)
        if (
            known is not None
            and known.ndim == len(shape)
            and all(k >= n for k, n in zip(known.shape, shape, strict=False))
        ):
            feeds[t.name] = np.ascontiguousarray(known[tuple(slice(0, n) for n in shape)])
        else:
            feeds[t.name] = rng.standard_normal(shape).astype(t.dtype)
    return feeds


@pytest.mark.slow
def test_shipped_graphs_equal_a_fresh_export(tmp_path, assets):
    """Parity, not bytes: ONNX serialisation may differ between exporter versions, the numbers may not."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from zse_infer.demo.cli import _export

    shipped = Manifest.load(assets.shipped_export)
    fresh_folder = _export(assets.checkpoint, tmp_path / "fresh", assets.config)
    fresh = Manifest.load(fresh_folder)
    assert set(fresh.graphs) == set(shipped.graphs)
    assert fresh.to_dict()["search"] == shipped.to_dict()["search"]
    assert fresh.to_dict()["model"] == shipped.to_dict()["model"]
    parity = dict(np.load(assets.shipped_export / "parity_inputs.npz"))
    for gid, spec in shipped.graphs.items():
        timing = {"seconds"}  # how long the export took: the one field that may differ
        assert {k: v for k, v in fresh.graphs[gid].to_dict().items() if k not in timing} == {
            k: v for k, v in spec.to_dict().items() if k not in timing
        }, gid
        feeds = _inputs(spec, parity)
        run = {}
        for name, folder in (("shipped", assets.shipped_export), ("fresh", fresh_folder)):
            session = ort.InferenceSession(str(folder / spec.file), providers=["CPUExecutionProvider"])
            run[name] = session.run(None, feeds)
        for a, b, out in zip(run["shipped"], run["fresh"], spec.outputs, strict=False):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"{gid}.{out.name}")
