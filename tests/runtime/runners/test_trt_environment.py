"""Without TensorRT or a GPU: clear errors, and the engine-building entry points refuse before touching CUDA."""

import sys
import types

import pytest

from zse_infer.config import get_config
from zse_infer.engines.build import build_engines, engine_graphs
from zse_infer.errors import DependencyError, ExportError
from zse_infer.manifest import GraphSpec, Manifest, TensorSpec
from zse_infer.runtime.runners import trt_environment as environment
from zse_infer.runtime.runners.trt_environment import probe_tensorrt, require_tensorrt


@pytest.fixture
def no_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError


def test_missing_tensorrt_says_how_to_install(no_tensorrt):
    env = probe_tensorrt()
    assert not env.ready and "pip install 'zse-infer[gpu]'" in env.reason
    with pytest.raises(DependencyError, match="'tensorrt' package is not installed"):
        require_tensorrt()


def test_nvidia_download_stub_is_recognised(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # the PyPI stub has no Builder
    env = probe_tensorrt()
    assert not env.ready and "download stub" in env.reason


def test_tensorrt_without_gpu_is_refused_before_any_cuda_call(monkeypatch):
    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.3.0"
    fake.Builder = object  # present only so the stub check passes; never called below
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(environment, "probe_gpu", lambda: (None, None, "no CUDA GPU is visible"))
    env = probe_tensorrt()
    assert not env.ready and env.version == "10.3.0" and "no CUDA GPU" in env.reason
    with pytest.raises(ExportError, match="needs an NVIDIA GPU"):
        require_tensorrt()


@pytest.mark.parametrize("version", ["8.6.1", "11.4.0"])
def test_tensorrt_outside_10x_is_refused(monkeypatch, version):
    """8.x lacks the name-based tensor API; 11 removed the weakly typed API and is not claimed (see tensorrt_build)."""
    fake = types.ModuleType("tensorrt")
    fake.__version__ = version
    fake.Builder = object
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    env = probe_tensorrt()
    assert not env.ready and "expected TensorRT 10.x (>=10.0,<11)" in env.reason
    with pytest.raises(DependencyError, match=r"expected TensorRT 10\.x"):
        require_tensorrt()


def test_build_engines_checks_the_folder_then_tensorrt(no_tensorrt, tmp_path):
    from zse_infer.errors import ManifestError

    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        build_engines(tmp_path)


def _graph(gid, precision, variant):
    spec = TensorSpec("image", "float32", ("batch", 3, 64, 64))
    return GraphSpec(gid, "encoder", precision, variant, f"{gid}.onnx", (spec,), ())


def test_engine_graphs_prefers_fp16_and_names_what_is_missing():
    graphs = {
        g.id: g
        for g in [
            _graph("encoder", "fp32", "plain"),
            _graph("encoder_trt", "fp32", "trt"),
            _graph("encoder_trt_fp16", "fp16", "trt"),
        ]
    }
    manifest = Manifest(model=get_config("tiny"), graphs=graphs, files={})
    assert [g.id for g in engine_graphs(manifest)] == ["encoder_trt_fp16"]
    assert [g.id for g in engine_graphs(manifest, ["fp32", "fp16"])] == ["encoder_trt", "encoder_trt_fp16"]
    del graphs["encoder_trt_fp16"]
    assert [g.id for g in engine_graphs(manifest)] == ["encoder_trt"]
    with pytest.raises(ExportError, match=r"--precision: received \['fp16'\]"):
        engine_graphs(manifest, ["fp16"])
    manifest.graphs = {"encoder": graphs["encoder"]}
    with pytest.raises(ExportError, match="no TensorRT graphs"):
        engine_graphs(manifest)
