"""One ONNX Runtime per install: no combination of extras pulls both onnxruntime and onnxruntime-gpu.

The two distributions share the import name ``onnxruntime``; pip cannot swap
one for the other, so ``pip install -e .[runtime]`` followed by
``pip install -e .[gpu]`` (or ``.[runtime,gpu]``) must never name both.
"""

import itertools
import logging
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

from zse_infer.runtime.runners import onnxruntime_backend as ortb  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
ORT_NAMES = {"onnxruntime", "onnxruntime-gpu"}


def _extras() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda req: re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower()  # noqa: E731
    extras = {k: {name(r) for r in v} for k, v in project["optional-dependencies"].items()}
    extras[""] = {name(r) for r in project["dependencies"]}
    return extras


def test_no_combination_of_extras_installs_two_onnxruntimes():
    extras = _extras()
    for size in (1, 2, 3):
        for combo in itertools.combinations(sorted(extras), size):
            wanted = set().union(*(extras[e] for e in combo)) & ORT_NAMES
            assert len(wanted) <= 1, f"extras {combo} install {sorted(wanted)}"


def test_runtime_is_the_cpu_onnxruntime_and_gpu_is_tensorrt_within_10x():
    extras = _extras()
    assert "onnxruntime" in extras["runtime"]
    assert not extras["gpu"] & ORT_NAMES and {"tensorrt-cu12", "cuda-python"} <= extras["gpu"]
    gpu = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    assert any(r.startswith("tensorrt-cu12") and "<11" in r for r in gpu)


def test_this_environment_has_one_working_onnxruntime():
    install = ortb.onnxruntime_install()
    assert len(install["distributions"]) == 1, install
    assert "CPUExecutionProvider" in ortb.available_providers()


def test_both_installed_is_named_with_the_fix(monkeypatch, caplog):
    from importlib import metadata

    monkeypatch.setattr(metadata, "version", lambda name: {"onnxruntime": "1.22.0", "onnxruntime-gpu": "1.22.0"}[name])
    assert ortb.onnxruntime_install()["conflict"] is True
    ortb._check_install.cache_clear()  # the check runs once per process; run it again under the patch
    with caplog.at_level(logging.WARNING, logger=ortb.__name__):
        ortb.available_providers()
    assert "both onnxruntime and onnxruntime-gpu are installed" in caplog.text and "pip uninstall" in caplog.text


def test_trt_provider_gets_explicit_profiles_and_a_cache_outside_the_folder(monkeypatch, tmp_path):
    from zse_infer.errors import BackendError
    from zse_infer.manifest import BatchRange, GraphSpec, TensorSpec

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ZSE_CACHE_DIR", raising=False)
    monkeypatch.delenv("ZSE_ORT_TRT_CACHE", raising=False)
    one = TensorSpec("sketch_q", "float32", (1, 4, 8))
    many = TensorSpec("photo_q", "float32", ("batch", 4, 8))
    graph = GraphSpec(
        "relation_pair_trt",
        "relation_pair",
        "fp32",
        "trt",
        "relation_pair_trt.onnx",
        (one, many),
        (TensorSpec("score", "float32", ("batch",)),),
        BatchRange(1, 8, 32),
    )
    opts = ortb.OrtRunner._provider_options(ortb.TRT_EP, graph, 32, None)
    assert opts["trt_profile_min_shapes"] == "photo_q:1x4x8"
    assert opts["trt_profile_opt_shapes"] == "photo_q:8x4x8"
    assert opts["trt_profile_max_shapes"] == "photo_q:32x4x8"
    assert opts["trt_engine_cache_path"] == str(tmp_path / "xdg" / "zse-infer" / "ort-trt")
    monkeypatch.setenv("ZSE_ORT_TRT_CACHE", str(tmp_path / "mine"))
    assert ortb.OrtRunner._provider_options(ortb.TRT_EP, graph, 32, None)["trt_engine_cache_path"] == str(
        tmp_path / "mine"
    )
    assert ortb.OrtRunner._provider_options(ortb.CUDA_EP, graph, 32, None) == {}
    fused = GraphSpec(
        "encoder_fused", "encoder", "fp32", "ort_fused", "encoder_fused.onnx", (many,), (), BatchRange(1, 8, 32)
    )
    with pytest.raises(BackendError, match=r"com\.microsoft"):
        ortb.OrtRunner._provider_options(ortb.TRT_EP, fused, 32, None)


def test_gpu_provider_plan_never_hands_fused_graphs_to_tensorrt(monkeypatch):
    from zse_infer.runtime.runners import select

    monkeypatch.setattr(ortb, "available_providers", lambda: [ortb.TRT_EP, ortb.CUDA_EP, ortb.CPU])
    assert select._ort_plan(True) == ([ortb.TRT_EP, ortb.CUDA_EP, ortb.CPU], ("trt", "plain"))
    monkeypatch.setattr(ortb, "available_providers", lambda: [ortb.CUDA_EP, ortb.CPU])
    assert select._ort_plan(True) == ([ortb.CUDA_EP, ortb.CPU], ("ort_fused", "plain"))
    assert select._ort_plan(False) == ([ortb.CPU], ("ort_fused", "plain"))
