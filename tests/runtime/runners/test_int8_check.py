"""The runtime never returns wrong int8 tokens in silence: untrusted int8 graphs fall back to fp32 with a warning."""

import logging
import shutil

import numpy as np
import pytest

from zse_infer import Retriever
from zse_infer.manifest import Manifest
from zse_infer.runtime.runners import int8_check

WARNING = "int8 graphs not trusted on this CPU, using fp32 instead"


@pytest.fixture
def folder(tiny_int8_export, tmp_path):
    """A private copy to tamper with."""
    return shutil.copytree(tiny_int8_export, tmp_path / "export")


def _images(folder):
    with np.load(folder / "parity_inputs.npz") as data:
        return data["image"]


def _tokens(r):
    return r.runners.encoder.run({"image": _images(r.export_dir)})["tokens"]


def _assert_fp32_fallback(folder, caplog, reason):
    with caplog.at_level(logging.INFO, logger="zse_infer"):
        r = Retriever.load(folder, precision="int8")
    assert r.runners.precision == "fp32" and r.runners.encoder.graph.precision == "fp32"
    warnings = [
        rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING and WARNING in rec.getMessage()
    ]
    assert len(warnings) == 1 and reason in warnings[0], warnings
    fp32 = Retriever.load(folder, precision="fp32")
    np.testing.assert_array_equal(_tokens(r), _tokens(fp32))


def test_trusted_int8_is_used_and_says_so(tiny_int8_export, caplog):
    with caplog.at_level(logging.INFO, logger="zse_infer"):
        r = Retriever.load(tiny_int8_export, precision="int8")
    assert r.runners.precision == "int8" and r.runners.encoder.graph.id == "encoder_int8"
    assert any("int8 graphs in use: self-check passed on" in rec.getMessage() for rec in caplog.records)
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]


def test_failed_recorded_check_falls_back_to_fp32(folder, caplog):
    m = Manifest.load(folder)
    m.extra["tolerances"]["int8"]["tokens"] = 1e-9  # no int8 graph meets this
    m.save(folder)
    _assert_fp32_fallback(folder, caplog, "tokens ")


def test_perturbed_int8_graph_falls_back_to_fp32(folder, caplog):
    import onnx
    from onnx import numpy_helper

    from zse_infer.exporting.folder import write_manifest

    proto = onnx.load(str(folder / "encoder_int8.onnx"))
    for t in proto.graph.initializer:  # wrong weight scales: what a miscomputing CPU kernel would look like
        if t.name.endswith("_scale"):
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 3, t.name))
    onnx.save(proto, str(folder / "encoder_int8.onnx"))
    write_manifest(folder, Manifest.load(folder, verify=False))  # hashes match: only the self-check can tell
    _assert_fp32_fallback(folder, caplog, "self-check against parity_inputs.npz failed")


def test_8bit_graph_is_refused_on_a_cpu_without_vnni(folder, caplog, monkeypatch):
    xeon = {
        "vendor": "GenuineIntel",
        "model": "Intel Xeon",
        "machine": "x86_64",
        "flags": ["avx2", "avx512f", "avx512bw"],
        "vnni": False,
        "u8s8_exact": False,
        "source": "test",
    }
    monkeypatch.setattr(int8_check, "cpu_features", lambda: xeon)
    assert Retriever.load(folder, precision="int8").runners.precision == "int8"  # 7-bit weights: fine without VNNI
    m = Manifest.load(folder)
    for gid in ("encoder_int8", "relation_head_int8"):
        m.graphs[gid].extra.pop("quantization")  # as written before 7-bit weights
    m.save(folder)
    _assert_fp32_fallback(
        folder, caplog, "8-bit weights, which can saturate on this CPU (Intel Xeon [avx2, avx512f, avx512bw], no VNNI)"
    )
