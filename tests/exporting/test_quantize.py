"""int8 graphs: opt-in, validated against PyTorch within the documented tolerance, usable by the runtime."""

import numpy as np
import pytest
import torch

from zse_infer import Retriever
from zse_infer.exporting.pipeline import ExportOptions, export_model
from zse_infer.exporting.quantize import DEFAULT_INT8_TOLERANCES
from zse_infer.manifest import Manifest
from zse_infer.testing.images import make_photo_files


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    from zse_infer.model import ZseModel

    root = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    torch.save({"model": ZseModel("tiny").state_dict()}, root / "tiny.pth")
    export_model(root / "tiny.pth", root / "out", config="tiny", options=ExportOptions(int8=True, extra_graphs=False))
    return root / "out"


def test_int8_graphs_are_recorded_with_their_parity(int8_export):
    m = Manifest.load(int8_export)
    enc, head = m.graphs["encoder_int8"], m.graphs["relation_head_int8"]
    assert (enc.precision, head.precision) == ("int8", "int8")
    assert enc.parity["tokens"] <= DEFAULT_INT8_TOLERANCES["tokens"]
    assert head.parity["score"] <= DEFAULT_INT8_TOLERANCES["score"]
    assert enc.extra["ret_token_cosine_min"] >= 0.99
    assert m.extra["tolerances"]["int8"] == DEFAULT_INT8_TOLERANCES
    assert (int8_export / enc.file).stat().st_size < (int8_export / m.graphs["encoder"].file).stat().st_size


def test_runtime_runs_int8_on_request_only(int8_export, tmp_path, golden_images):
    photos = make_photo_files(tmp_path / "p", 6, size=64)
    fp32 = Retriever.load(int8_export)
    int8 = Retriever.load(int8_export, precision="int8")
    assert fp32.runners.precision == "fp32" and int8.runners.precision == "int8"
    assert int8.runners.encoder.graph.id == "encoder_int8"
    for r in (fp32, int8):
        r.index(photos, progress=False)
    a = fp32.gallery.ret_matrix()
    b = int8.gallery.ret_matrix()
    assert np.min((a * b).sum(1)) > 0.99
    top_fp32 = [h.id for h in fp32.search(golden_images["sketch"][0], k=3, rerank=0)]
    top_int8 = [h.id for h in int8.search(golden_images["sketch"][0], k=3, rerank=0)]
    assert len(set(top_fp32) & set(top_int8)) >= 2
