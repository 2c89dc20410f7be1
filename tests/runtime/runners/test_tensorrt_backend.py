"""TensorRT needs an NVIDIA GPU: only the clear errors are checked here; engine runs are GPU tests."""

import importlib.util

import pytest

from zse_infer.errors import BackendError, DependencyError
from zse_infer.manifest import Manifest
from zse_infer.runtime.runners import cuda
from zse_infer.runtime.runners.select import open_runners

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = cuda.gpu_count() > 0


class _CudartStandIn:
    """Records nothing, runs nothing: answers cudaGetDeviceCount like the CUDA runtime would."""

    class cudaError_t:
        cudaSuccess = 0
        cudaErrorNoDevice = 100

    def __init__(self, err, count):
        self.answer = (err, count)

    def cudaGetDeviceCount(self):
        return self.answer


def test_gpu_count_reads_the_cuda_runtime(monkeypatch):
    monkeypatch.setattr(cuda, "_cudart", lambda: _CudartStandIn(0, 2))
    assert cuda.gpu_count() == 2
    monkeypatch.setattr(cuda, "_cudart", lambda: _CudartStandIn(100, 0))  # no driver / no device: an error code
    assert cuda.gpu_count() == 0


def test_gpu_count_is_zero_without_cuda_python(monkeypatch):
    def missing():
        raise DependencyError("CUDA access needs the 'cuda-python' package")

    monkeypatch.setattr(cuda, "_cudart", missing)
    assert cuda.gpu_count() == 0 and not cuda.available()


@pytest.mark.gpu
def test_gpu_count_agrees_with_torch():  # pragma: no cover - GPU only
    torch = pytest.importorskip("torch")
    if not (cuda.available() and torch.cuda.is_available()):
        pytest.skip("needs cuda-python and a CUDA GPU visible to torch (none here)")
    assert cuda.gpu_count() == torch.cuda.device_count() > 0


def test_explicit_tensorrt_backend_fails_clearly(tiny_export):
    if HAS_TRT and HAS_GPU:
        pytest.skip("TensorRT and a GPU are present: see the GPU test")
    with pytest.raises((DependencyError, BackendError), match=r"TensorRT|tensorrt"):
        open_runners(tiny_export, Manifest.load(tiny_export), backend="tensorrt")


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_TRT and HAS_GPU), reason="needs tensorrt and an NVIDIA GPU (none here)")
def test_tensorrt_matches_onnxruntime_cpu(tiny_export, tmp_path):  # pragma: no cover - GPU only
    import shutil

    import numpy as np

    from zse_infer.engines import build_engines

    folder = tmp_path / "export"
    shutil.copytree(tiny_export, folder)
    build_engines(folder)
    manifest = Manifest.load(folder)
    trt = open_runners(folder, manifest, backend="tensorrt", precision="fp32")
    ort = open_runners(folder, manifest, backend="onnxruntime-cpu")
    x = np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32)
    assert np.abs(trt.encoder.run({"image": x})["tokens"] - ort.encoder.run({"image": x})["tokens"]).max() < 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_TRT and HAS_GPU), reason="needs tensorrt and an NVIDIA GPU (none here)")
def test_tensorrt_runner_is_thread_safe_and_honours_a_raised_max_batch(tiny_export, tmp_path):  # pragma: no cover
    import shutil
    import threading

    import numpy as np

    from zse_infer.engines import build_engines

    folder = tmp_path / "export"
    shutil.copytree(tiny_export, folder)
    build_engines(folder, cache_dir=tmp_path / "cache", max_batch={"encoder": 40})  # recipe max is 16
    manifest = Manifest.load(folder)
    trt = open_runners(folder, manifest, backend="tensorrt", precision="fp32")
    assert trt.encoder.max_batch == 40
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((b, 3, 64, 64)).astype(np.float32) for b in (1, 7, 40, 3, 16, 29, 2, 11)]
    want = [trt.encoder.run({"image": x})["tokens"] for x in inputs]
    got = [None] * len(inputs)

    def work(i):
        for _ in range(5):
            got[i] = trt.encoder.run({"image": inputs[i]})["tokens"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w, g in zip(want, got, strict=True):
        assert g.shape == w.shape and np.array_equal(g, w)


@pytest.mark.gpu
@pytest.mark.skipif(not (HAS_TRT and HAS_GPU), reason="needs tensorrt and an NVIDIA GPU (none here)")
def test_tensorrt_relation_engines_rerank_like_the_relation_head(tiny_export, tmp_path):  # pragma: no cover
    import shutil

    from tests.support.relation import rerank_gap
    from zse_infer.engines import build_engines
    from zse_infer.runtime.runners.select import open_relation_runners

    folder = tmp_path / "export"
    shutil.copytree(tiny_export, folder)
    build_engines(folder, cache_dir=tmp_path / "cache", precisions=("fp32",))
    manifest = Manifest.load(folder)
    trt = open_runners(folder, manifest, backend="tensorrt", precision="fp32")
    fast = open_relation_runners(folder, manifest, trt)
    assert fast is not None and all(r.backend == "tensorrt" for r in fast.values())
    assert rerank_gap(fast, trt, manifest, photos=9) < 1e-4
