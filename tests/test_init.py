"""The top-level package: a light import, and lazy names that type checkers see too."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import zse_infer

INIT = Path(zse_infer.__file__)


def _type_checking_names() -> set[str]:
    names: set[str] = set()
    for node in ast.parse(INIT.read_text()).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    names.update(alias.asname or alias.name for alias in stmt.names)
    return names


def test_type_checkers_see_every_lazy_name():
    assert _type_checking_names() == set(zse_infer._LAZY)
    assert set(zse_infer._LAZY) <= set(zse_infer.__all__)


def test_every_lazy_name_resolves_to_the_class_type_checkers_see():
    for name, module in zse_infer._LAZY.items():
        value = getattr(zse_infer, name)
        assert value.__name__ == name and value.__module__ == module


def test_importing_the_package_stays_light():
    # A fresh interpreter: this test process has long imported everything.
    heavy = ["torch", "onnxruntime", "openvino", "lance", "pyarrow", "ray", "cv2", "zse_infer.runtime"]
    code = f"import sys, json, zse_infer; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == []
