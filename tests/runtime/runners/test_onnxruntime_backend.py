import numpy as np
import pytest
import torch

from zse_infer.errors import IntegrityError, ManifestError
from zse_infer.manifest import Manifest
from zse_infer.model import load_model
from zse_infer.runtime.runners.select import open_runners


def test_cpu_runner_matches_pytorch(tiny_export):
    manifest = Manifest.load(tiny_export)
    runners = open_runners(tiny_export, manifest, backend="onnxruntime-cpu")
    assert runners.backend == "onnxruntime-cpu" and runners.encoder.device == "CPUExecutionProvider"
    model = load_model(tiny_export.parent / "tiny.pth", "tiny")
    x = np.random.default_rng(0).standard_normal((5, 3, 64, 64)).astype(np.float32)
    tokens = runners.encoder.run({"image": x})["tokens"]
    with torch.no_grad():
        ref = model.encode(torch.from_numpy(x)).numpy()
        assert np.abs(tokens - ref).max() < 1e-4
        s, p = tokens[:3], tokens[2:]
        score = runners.relation_head.run({"sketch_tokens": s, "photo_tokens": p})["score"]
        assert np.abs(score - model.relate(torch.from_numpy(s), torch.from_numpy(p)).numpy()).max() < 1e-5


def test_auto_picks_onnxruntime_on_a_cpu_machine(tiny_export, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="zse_infer"):
        runners = open_runners(tiny_export, Manifest.load(tiny_export))
    assert runners.backend == "onnxruntime-cpu"
    assert "backend: onnxruntime-cpu" in caplog.text


def test_tampered_graph_is_refused(tiny_export, tmp_path):
    import shutil

    copy = tmp_path / "export"
    shutil.copytree(tiny_export, copy)
    graph = copy / Manifest.load(copy).select_graph("encoder").file
    graph.write_bytes(graph.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=graph.name):
        Manifest.load(copy)


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        Manifest.load(tmp_path / "nope")
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        Manifest.load(tmp_path)


def test_unknown_backend_and_precision(tiny_export):
    from zse_infer.errors import InputError

    manifest = Manifest.load(tiny_export)
    with pytest.raises(InputError, match="expected one of"):
        open_runners(tiny_export, manifest, backend="cuda")
    with pytest.raises(InputError, match="precision"):
        open_runners(tiny_export, manifest, precision="fp8")
    with pytest.raises(ManifestError, match="int8"):
        open_runners(tiny_export, manifest, backend="onnxruntime-cpu", precision="int8")
