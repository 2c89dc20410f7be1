"""The OpenVINO backend: runner checks, the auto decision on three CPU kinds (injected cpuinfo), the bf16
self-check and its fallbacks, the compiled-model cache, the restructured relation graphs, the Retriever."""

import json
import logging
import shutil
import sys

import numpy as np
import pytest

from zse_infer import Retriever
from zse_infer.errors import DependencyError, InputError
from zse_infer.manifest import Manifest
from zse_infer.runtime.runners import select
from zse_infer.runtime.runners.cpu_features import CPUINFO_ENV
from zse_infer.runtime.runners.select import open_relation_runners, open_runners, relation_scores

pytest.importorskip("openvino")
from zse_infer.runtime.runners.openvino_backend import CACHE_ENV, OpenVinoRunner, compiled_key

_CPU = "processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: {model}\nflags\t\t: fpu sse sse2 avx fma {flags}\n\n"
#: the three machine kinds this project runs on
CPUS = {
    "epyc_avx2": _CPU.format(vendor="AuthenticAMD", model="AMD EPYC 7B12", flags="avx2"),
    "epyc_zen4": _CPU.format(
        vendor="AuthenticAMD", model="AMD EPYC 9B14", flags="avx2 avx512f avx512bw avx512_vnni avx512_bf16"
    ),
    "xeon_amx": _CPU.format(
        vendor="GenuineIntel",
        model="Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
        flags="avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8",
    ),
}


@pytest.fixture
def cpu(monkeypatch, tmp_path):
    """``cpu("xeon_amx")``: from now on this process reads that CPU's flags."""

    def use(kind: str):
        path = tmp_path / f"cpuinfo-{kind}"
        path.write_text(CPUS[kind])
        monkeypatch.setenv(CPUINFO_ENV, str(path))

    return use


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "ov-cache"))


@pytest.fixture
def folder(tiny_export, tmp_path):
    """A private copy to tamper with."""
    return shutil.copytree(tiny_export, tmp_path / "export")


def _parity(export):
    with np.load(export / "parity_inputs.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize(
    "kind, backend, precision",
    [
        ("epyc_avx2", "onnxruntime-cpu", "fp32"),  # no bf16 unit: OpenVINO would run f32, ONNX Runtime stays
        ("epyc_zen4", "openvino", "bf16"),  # AVX512-BF16
        ("xeon_amx", "openvino", "bf16"),  # AMX
    ],
)
def test_auto_chooses_by_the_cpus_bf16_unit(tiny_export, cpu, caplog, kind, backend, precision):
    cpu(kind)
    with caplog.at_level(logging.INFO, logger="zse_infer"):
        runners = open_runners(tiny_export, Manifest.load(tiny_export))
    assert (runners.backend, runners.precision) == (backend, precision)
    assert f"backend: {backend}" in caplog.text
    if backend == "openvino":
        assert "self-check passed" in caplog.text and runners.encoder.inference_precision == "bf16"
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("kind, precision", [("epyc_avx2", "fp32"), ("epyc_zen4", "bf16"), ("xeon_amx", "bf16")])
def test_explicit_openvino_runs_on_every_cpu_kind(tiny_export, cpu, kind, precision):
    cpu(kind)
    runners = open_runners(tiny_export, Manifest.load(tiny_export), backend="openvino")
    assert (runners.backend, runners.precision) == ("openvino", precision)
    assert runners.encoder.inference_precision == ("f32" if precision == "fp32" else "bf16")
    assert runners.encoder.device.startswith("openvino-cpu")


def test_bf16_asked_for_on_a_cpu_without_a_bf16_unit_runs_f32_and_says_so(tiny_export, cpu, caplog):
    cpu("epyc_avx2")
    with caplog.at_level(logging.WARNING, logger="zse_infer"):
        runners = open_runners(tiny_export, Manifest.load(tiny_export), backend="openvino", precision="bf16")
    assert runners.precision == "fp32" and "no bf16 unit" in caplog.text


def test_f32_matches_onnxruntime_and_bf16_stays_within_its_tolerance(tiny_export, cpu):
    cpu("xeon_amx")
    manifest = Manifest.load(tiny_export)
    data = _parity(tiny_export)
    ort = open_runners(tiny_export, manifest, backend="onnxruntime-cpu")
    tolerance = manifest.extra["tolerances"]["bf16"]
    for precision, bound, score_bound in (("fp32", 1e-4, 1e-5), ("bf16", tolerance["tokens"], tolerance["score"])):
        ov = open_runners(tiny_export, manifest, backend="openvino", precision=precision)
        want = ort.encoder.run({"image": data["image"]})["tokens"]
        got = ov.encoder.run({"image": data["image"]})["tokens"]
        assert np.abs(got - want).max() <= bound
        pair = {"sketch_tokens": data["sketch_tokens"], "photo_tokens": data["photo_tokens"]}
        assert np.abs(ov.relation_head.run(pair)["score"] - ort.relation_head.run(pair)["score"]).max() <= score_bound


