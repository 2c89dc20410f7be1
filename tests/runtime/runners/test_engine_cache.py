"""Engine cache keys and lookups: pure Python, no TensorRT needed."""

import json

import pytest

from zse_infer.config import get_config
from zse_infer.manifest import BatchRange, GraphSpec, Manifest, TensorSpec
from zse_infer.runtime.runners.engine_cache import (
    EngineCache,
    EngineKey,
    default_cache_dir,
    engine_file_name,
    find_engine,
)


def _key(**change):
    fields = dict(
        onnx_sha256="a" * 64,
        tensorrt_version="10.3.0",
        compute_capability="8.6",
        precision="fp16",
        profile={"image": {"min": [1, 3, 224, 224], "opt": [16, 3, 224, 224], "max": [64, 3, 224, 224]}},
        device_name="NVIDIA A10",
        builder={"workspace_mib": 4096, "builder_optimization_level": 3, "strongly_typed": True, "tf32": False},
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
        # Same compute capability (8.6), another GPU model: TensorRT plans are not portable between them.
        {"device_name": "NVIDIA A40"},
        {"device_name": "NVIDIA GeForce RTX 3090"},
    ],
)
def test_every_key_field_changes_the_digest(change):
    assert _key().digest() != _key(**change).digest()


@pytest.mark.parametrize(
    "setting, value",
    [("workspace_mib", 1024), ("builder_optimization_level", 5), ("strongly_typed", False), ("tf32", True)],
)
def test_every_builder_setting_changes_the_digest(setting, value):
    base = _key()
    assert base.digest() != _key(builder={**base.builder, setting: value}).digest()


def test_build_settings_from_the_recipe_feed_the_key():
    from zse_infer.engines.tensorrt_build import BuildSettings

    a = BuildSettings.from_recipe("fp16", {"workspace_mib": 512, "builder_optimization_level": 3})
    assert a.key_fields() == {
        "workspace_mib": 512,
        "builder_optimization_level": 3,
        "strongly_typed": True,
        "tf32": False,
    }
    for change in (
        {"workspace_mib": 1024},
        {"builder_optimization_level": 4},
        {"tf32": True},
        {"strongly_typed": False},
    ):
        b = BuildSettings.from_recipe("fp16", {"workspace_mib": 512, "builder_optimization_level": 3, **change})
        assert _key(builder=a.key_fields()).digest() != _key(builder=b.key_fields()).digest()


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


def test_timing_cache_is_per_version_and_gpu_model(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.timing_cache_path("10.3.0", "8.6", "NVIDIA A10").name == "timing.trt10.3.0.sm86.nvidia-a10.cache"
    assert cache.timing_cache_path("10.3.0", "8.6", "NVIDIA A10") != cache.timing_cache_path(
        "10.3.0", "9.0", "NVIDIA A10"
    )
    assert cache.timing_cache_path("10.3.0", "8.6", "NVIDIA A10") != cache.timing_cache_path(
        "10.3.0", "8.6", "NVIDIA A40"
    )


def _put_worker(root, payload_byte, barrier):
    from zse_infer.runtime.runners.engine_cache import EngineCache

    barrier.wait()
    EngineCache(root).put(_key(), bytes([payload_byte]) * (8 << 20), {"writer": payload_byte})


def test_two_processes_putting_one_key_leave_one_intact_entry(tmp_path):
    """Two builders (say two pods on one cache volume) store the same key at once, 8 MiB each."""
    import hashlib
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_put_worker, args=(tmp_path, b, barrier)) for b in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = EngineCache(tmp_path)
    path = cache.get(_key())
    assert path is not None  # sidecar key and hash agree with the engine file
    data = path.read_bytes()
    assert len(data) == 8 << 20 and len(set(data)) == 1  # one writer's bytes, not a mix
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["sha256"] == hashlib.sha256(data).hexdigest() and meta["writer"] == data[0]
    assert not list(tmp_path.glob("*.tmp"))  # no temporary files left behind


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
    assert find_engine(manifest, "encoder_trt", "10.3.0", "8.6", "NVIDIA A10") is manifest.engines[0]
    assert find_engine(manifest, "encoder_trt", "10.3.0", "8.6", "NVIDIA A40") is None  # same sm, other GPU model
    assert find_engine(manifest, "encoder_trt", "10.4.0", "8.6") is None
    assert find_engine(manifest, "encoder_trt", "10.3.0", "7.5") is None
    assert find_engine(manifest, "encoder", "10.3.0", "8.6") is None
    manifest.files["encoder_trt.onnx"] = "d" * 64  # graph re-exported: the old engine is stale
    assert find_engine(manifest, "encoder_trt", "10.3.0", "8.6", "NVIDIA A10") is None


def test_locate_engine_for_the_runtime(tmp_path, monkeypatch):
    from zse_infer.errors import BackendError, IntegrityError
    from zse_infer.manifest import sha256_file
    from zse_infer.runtime.runners import trt_environment as environment
    from zse_infer.runtime.runners.engine_locate import locate_engine

    profile = {"image": {"min": [1, 3, 64, 64], "opt": [2, 3, 64, 64], "max": [4, 3, 64, 64]}}
    key = _key(onnx_sha256="c" * 64, precision="fp32", profile=profile)
    (tmp_path / "trt").mkdir()
    engine = tmp_path / engine_file_name("encoder_trt", key)
    engine.write_bytes(b"serialized engine")
    manifest = _manifest("c" * 64)
    manifest.files[engine.relative_to(tmp_path).as_posix()] = sha256_file(engine)
    manifest.engines = [
        {
            "graph": "encoder_trt",
            "precision": "fp32",
            "file": engine.relative_to(tmp_path).as_posix(),
            "cache_key": key.digest(),
            "key": key.to_dict(),
        }
    ]
    graph = manifest.graphs["encoder_trt"]

    monkeypatch.setattr(environment, "probe_tensorrt", lambda: environment.TrtEnvironment(False, "no GPU here"))
    with pytest.raises(BackendError, match="cannot run here: no GPU here"):
        locate_engine(tmp_path, manifest, graph)

    def env(cc):  # stands for the machine's versions; no engine is deserialised or run here
        return lambda: environment.TrtEnvironment(True, "", "10.3.0", cc, "NVIDIA A10")

    monkeypatch.setattr(environment, "probe_tensorrt", env("8.6"))
    assert locate_engine(tmp_path, manifest, graph) == engine
    monkeypatch.setattr(environment, "probe_tensorrt", env("9.0"))
    with pytest.raises(BackendError, match=r"no engine for graph encoder_trt .* compute capability 9.0.*sm 8.6"):
        locate_engine(tmp_path, manifest, graph)
    monkeypatch.setattr(environment, "probe_tensorrt", env("8.6"))
    engine.write_bytes(b"tampered")
    with pytest.raises(IntegrityError):
        locate_engine(tmp_path, manifest, graph)
