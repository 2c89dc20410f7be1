"""What the engine build code hands TensorRT, checked with a stand-in that records calls.

``RecordingTensorRTStandIn`` is NOT TensorRT and builds nothing: it only
records which timing cache, profile shapes and builder settings the build
code passes in, so the wiring can be checked on a CPU machine. It is never
used to claim that an engine builds or runs (those are the GPU tests).
"""

from __future__ import annotations

import types

from zse_infer.config import get_config
from zse_infer.engines import build as build_module
from zse_infer.manifest import BatchRange, GraphSpec, Manifest, TensorSpec
from zse_infer.runtime.runners import trt_environment as environment
from zse_infer.runtime.runners.engine_cache import EngineCache

ENV = environment.TrtEnvironment(True, "", "10.9.0", "8.6", "NVIDIA A10")  # stands for a machine; nothing runs


class _Cache:
    def __init__(self, data: bytes):
        self.entries = {e for e in bytes(data).split(b"|") if e}

    def combine(self, other: _Cache, ignore_mismatch: bool) -> bool:
        self.entries |= other.entries
        return True

    def serialize(self) -> bytes:
        return b"|".join(sorted(self.entries))


def make_standin(log: list, during_build=None) -> types.SimpleNamespace:
    """A namespace shaped like the parts of ``tensorrt`` that tensorrt_build.py calls, recording each call."""

    class Config:
        def __init__(self):
            self.cache = None
            self.flags = {}

        def set_memory_pool_limit(self, pool, size):
            log.append(("workspace", size))

        def set_flag(self, flag):
            self.flags[flag] = True

        def clear_flag(self, flag):
            self.flags[flag] = False

        def add_optimization_profile(self, profile):
            log.append(("profile", dict(profile.shapes)))

        def create_timing_cache(self, data: bytes):
            log.append(("create_timing_cache", bytes(data)))
            return _Cache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            log.append(("set_timing_cache", cache.serialize(), ignore_mismatch))
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, mn, opt, mx):
            self.shapes[name] = (tuple(mn), tuple(opt), tuple(mx))

    class Network:
        num_layers = 3

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            name = next(c[1] for c in reversed(log) if c[0] == "parsed")
            config.cache.entries.add(f"tactics-of-{name}".encode())  # what a real build would measure
            if during_build:
                during_build()
            log.append(("build", config.builder_optimization_level))
            return f"plan of {name}".encode()

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            log.append(("parsed", path.rsplit("/", 1)[-1]))
            return True

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    return types.SimpleNamespace(
        Logger=Logger,
        Builder=Builder,
        OnnxParser=OnnxParser,
        NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=0),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE=0),
        BuilderFlag=types.SimpleNamespace(FP16="FP16", TF32="TF32"),
    )


def _folder(tmp_path):
    cfg = get_config("tiny")
    n, d, s = cfg.num_tokens, cfg.width, cfg.encoder.image_size
    tok = TensorSpec("tokens", "float32", ("batch", n, d))
    graphs = {
        "encoder_trt": GraphSpec(
            "encoder_trt",
            "encoder",
            "fp32",
            "trt",
            "encoder_trt.onnx",
            (TensorSpec("image", "float32", ("batch", 3, s, s)),),
            (tok,),
            BatchRange(1, 4, 16),
        ),
        "relation_head_trt": GraphSpec(
            "relation_head_trt",
            "relation_head",
            "fp32",
            "trt",
            "relation_head_trt.onnx",
            (
                TensorSpec("sketch_tokens", "float32", ("batch", n, d)),
                TensorSpec("photo_tokens", "float32", ("batch", n, d)),
            ),
            (TensorSpec("score", "float32", ("batch",)),),
            BatchRange(1, 8, 32),
        ),
    }
    for g in graphs.values():
        (tmp_path / g.file).write_bytes(f"onnx bytes of {g.id}".encode())
    return Manifest(model=cfg, graphs=graphs, files={})


def _build(tmp_path, monkeypatch, standin, **kwargs):
    monkeypatch.setattr(build_module, "require_tensorrt", lambda: (standin, ENV))
    manifest = _folder(tmp_path)
    entries = build_module.build_engines_for_manifest(
        tmp_path,
        manifest,
        recipe_trt={"workspace_mib": 512, "builder_optimization_level": 3},
        env=ENV,
        cache_dir=tmp_path / "cache",
        **kwargs,
    )
    return manifest, entries