def test_inputs_are_checked_against_the_manifest(tiny_export):
    graph = Manifest.load(tiny_export).select_graph("encoder", ("fp32",), ("plain",))
    runner = OpenVinoRunner(graph, tiny_export, "fp32", cache_dir=False)
    size = graph.inputs[0].shape[-1]
    with pytest.raises(InputError, match="received dtype float64, expected float32"):
        runner.run({"image": np.zeros((1, 3, size, size))})
    with pytest.raises(InputError, match=r"received shape \(1, 3, 7, 7\)"):
        runner.run({"image": np.zeros((1, 3, 7, 7), np.float32)})
    with pytest.raises(InputError, match="expected \\['image'\\]"):
        runner.run({"img": np.zeros((1, 3, size, size), np.float32)})
    # any number of rows, split by the graph's batch range
    rows = graph.batch.max + 3
    assert runner.run({"image": np.zeros((rows, 3, size, size), np.float32)})["tokens"].shape[0] == rows
    assert runner.run({"image": np.zeros((0, 3, size, size), np.float32)})["tokens"].shape[0] == 0
    from dataclasses import replace

    with pytest.raises(InputError, match="fp32 graphs"):
        OpenVinoRunner(replace(graph, precision="int8"), tiny_export)
    with pytest.raises(InputError, match="expected 'bf16', 'fp32'"):
        open_runners(tiny_export, Manifest.load(tiny_export), backend="openvino", precision="int8")
    with pytest.raises(InputError, match="OpenVINO backend"):
        open_runners(tiny_export, Manifest.load(tiny_export), backend="onnxruntime-cpu", precision="bf16")


def test_missing_openvino_names_the_extra(tiny_export, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(DependencyError, match=r"zse-infer\[cpu\]"):
        open_runners(tiny_export, Manifest.load(tiny_export), backend="openvino")


def test_failed_bf16_check_falls_back_with_a_warning_that_says_why(folder, cpu, caplog):
    cpu("xeon_amx")
    m = Manifest.load(folder)
    m.extra["tolerances"]["bf16"]["ret_token_cosine_min"] = 1.5  # no computation meets this
    m.save(folder)
    with caplog.at_level(logging.WARNING, logger="zse_infer"):
        auto = open_runners(folder, Manifest.load(folder))
        explicit = open_runners(folder, Manifest.load(folder), backend="openvino")
    assert (auto.backend, auto.precision) == ("onnxruntime-cpu", "fp32")
    assert (explicit.backend, explicit.precision) == ("openvino", "fp32")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "using ONNX Runtime fp32 instead" in w and "ret_token_cosine" in w and "< minimum 1.5" in w for w in warnings
    ), warnings
    assert any("using OpenVINO f32 instead" in w for w in warnings), warnings


def test_compiled_model_cache_is_keyed_and_makes_the_second_start_import(tiny_export, tmp_path):
    manifest = Manifest.load(tiny_export)
    graph = manifest.select_graph("encoder", ("fp32",), ("plain",))
    root = tmp_path / "cache"
    sha = manifest.files[graph.file]
    first = OpenVinoRunner(graph, tiny_export, "bf16", cache_dir=root, graph_sha256=sha)
    second = OpenVinoRunner(graph, tiny_export, "bf16", cache_dir=root, graph_sha256=sha)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert first.cache_folder == second.cache_folder
    key = json.loads((first.cache_folder / "key.json").read_text())
    assert key["onnx_sha256"] == sha and key["precision"] == "bf16" and key["openvino_version"][:4].isdigit()
    assert {"cpu_model", "cpu_flags"} <= set(key)
    x = np.zeros((2, *graph.inputs[0].shape[1:]), np.float32)
    np.testing.assert_array_equal(first.run({"image": x})["tokens"], second.run({"image": x})["tokens"])
    # another precision, another graph file or another CPU is another key (another folder)
    f32 = OpenVinoRunner(graph, tiny_export, "fp32", cache_dir=root, graph_sha256=sha)
    assert f32.cache_folder != first.cache_folder and not f32.from_cache
    assert compiled_key("0" * 64, "bf16").digest() != compiled_key(sha, "bf16").digest()
    other_cpu = {"model": "AMD EPYC", "flags": ["avx2"]}
    assert compiled_key(sha, "bf16", other_cpu).digest() != compiled_key(sha, "bf16").digest()


