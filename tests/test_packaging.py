"""pyproject lists packages explicitly (to map export/ recipes into wheels): keep the list complete."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "zse_infer").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_no_top_level_export_or_engines_package():
    for name in ("export", "engines"):
        assert not (ROOT / name / "__init__.py").exists()


def test_wheel_holds_no_training_or_data_building_code():
    """The demo model's data building and training live in tools/ (not packaged); the package
    never imports them, and its demo folder holds the zse-demo runner only."""
    import ast

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert not any(p == "tools" or p.startswith("tools.") or "training" in p for p in listed)
    for path in (ROOT / "zse_infer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            )
            assert not any(n == "tools" or n.startswith("tools.") for n in names), f"{path} imports tools"
    assert sorted(p.name for p in (ROOT / "zse_infer" / "demo").iterdir() if p.name != "__pycache__") == [
        "__init__.py",
        "assets.py",
        "cli.py",
    ]
