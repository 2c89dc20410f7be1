"""TensorRT needs an NVIDIA GPU: only the clear errors are checked here; engine runs are GPU tests."""

import importlib.util

import pytest

from zse_infer.errors import BackendError, DependencyError
from zse_infer.manifest import Manifest
from zse_infer.runtime.runners import cuda
from zse_infer.runtime.runners.select import open_runners

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = cuda.gpu_count() > 0


def test_gpu_count_is_zero_without_cuda():
    if HAS_GPU:
        pytest.skip("a GPU is present")
    assert cuda.gpu_count() == 0


def test_explicit_tensorrt_backend_fails_clearly(tiny_export):
    if HAS_TRT and HAS_GPU:
        pytest.skip("TensorRT and a GPU are present: see the GPU test")
    with pytest.raises((DependencyError, BackendError), match="TensorRT|tensorrt"):
        open_runners(tiny_export, Manifest.load(tiny_export), backend="tensorrt")


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_TRT and HAS_GPU), reason="needs tensorrt and an NVIDIA GPU (none here)")
def test_tensorrt_matches_onnxruntime_cpu(tiny_export, tmp_path):  # pragma: no cover - GPU only
    import numpy as np
    import shutil

    from zse_infer.engines import build_engines

    folder = tmp_path / "export"
    shutil.copytree(tiny_export, folder)
    build_engines(folder)
    manifest = Manifest.load(folder)
    trt = open_runners(folder, manifest, backend="tensorrt", precision="fp32")
    ort = open_runners(folder, manifest, backend="onnxruntime-cpu")
    x = np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32)
    assert np.abs(trt.encoder.run({"image": x})["tokens"] - ort.encoder.run({"image": x})["tokens"]).max() < 1e-3