def test_restructured_relation_graphs_on_openvino_match_the_compat_head(tiny_export, cpu):
    cpu("xeon_amx")
    manifest = Manifest.load(tiny_export)
    data = _parity(tiny_export)
    for precision, bound in (("fp32", 1e-5), ("bf16", manifest.extra["tolerances"]["bf16"]["score"])):
        runners = open_runners(tiny_export, manifest, backend="openvino", precision=precision)
        fast = open_relation_runners(tiny_export, manifest, runners)
        assert set(fast) == set(select.RELATION_ROLES) and all(r.backend == "openvino" for r in fast.values())
        sketch, photos = data["sketch_tokens"][:1], data["photo_tokens"]
        tiled = np.ascontiguousarray(np.broadcast_to(sketch, photos.shape))
        compat = runners.relation_head.run({"sketch_tokens": tiled, "photo_tokens": photos})["score"]
        assert np.abs(relation_scores(fast, sketch, photos) - compat).max() <= bound


def test_retriever_on_openvino_ranks_like_onnxruntime(tiny_export, cpu, tmp_path, golden_images):
    from tests.support.images import make_photo_files

    cpu("xeon_amx")
    photos = make_photo_files(tmp_path / "photos", 6, size=64)
    tops = {}
    for backend in ("onnxruntime-cpu", "openvino"):
        with Retriever.load(tiny_export, backend=backend) as r:
            r.index(photos, progress=False)
            tops[backend] = [h.id for h in r.search(golden_images["sketch"][0], k=3, rerank="all")]
            assert r.backend == backend
    assert tops["openvino"][0] == tops["onnxruntime-cpu"][0]


def test_ray_workers_reopen_the_same_openvino_runtime(tiny_export, cpu):
    from zse_infer.distributed.runtime_spec import RuntimeSpec

    cpu("xeon_amx")
    with Retriever.load(tiny_export) as r:
        spec = RuntimeSpec.of(r, threads=1)
    assert (spec.backend, spec.precision) == ("openvino", "bf16")
    _, runners = spec.runners()
    assert (runners.backend, runners.precision, runners.encoder.threads) == ("openvino", "bf16", 1)


def test_cli_accepts_openvino(tiny_export, tmp_path, cpu, golden_images):
    from click.testing import CliRunner

    from tests.support.images import make_photo_files
    from zse_infer.cli.main import main

    cpu("epyc_avx2")
    make_photo_files(tmp_path / "photos", 3, size=64)
    gallery, out = tmp_path / "gallery", tmp_path / "hits.json"
    runner = CliRunner()
    assert (
        runner.invoke(
            main,
            ["index", str(tiny_export), str(tmp_path / "photos"), "--gallery", str(gallery), "--backend", "openvino"],
        ).exit_code
        == 0
    )
    result = runner.invoke(
        main,
        [
            "search",
            str(tiny_export),
            str(golden_images["sketch"][0]),
            "--gallery",
            str(gallery),
            "--backend",
            "openvino",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["backend"] == "openvino"


def test_a_damaged_or_unwritable_cache_never_stops_a_start(tiny_export, tmp_path, caplog):
    graph = Manifest.load(tiny_export).select_graph("encoder", ("fp32",), ("plain",))
    x = np.zeros((1, *graph.inputs[0].shape[1:]), np.float32)
    want = OpenVinoRunner(graph, tiny_export, "fp32", cache_dir=False).run({"image": x})["tokens"]
    first = OpenVinoRunner(graph, tiny_export, "fp32", cache_dir=tmp_path / "cache")
    for blob in first.cache_folder.glob("*.blob"):
        blob.write_bytes(b"garbage" * 100)  # a crash mid-write, a full disk, a tampered file
    again = OpenVinoRunner(graph, tiny_export, "fp32", cache_dir=tmp_path / "cache")
    assert not again.from_cache
    np.testing.assert_array_equal(again.run({"image": x})["tokens"], want)
    (tmp_path / "a-file").write_text("")
    with caplog.at_level(logging.WARNING, logger="zse_infer"):
        unwritable = OpenVinoRunner(graph, tiny_export, "fp32", cache_dir=tmp_path / "a-file" / "cache")
    assert unwritable.cache_folder is None and "compiling without a cache" in caplog.text
    np.testing.assert_array_equal(unwritable.run({"image": x})["tokens"], want)
