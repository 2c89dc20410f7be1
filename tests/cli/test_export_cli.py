"""The zse-export command line: export (on the group and as a subcommand), build, validate, inspect, errors."""

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from zse_infer.cli.export import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from zse_infer.model import ZseModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cli") / "best_checkpoint.pth"
    torch.save({"model": ZseModel("tiny").state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_out") / "tiny"
    result = CliRunner().invoke(
        main, ["--checkpoint", str(checkpoint), "--out", str(out), "--config", "tiny", "--fp16"]
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_export_on_the_group_as_the_design_card_shows(exported):
    out, output = exported
    assert (out / "manifest.json").is_file()
    assert "wrote 19 graphs" in output and "encoder_fused_fp16" in output and "MultiHeadAttention x2" in output
    assert "wrote ONNX only, no TensorRT engines" in output and f"zse-export build {out}" in output


def test_export_subcommand_with_recipe_and_max_batch(checkpoint, tmp_path):
    out = tmp_path / "sub"
    result = CliRunner().invoke(
        main,
        [
            "export",
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--recipe",
            "tiny",
            "--max-batch",
            "encoder=8",
            "--max-batch",
            "relation_head=4",
            "--no-engines",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graphs"]["encoder"]["batch"] == {"min": 1, "opt": 4, "max": 8}
    assert manifest["graphs"]["relation_head"]["batch"] == {"min": 1, "opt": 4, "max": 4}
    assert "encoder_fp16" not in manifest["graphs"]


def test_inspect_and_validate(exported):
    out, _ = exported
    result = CliRunner().invoke(main, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    assert "relation_head_fused_fp16" in result.output and "sha256 verified" in result.output
    result = CliRunner().invoke(main, ["inspect", str(out), "--json"])
    assert json.loads(result.output)["schema_version"] == 1
    result = CliRunner().invoke(main, ["validate", str(out)])
    assert result.exit_code == 0, result.output
    assert "all 19 within tolerance" in result.output


def test_validate_engines_without_tensorrt_is_a_clear_error(exported):
    from zse_infer.runtime.runners.trt_environment import probe_tensorrt

    if probe_tensorrt().ready:
        pytest.skip("TensorRT and a GPU are present")
    out, _ = exported
    result = CliRunner().invoke(main, ["validate", str(out), "--engines"])
    assert result.exit_code == 1
    assert "TensorRT" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["build", str(out)])
    assert result.exit_code == 1 and "TensorRT" in result.output


def test_tampered_folder(exported, tmp_path):
    out, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with open(copy / "encoder_fp16.onnx", "ab") as f:
        f.write(b"\0")
    for command in (["validate", str(copy)], ["inspect", str(copy)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1
        assert "encoder_fp16.onnx: sha256" in result.output and "does not match the manifest" in result.output


def test_refuses_a_non_empty_folder_without_overwrite(checkpoint, exported):
    out, _ = exported
    before = (out / "manifest.json").read_text()
    result = CliRunner().invoke(main, ["--checkpoint", str(checkpoint), "--out", str(out), "--config", "tiny"])
    assert result.exit_code == 1
    assert "not empty; pass --overwrite" in result.output
    assert (out / "manifest.json").read_text() == before


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Missing option '--checkpoint'"),
        (["--checkpoint", "nowhere.pth", "--config", "tiny"], "nowhere.pth: checkpoint file not found"),
        (["--checkpoint", "x.pth", "--recipe", "nope"], "unknown recipe 'nope'"),
        (["--checkpoint", "x.pth", "--max-batch", "decoder=4"], "received role 'decoder'"),
        (["--checkpoint", "x.pth", "--max-batch", "many"], "expected N or ROLE=N"),
    ],
)
def test_usage_errors_are_clear(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_foreign_checkpoint(tmp_path):
    foreign = tmp_path / "resnet50.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, foreign)
    result = CliRunner().invoke(main, ["--checkpoint", str(foreign), "--out", str(tmp_path / "o"), "--config", "tiny"])
    assert result.exit_code == 1
    assert "resnet50.pth: does not look like a ZSE-SBIR checkpoint" in result.output
    assert not (tmp_path / "o").exists()


def test_default_out_is_under_engines(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--checkpoint", str(checkpoint), "--config", "tiny", "--no-engines"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "engines" / "tiny" / "manifest.json").is_file()


_BLOCK_TORCH_SIDE = """
import sys
class _Blocker:  # a runtime-only install: the torch side cannot be imported
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnx", "onnxscript", "timm", "tensorrt"):
            raise ImportError(f"No module named {name!r} (blocked by the test)", name=name)
        return None
for mod in [m for m in sys.modules if m.split(".")[0] in ("torch", "onnx", "onnxscript", "timm")]:
    del sys.modules[mod]
sys.meta_path.insert(0, _Blocker())
from zse_infer.cli.export import main
main(sys.argv[1:], prog_name="zse-export")
"""


def _without_torch_side(*args):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_TORCH_SIDE, *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=300,
    )


def test_validate_and_inspect_run_without_torch_and_onnx(exported):
    out, _ = exported
    result = _without_torch_side("validate", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "within tolerance" in result.stdout and "relation_pair" in result.stdout
    result = _without_torch_side("inspect", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sha256 verified" in result.stdout
    result = _without_torch_side("validate", out, "--engines")  # TensorRT blocked too: a clear error, no traceback
    assert result.returncode == 1 and "tensorrt" in result.stderr and "Traceback" not in result.stderr


def test_export_on_a_runtime_only_install_names_the_extra(checkpoint, tmp_path):
    result = _without_torch_side("--checkpoint", checkpoint, "--out", tmp_path / "x", "--config", "tiny")
    assert result.returncode == 1 and "pip install 'zse-infer[export]'" in result.stderr
    assert "Traceback" not in result.stderr
