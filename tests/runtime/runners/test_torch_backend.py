import numpy as np
import pytest

from zse_infer.errors import BackendError
from zse_infer.manifest import Manifest
from zse_infer.runtime.runners.select import open_runners


def test_torch_backend_matches_onnxruntime(tiny_export):
    manifest = Manifest.load(tiny_export)
    ort = open_runners(tiny_export, manifest, backend="onnxruntime-cpu")
    pt = open_runners(tiny_export, manifest, backend="torch", checkpoint=tiny_export.parent / "tiny.pth")
    assert pt.backend == "torch"
    x = np.random.default_rng(1).standard_normal((3, 3, 64, 64)).astype(np.float32)
    a, b = ort.encoder.run({"image": x})["tokens"], pt.encoder.run({"image": x})["tokens"]
    assert np.abs(a - b).max() < 1e-4
    sa = ort.relation_head.run({"sketch_tokens": a, "photo_tokens": a[::-1].copy()})["score"]
    sb = pt.relation_head.run({"sketch_tokens": a, "photo_tokens": a[::-1].copy()})["score"]
    assert np.abs(sa - sb).max() < 1e-5


def test_torch_backend_needs_the_checkpoint(tiny_export, tmp_path):
    manifest = Manifest.load(tiny_export)
    manifest.source_checkpoint = {"path": str(tmp_path / "gone.pth")}
    with pytest.raises(BackendError, match="needs the source checkpoint"):
        open_runners(tiny_export, manifest, backend="torch")
