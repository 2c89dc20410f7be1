"""One error wrapper for every console script (zse, zse-export, zse-demo) and subcommand:
a ZseError is its message (exit 1), a missing optional package names its extra (exit 1),
anything unexpected is one line with a hint to -v (exit 70; -v adds the traceback)."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from zse_infer.cli import export as export_cli
from zse_infer.cli.common import UNEXPECTED_EXIT, ZseCommand, ZseGroup
from zse_infer.cli.main import main
from zse_infer.errors import GalleryError

ROOT = Path(__file__).resolve().parents[2]


def _scripts() -> dict[str, click.Command]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    out = {}
    for name, target in scripts.items():
        module, attribute = target.split(":")
        out[name] = getattr(importlib.import_module(module), attribute)
    return out


def _walk(command: click.Command, path: str):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}")


def test_every_console_script_starts_inside_the_wrapper():
    scripts = _scripts()
    assert set(scripts) == {"zse", "zse-export", "zse-demo"}
    for name, command in scripts.items():
        assert isinstance(command, (ZseGroup, ZseCommand)), f"{name}: {type(command).__name__} reports no errors"


def test_zse_export_is_the_zse_export_script():
    """`zse export` and `zse-export` are one click group: the same options and subcommands."""
    ctx = click.Context(main, info_name="zse")
    assert main.get_command(ctx, "export") is export_cli.main is _scripts()["zse-export"]
    assert set(export_cli.main.commands) == {"export", "build", "validate", "inspect"}
    paths = {path for path, _ in _walk(main, "zse")}
    assert {"zse export", "zse export build", "zse export validate", "zse export inspect"} <= paths


def test_every_command_takes_v():
    """-v is what the wrapper's hint names: every command that runs code must accept it."""
    for script, command in _scripts().items():
        for path, sub in _walk(command, script):
            if isinstance(sub, click.Group) and not sub.invoke_without_command:
                continue  # only chooses a subcommand
            assert any("-v" in p.opts for p in sub.params), f"{path} has no -v"


@pytest.fixture
def gallery_open(monkeypatch):
    """Make `zse gallery info` fail the way the test says."""
    from zse_infer.runtime.gallery.store import Gallery

    def use(exc: BaseException) -> None:
        def fail(*args, **kwargs):
            raise exc

        monkeypatch.setattr(Gallery, "open", fail)

    return use


def test_our_errors_are_their_message(gallery_open, tmp_path):
    gallery_open(GalleryError(f"{tmp_path}: not a gallery"))
    result = CliRunner().invoke(main, ["gallery", "info", str(tmp_path)])
    assert result.exit_code == 1 and result.output == f"Error: {tmp_path}: not a gallery\n"


def test_operating_system_errors_name_the_file(gallery_open, tmp_path):
    gallery_open(PermissionError(13, "Permission denied", str(tmp_path / "data")))
    result = CliRunner().invoke(main, ["gallery", "info", str(tmp_path)])
    assert result.exit_code == 1 and result.output == f"Error: {tmp_path / 'data'}: Permission denied\n"


def test_unexpected_errors_are_one_line_with_a_hint(gallery_open, tmp_path):
    gallery_open(RuntimeError("boom\nsecond line"))
    result = CliRunner().invoke(main, ["gallery", "info", str(tmp_path)])
    assert result.exit_code == UNEXPECTED_EXIT == 70
    assert result.output == (
        "Error: unexpected RuntimeError in zse gallery info: boom "
        "(a bug or an unhandled case; re-run with -v for the traceback)\n"
    )
    verbose = CliRunner().invoke(main, ["gallery", "info", str(tmp_path), "-v"])
    assert verbose.exit_code == 70
    assert "Traceback (most recent call last)" in verbose.output and "raise exc" in verbose.output
    assert "the traceback is above" in verbose.output


def test_a_missing_optional_package_names_its_extra(monkeypatch, tmp_path):
    import zse_infer.exporting.report as report

    def needs_torch(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'torch'", name="torch.nn")

    monkeypatch.setattr(report, "validate_folder", needs_torch)
    for runner_args in ((main, ["export", "validate", str(tmp_path)]), (export_cli.main, ["validate", str(tmp_path)])):
        result = CliRunner().invoke(*runner_args)
        assert result.exit_code == 1, result.output
        assert (
            "validate needs the 'torch' package, which this install lacks: pip install 'zse-infer[export]'"
            in result.output
        )
    assert "zse export validate needs" in CliRunner().invoke(main, ["export", "validate", str(tmp_path)]).output

    def bug(*args, **kwargs):
        raise ImportError("cannot import name 'nothing' from 'zse_infer.manifest'", name="zse_infer.manifest")

    monkeypatch.setattr(report, "validate_folder", bug)
    result = CliRunner().invoke(export_cli.main, ["validate", str(tmp_path)])
    assert result.exit_code == 70 and "unexpected ImportError in zse-export validate" in result.output


def test_verbosity_counts_at_any_level(monkeypatch, tmp_path):
    import zse_infer.exporting.report as report

    def boom(*args, **kwargs):
        raise KeyError("graph")

    monkeypatch.setattr(report, "validate_folder", boom)
    quiet = CliRunner().invoke(main, ["export", "validate", str(tmp_path)])
    assert quiet.exit_code == 70 and "Traceback" not in quiet.output and "unexpected KeyError" in quiet.output
    for args in (["export", "-v", "validate", str(tmp_path)], ["export", "validate", str(tmp_path), "-v"]):
        loud = CliRunner().invoke(main, args)
        assert loud.exit_code == 70 and "Traceback" in loud.output


def test_zse_demo_goes_through_the_same_wrapper(monkeypatch, tmp_path):
    import zse_infer.demo.assets as assets

    demo = _scripts()["zse-demo"]
    for exc, code, text in (
        (GalleryError("bundled assets: missing"), 1, "Error: bundled assets: missing"),
        (RuntimeError("boom"), 70, "Error: unexpected RuntimeError in zse-demo: boom"),
    ):

        def fail(*args, _exc=exc, **kwargs):
            raise _exc

        monkeypatch.setattr(assets, "load_demo_assets", fail)
        result = CliRunner().invoke(demo, ["--out", str(tmp_path / "out")])
        assert result.exit_code == code and text in result.output and "Traceback" not in result.output


def test_usage_errors_stay_clicks(tmp_path):
    result = CliRunner().invoke(main, ["export", "validate"])
    assert result.exit_code == 2 and "Missing argument 'FOLDER'" in result.output


def test_v_sets_up_logging(tmp_path, monkeypatch):
    """-v's callback sets up logging for every command (the commands no longer each call it)."""
    import logging

    from zse_infer.runtime.gallery.store import Gallery

    monkeypatch.setattr(Gallery, "open", lambda *a, **k: (_ for _ in ()).throw(GalleryError("none")))
    logger = logging.getLogger("zse_infer")
    monkeypatch.setattr(logger, "level", logger.level)  # restored afterwards
    CliRunner().invoke(main, ["gallery", "info", str(tmp_path), "-v"])
    assert logger.level == logging.INFO
    CliRunner().invoke(main, ["gallery", "info", str(tmp_path)])
    assert logger.level == logging.WARNING
