"""export_model on the tiny config: folder layout, manifest contract, validation, atomicity, clear errors."""

import json

import numpy as np
import onnx
import pytest
import torch

from zse_infer.errors import CheckpointError, ExportError, IntegrityError
from zse_infer.exporting.pipeline import ExportOptions, export_model
from zse_infer.exporting.recipes import load_recipe, recipe_from_dict
from zse_infer.exporting.report import describe_folder, validate_folder
from zse_infer.manifest import Manifest

GRAPH_IDS = [
    f"{role}{variant}{precision}"
    for precision in ("", "_fp16")
    for role in ("encoder", "relation_head")
    for variant in ("", "_fused", "_trt")
] + ["explain", "relation_sketch", "relation_photo", "relation_pair"]
GRAPH_IDS += ["relation_sketch_trt", "relation_photo_trt", "relation_pair_trt"]  # the tiny recipe lists "trt"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from zse_infer.model import ZseModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"model": ZseModel("tiny").state_dict(), "epoch": 7}, path)
    return path


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "tiny"
    steps = []
    manifest = export_model(checkpoint, out, config="tiny", options=ExportOptions(fp16=True), on_step=steps.append)
    return out, manifest, steps


def test_folder_holds_every_graph_the_manifest_and_the_parity_inputs(exported):
    out, manifest, steps = exported
    assert sorted(manifest.graphs) == sorted(GRAPH_IDS)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{g}.onnx" for g in GRAPH_IDS] + ["manifest.json", "parity_inputs.npz"])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    assert steps[0] == "load checkpoint" and steps[-1] == "manifest"


def test_manifest_records_the_contract(exported):
    out, _, _ = exported
    m = Manifest.load(out)  # verifies every sha256
    assert m.opset == 18 and m.model.name == "tiny"
    assert set(m.files) == {f"{g}.onnx" for g in GRAPH_IDS} | {"parity_inputs.npz"}
    assert m.source_checkpoint["layout"] == "native" and m.source_checkpoint["metadata"] == {"epoch": 7}
    assert len(m.source_checkpoint["sha256"]) == 64
    assert {"torch", "onnx", "onnxruntime", "zse_infer"} <= set(m.versions)
    assert m.extra["tensorrt"]["built"] is False and "tensorrt" in m.extra["tensorrt"]["reason"]
    assert m.preprocess["sketch"].kind == "sketch"
    enc, head = m.graphs["encoder_fp16"], m.graphs["relation_head_fused"]
    assert (enc.precision, enc.variant) == ("fp16", "plain")
    assert [t.to_dict() for t in enc.inputs] == [{"name": "image", "dtype": "float32", "shape": ["batch", 3, 64, 64]}]
    assert [t.to_dict() for t in enc.outputs] == [{"name": "tokens", "dtype": "float32", "shape": ["batch", 65, 32]}]
    assert [t.name for t in head.inputs] == ["sketch_tokens", "photo_tokens"]
    assert [t.to_dict() for t in head.outputs] == [{"name": "score", "dtype": "float32", "shape": ["batch"]}]
    assert head.fused_nodes == {"MultiHeadAttention": 2}
    assert m.graphs["encoder_fused"].fused_nodes["Attention"] == 2  # tiny has 2 blocks
    assert m.graphs["encoder_fused_fp16"].fused_nodes["MultiHeadAttention"] == 2
    assert raw_graph(out, "encoder_fused")["attention"] == ["com.microsoft::Attention"]
    assert enc.batch.to_dict() == load_recipe("tiny").batch["encoder"].to_dict()
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["graphs"]["encoder_trt"]["lint"]["failing"] == 0


def raw_graph(out, gid):
    return json.loads((out / "manifest.json").read_text())["graphs"][gid]


def test_graph_files_match_their_specs(exported):
    out, m, _ = exported
    for gid, g in m.graphs.items():
        model = onnx.load(str(out / g.file), load_external_data=False)
        assert model.graph.name == gid
        for value, spec in zip(list(model.graph.input) + list(model.graph.output), g.inputs + g.outputs, strict=True):
            dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            assert value.name == spec.name and dims == list(spec.shape)
            expected = onnx.TensorProto.INT64 if spec.dtype == "int64" else onnx.TensorProto.FLOAT
            assert value.type.tensor_type.elem_type == expected
        assert not any(p.key == "pkg.torch.onnx.stack_trace" for n in model.graph.node for p in n.metadata_props)
        if g.variant == "trt":
            assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)


def test_parity_is_recorded_and_within_tolerance(exported):
    _, m, _ = exported
    tol = m.extra["tolerances"]
    for g in m.graphs.values():
        output = g.outputs[0].name
        limit = tol[g.precision].get(output, tol[g.precision]["tokens"])
        assert 0 <= g.parity[output] <= limit


