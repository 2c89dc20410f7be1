"""What ships: .ci/check_wheel.py (run by .ci/run) on the real wheel, and on wheels it must refuse."""

import importlib.util
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_wheel", ROOT / ".ci" / "check_wheel.py")
assert _spec is not None and _spec.loader is not None
check_wheel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_wheel)

GOOD = [
    "zse_infer/__init__.py",
    "zse_infer/py.typed",
    "zse_infer/runtime/retriever.py",
    "zse_infer/recipes/default.json",
    "zse_infer/model_configs/tiny.json",
    "zse_infer/assets/demo/manifest.json",
    "zse_infer/serve/static/index.html",
    "zse_infer-0.1.0.dist-info/METADATA",
]


def _wheel(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "zse_infer-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.writestr(name, "")
    return path


def test_a_wheel_of_the_product_passes(tmp_path):
    assert check_wheel.problems(_wheel(tmp_path, GOOD)) == []


@pytest.mark.parametrize(
    ("extra", "missing", "expected"),
    [
        (["tools/train.py"], None, "tools/train.py: outside the package"),
        (["zse_infer/tools/split.py"], None, "zse_infer/tools/split.py: training"),
        (["zse_infer/demo/train.py"], None, "zse_infer/demo/train.py: training"),
        (["zse_infer/demo/bundle_v2.py"], None, "zse_infer/demo/bundle_v2.py: training"),
        (["tests/test_x.py"], None, "tests/test_x.py: outside the package"),
        ([], "zse_infer/py.typed", "zse_infer/py.typed: missing"),
        ([], "zse_infer/recipes/default.json", "zse_infer/recipes/: missing"),
    ],
)
def test_what_must_not_ship_or_must_ship_is_named(tmp_path, extra, missing, expected):
    names = [n for n in GOOD if n != missing] + extra
    found = check_wheel.problems(_wheel(tmp_path, names))
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.slow  # builds the wheel with pip (~25 s)
def test_the_real_wheel_ships_the_product_only(tmp_path):
    wheel = check_wheel.build_wheel(tmp_path)
    assert check_wheel.problems(wheel) == []
    assert "zse_infer/py.typed" in zipfile.ZipFile(wheel).namelist()