def test_the_stored_timing_cache_is_passed_in_and_merged_after_each_graph(tmp_path, monkeypatch):
    log: list = []
    cache = EngineCache(tmp_path / "cache")
    timing = cache.timing_cache_path(ENV.version, ENV.compute_capability, ENV.device)
    timing.parent.mkdir(parents=True)
    timing.write_bytes(b"seed")

    _build(tmp_path, monkeypatch, make_standin(log))

    handed = [c for c in log if c[0] == "set_timing_cache"]
    assert len(handed) == 2 and all(ignore is False for _, _, ignore in handed)
    assert handed[0][1] == b"seed"  # the stored cache reached the first build
    assert handed[1][1] == b"seed|tactics-of-encoder_trt.onnx"  # the second build sees the first's entries
    # On disk: everything, not just the last graph's cache.
    assert set(timing.read_bytes().split(b"|")) == {
        b"seed",
        b"tactics-of-encoder_trt.onnx",
        b"tactics-of-relation_head_trt.onnx",
    }


def test_a_concurrent_builders_timing_entries_are_kept(tmp_path, monkeypatch):
    cache = EngineCache(tmp_path / "cache")
    timing = cache.timing_cache_path(ENV.version, ENV.compute_capability, ENV.device)

    def other_pod_writes():  # another builder on the same cache volume finishes while ours builds
        timing.parent.mkdir(parents=True, exist_ok=True)
        old = timing.read_bytes() if timing.is_file() else b""
        timing.write_bytes(b"|".join(e for e in (old, b"tactics-of-other-pod") if e))

    _build(tmp_path, monkeypatch, make_standin([], other_pod_writes))
    assert b"tactics-of-other-pod" in timing.read_bytes().split(b"|")
    assert b"tactics-of-relation_head_trt.onnx" in timing.read_bytes().split(b"|")


def test_cached_engines_are_not_rebuilt_and_settings_change_the_key(tmp_path, monkeypatch):
    log: list = []
    _, first = _build(tmp_path, monkeypatch, make_standin(log))
    builds = sum(1 for c in log if c[0] == "build")
    _, again = _build(tmp_path, monkeypatch, make_standin(log))
    assert sum(1 for c in log if c[0] == "build") == builds  # served from the cache
    assert [e["cache_key"] for e in again] == [e["cache_key"] for e in first]
    assert first[0]["key"]["device_name"] == "NVIDIA A10"
    assert first[0]["key"]["builder"] == {
        "workspace_mib": 512,
        "builder_optimization_level": 3,
        "strongly_typed": True,
        "tf32": False,
    }


def test_a_max_batch_raised_at_build_time_is_the_runners_limit(tmp_path, monkeypatch):
    from zse_infer.exporting.folder import write_manifest
    from zse_infer.runtime.runners.engine_locate import engine_batch, locate_engine_entry
    from zse_infer.runtime.runners.tensorrt_backend import batch_limit

    log: list = []
    manifest, entries = _build(tmp_path, monkeypatch, make_standin(log), max_batch={"encoder": 64})
    encoder = next(e for e in entries if e["role"] == "encoder")
    assert encoder["batch"] == {"min": 1, "opt": 4, "max": 64}  # recipe's max was 16
    profiles = [c[1] for c in log if c[0] == "profile"]
    assert profiles[0]["image"][2][0] == 64  # the profile handed to the builder

    # The runtime side: the manifest entry found for this machine carries the engine's range...
    write_manifest(tmp_path, manifest)
    loaded = Manifest.load(tmp_path)
    monkeypatch.setattr(environment, "probe_tensorrt", lambda: ENV)
    graph = loaded.graphs["encoder_trt"]
    _, entry = locate_engine_entry(tmp_path, loaded, graph)
    recorded = engine_batch(entry, graph)
    assert recorded.max == 64 and graph.batch.max == 16
    # ...and TrtRunner's limit is the engine's (its plan says 64 too), not the graph's recipe range.
    assert batch_limit(64, recorded, graph) == 64
    assert batch_limit(32, recorded, graph) == 32  # never more than the plan's own profile