def test_validate_folder_rechecks_without_torch_model(exported):
    out, m, _ = exported
    rows = validate_folder(out)
    assert [r.target for r in rows] == list(m.graphs)
    assert all(r.passed for r in rows)
    for r in rows:
        if m.graphs[r.target].role in ("explain", "relation_sketch", "relation_photo", "relation_pair"):  # also *_trt
            assert r.errors["score"] <= 1e-4  # checked on the reference scores, composed
            continue
        assert r.errors == pytest.approx(m.graphs[r.target].parity, abs=1e-7)


def test_describe_folder(exported):
    out, _, _ = exported
    text = describe_folder(out)
    assert "encoder_fused" in text and "MultiHeadAttention x2" in text and "no TensorRT engines" in text


def test_tampered_file_is_refused(exported, tmp_path):
    import shutil

    out, _, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = bytearray((copy / "relation_head.onnx").read_bytes())
    data[-1] ^= 1
    (copy / "relation_head.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"relation_head\.onnx: sha256"):
        validate_folder(copy)


def test_existing_non_empty_folder_is_refused_then_replaced_with_overwrite(checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    options = ExportOptions(engines="never", lint="never")
    with pytest.raises(ExportError, match="not empty; pass --overwrite"):
        export_model(checkpoint, out, config="tiny", options=options)
    assert (out / "keep.txt").read_text() == "user data"
    options.overwrite = True
    export_model(checkpoint, out, config="tiny", options=options)
    assert not (out / "keep.txt").exists() and (out / "manifest.json").is_file()
    assert "fp16" not in {g.precision for g in Manifest.load(out).graphs.values()}


def test_failed_validation_leaves_nothing_behind(checkpoint, tmp_path):
    strict = load_recipe("tiny").to_dict()
    strict["tolerances"]["fp32"]["tokens"] = 0.0  # nothing passes an exact comparison after ONNX reordering
    recipe = recipe_from_dict(strict, "strict")
    out = tmp_path / "strict"
    with pytest.raises(ExportError, match=r"encoder.onnx \(fp32\) failed validation.*tokens: max abs error"):
        export_model(checkpoint, out, recipe=recipe, options=ExportOptions(engines="never", lint="never"))
    assert list(tmp_path.iterdir()) == []


def test_missing_and_foreign_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"absent\.pth: checkpoint file not found"):
        export_model(tmp_path / "absent.pth", tmp_path / "out", config="tiny")
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match=r"resnet\.pth: does not look like a ZSE-SBIR checkpoint"):
        export_model(foreign, tmp_path / "out", config="tiny")
    wrong_size = tmp_path / "full_size_expected.pth"
    torch.save({"encoder.cls_token": torch.zeros(1, 1, 8)}, wrong_size)
    with pytest.raises(CheckpointError, match="does not fit model config 'tiny'"):
        export_model(wrong_size, tmp_path / "out", config="tiny")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_engines_required_without_tensorrt_is_a_clear_error(checkpoint, tmp_path):
    from zse_infer.runtime.runners.trt_environment import probe_tensorrt

    if probe_tensorrt().ready:
        pytest.skip("TensorRT and a GPU are present: engines can be built here")
    with pytest.raises(ExportError, match="TensorRT engines requested but cannot be built here"):
        export_model(
            checkpoint, tmp_path / "out", config="tiny", options=ExportOptions(engines="require", lint="never")
        )
    assert not (tmp_path / "out").exists()


def test_builtin_parity_inputs_pair_different_images(exported):
    out, _, _ = exported
    with np.load(out / "parity_inputs.npz") as npz:
        assert list(npz["batch_sizes"]) == [1, 5]
        assert npz["image"].shape == (5, 3, 64, 64) and npz["score"].shape == (5,)
        assert not np.array_equal(npz["sketch_tokens"][1], npz["photo_tokens"][1])


def test_recipe_defaults_follow_the_config():
    from zse_infer.exporting.pipeline import resolve_recipe

    assert resolve_recipe(None, None).name == "zse_vit_b16"
    assert resolve_recipe(None, "tiny").name == "tiny"
    assert resolve_recipe("tiny", "zse_vit_b16").name == "tiny"  # an explicit recipe wins
    custom = resolve_recipe(None, "my_variant")  # no recipe of that name: the default's settings
    assert (custom.name, custom.config, custom.opset) == ("my_variant", "my_variant", 18)


def test_failed_overwrite_keeps_the_old_folder(checkpoint, exported, tmp_path):
    import shutil

    out, _, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    strict = load_recipe("tiny").to_dict()
    strict["tolerances"]["fp32"]["tokens"] = 0.0
    options = ExportOptions(overwrite=True, engines="never", lint="never")
    with pytest.raises(ExportError, match="failed validation"):
        export_model(checkpoint, copy, recipe=recipe_from_dict(strict, "strict"), options=options)
    Manifest.load(copy)  # still the complete, verified old export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]


def test_out_path_that_is_a_file_is_refused(checkpoint, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ExportError, match="exists and is a file"):
        export_model(checkpoint, target, config="tiny")
