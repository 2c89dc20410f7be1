"""Engine cache keys and lookups: pure Python, no TensorRT needed."""

import json

import pytest

from zse_infer.runtime.runners.engine_cache import EngineCache, EngineKey, default_cache_dir, engine_file_name, find_engine
from zse_infer.manifest import BatchRange, GraphSpec, Manifest, TensorSpec
from zse_infer.config import get_config


def _key(**change):
    fields = dict(
        onnx_sha256="a" * 64,
        tensorrt_version="10.3.0",
        compute_capability="8.6",
        precision="fp16",
        profile={"image": {"min": [1, 3, 224, 224], "opt": [16, 3, 224, 224], "max": [64, 3, 224, 224]}},
    )
    fields.update(change)
    return EngineKey(**fields)


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "b" * 64},
        {"tensorrt_version": "10.4.0"},
        {"compute_capability": "8.9"},
        {"precision": "fp32"},
        {"profile": {"image": {"min": [1, 3, 224, 224], "opt": [16, 3, 224, 224], "max": [128, 3, 224, 224]}}},
    ],
)
def test_every_key_field_changes_the_digest(change):
    assert _key().digest() != _key(**change).digest()


def test_digest_is_stable_and_order_independent():
    a = _key(profile={"x": {"min": [1], "opt": [2], "max": [3]}, "y": {"min": [1], "opt": [1], "max": [1]}})
    b = _key(profile={"y": {"min": [1], "opt": [1], "max": [1]}, "x": {"min": [1], "opt": [2], "max": [3]}})
    assert a.digest() == b.digest() and len(a.digest()) == 64
    assert EngineKey.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_engine_file_name_is_readable_and_unique_per_key():
    name = engine_file_name("encoder_trt_fp16", _key())
    assert name.startswith("trt/encoder_trt_fp16.sm86.trt10.3.0.") and name.endswith(".engine")
    assert name != engine_file_name("encoder_trt_fp16", _key(compute_capability="8.9"))


def test_cache_put_get_and_stale_entries(tmp_path):
    cache = EngineCache(tmp_path / "cache")
    key = _key()
    assert cache.get(key) is None
    path = cache.put(key, b"engine-bytes", {"graph": "encoder_trt_fp16"})
    assert cache.get(key) == path and path.read_bytes() == b"engine-bytes"
    assert cache.get(_key(tensorrt_version="10.4.0")) is None  # another TensorRT: a miss, never a stale hit
    path.write_bytes(b"corrupted")
    assert cache.get(key) is None  # hash recorded beside the engine no longer matches


def test_timing_cache_is_per_version_and_gpu(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.timing_cache_path("10.3.0", "8.6").name == "timing.trt10.3.0.sm86.cache"
    assert cache.timing_cache_path("10.3.0", "8.6") != cache.timing_cache_path("10.3.0", "9.0")


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("ZSE_ENGINE_CACHE", raising=False)
    assert default_cache_dir().as_posix() == "engines/cache"
    monkeypatch.setenv("ZSE_ENGINE_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path


def _manifest(onnx_sha: str) -> Manifest:
    spec = TensorSpec("image", "float32", ("batch", 3, 64, 64))
    graph = GraphSpec("encoder_trt", "encoder", "fp32", "trt", "encoder_trt.onnx", (spec,), (), BatchRange(1, 2, 4))
    return Manifest(model=get_config("tiny"), graphs={"encoder_trt": graph}, files={"encoder_trt.onnx": onnx_sha})


def test_find_engine_only_returns_engines_of_the_current_graph_trt_and_gpu():
    profile = {"image": {"min": [1, 3, 64, 64], "opt": [2, 3, 64, 64], "max": [4, 3, 64, 64]}}
    key = _key(onnx_sha256="c" * 64, precision="fp32", profile=profile)
    manifest = _manifest("c" * 64)
    manifest.engines = [{"graph": "encoder_trt", "precision": "fp32", "cache_key": key.digest(), "key": key.to_dict()}]
    assert find_engine(manifest, "encoder_trt", "10.3.0", "8.6") is manifest.engines[0]
    assert find_engine(manifest, "encoder_trt", "10.4.0", "8.6") is None
    assert find_engine(manifest, "encoder_trt", "10.3.0", "7.5") is None
    assert find_engine(manifest, "encoder", "10.3.0", "8.6") is None
    manifest.files["encoder_trt.onnx"] = "d" * 64  # graph re-exported: the old engine is stale
    assert find_engine(manifest, "encoder_trt", "10.3.0", "8.6") is None


def test_locate_engine_for_the_runtime(tmp_path, monkeypatch):
    from zse_infer.runtime.runners import trt_environment as environment
    from zse_infer.runtime.runners.engine_locate import locate_engine
    from zse_infer.errors import BackendError, IntegrityError
    from zse_infer.manifest import sha256_file

    profile = {"image": {"min": [1, 3, 64, 64], "opt": [2, 3, 64, 64], "max": [4, 3, 64, 64]}}
    key = _key(onnx_sha256="c" * 64, precision="fp32", profile=profile)
    (tmp_path / "trt").mkdir()
    engine = tmp_path / engine_file_name("encoder_trt", key)
    engine.write_bytes(b"serialized engine")
    manifest = _manifest("c" * 64)
    manifest.files[engine.relative_to(tmp_path).as_posix()] = sha256_file(engine)
    manifest.engines = [{"graph": "encoder_trt", "precision": "fp32", "file": engine.relative_to(tmp_path).as_posix(),
                         "cache_key": key.digest(), "key": key.to_dict()}]
    graph = manifest.graphs["encoder_trt"]

    monkeypatch.setattr(environment, "probe_tensorrt", lambda: environment.TrtEnvironment(False, "no GPU here"))
    with pytest.raises(BackendError, match="cannot run here: no GPU here"):
        locate_engine(tmp_path, manifest, graph)

    def env(cc):  # stands for the machine's versions; no engine is deserialised or run here
        return lambda: environment.TrtEnvironment(True, "", "10.3.0", cc, "test GPU")

    monkeypatch.setattr(environment, "probe_tensorrt", env("8.6"))
    assert locate_engine(tmp_path, manifest, graph) == engine
    monkeypatch.setattr(environment, "probe_tensorrt", env("9.0"))
    with pytest.raises(BackendError, match=r"no engine for graph encoder_trt .* compute capability 9.0.*sm 8.6"):
        locate_engine(tmp_path, manifest, graph)
    monkeypatch.setattr(environment, "probe_tensorrt", env("8.6"))
    engine.write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        locate_engine(tmp_path, manifest, graph)
