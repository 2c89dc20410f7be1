"""The walls between the package's rooms (docs/architecture.md), checked on the source.

* The runtime side and the evaluation loop never import :mod:`zse_infer.distributed`: where a
  job runs (this process or Ray) is chosen where it starts (the CLI, or an executor argument).
* The torch side's ``model/checkpoint.py`` and ``model/zse.py`` import each other one way only.

The import graph is read from the source (every ``import``, also those inside functions, which
run only on some paths; not those under ``if TYPE_CHECKING:``), so a lazy import on a rare path
is caught as well as one at module level; a subprocess then checks what a real run loads.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "zse_infer"
DISTRIBUTED = "zse_infer.distributed"


def _module_name(path: Path) -> tuple[str, list[str]]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), parts
    return ".".join(parts), parts[:-1]


class _Imports(ast.NodeVisitor):
    def __init__(self, package: list[str]):
        self.package, self.targets = package, set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            for child in node.orelse:  # the body never runs
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.targets.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package[: len(self.package) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        self.targets.add(module)
        self.targets.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`


@lru_cache(maxsize=1)
def import_graph() -> dict[str, frozenset[str]]:
    """Module -> the package's modules it may import (its parent packages included: importing
    ``a.b.c`` runs ``a`` and ``a.b`` first)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name, package = _module_name(path)
        visitor = _Imports(package)
        visitor.visit(ast.parse(path.read_text(), str(path)))
        found[name] = visitor.targets
    graph = {}
    for name, targets in found.items():
        deps = {t for t in targets if t in found}
        deps |= {".".join(d.split(".")[:i]) for d in set(deps) for i in range(1, d.count(".") + 1)}
        graph[name] = frozenset(deps - {name})
    return graph


def _reachable(starts: set[str], graph: dict[str, frozenset[str]]) -> set[str]:
    seen, todo = set(), list(starts)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    return seen


def _in(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    assert "zse_infer.distributed.ray_eval" in graph["zse_infer.cli.main"]  # inside `zse eval`'s body
    assert "zse_infer.runtime.retriever" in graph["zse_infer.evaluation.protocol"]


def test_runtime_and_evaluation_never_import_distributed():
    graph = import_graph()
    rooms = ("zse_infer.runtime", "zse_infer.evaluation")
    starts = {m for m in graph if any(_in(m, room) for room in rooms)}
    # follow the imports, but not into distributed/ itself: what matters is who crosses the wall
    inside = {m: frozenset(d for d in deps if not _in(d, DISTRIBUTED)) for m, deps in graph.items()}
    crossings = {(m, d) for m in _reachable(starts, inside) for d in graph[m] if _in(d, DISTRIBUTED)}
    assert not crossings, f"the runtime side imports distributed/: {sorted(crossings)}"


def test_the_evaluation_loop_itself_never_imports_distributed():
    graph = import_graph()
    direct = {(m, d) for m in graph if _in(m, "zse_infer.evaluation") for d in graph[m] if _in(d, DISTRIBUTED)}
    assert not direct


_RUN = """
import json, pkgutil, importlib, sys
import zse_infer.runtime, zse_infer.evaluation
for package in (zse_infer.runtime, zse_infer.evaluation):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
from zse_infer import Retriever
from zse_infer.evaluation.datasets import load_image_folders
from zse_infer.evaluation.protocol import evaluate
r = Retriever.load(sys.argv[1], gallery=sys.argv[3], create=True)
report = evaluate(r, load_image_folders(sys.argv[2]), ranking="two-stage", rerank=3, progress=False)
loaded = sorted(m for m in sys.modules if m == "ray" or m.startswith(("ray.", "zse_infer.distributed")))
print(json.dumps({"loaded": loaded, "map_all": report["metrics"]["map_all"]}))
"""


def test_a_local_evaluation_loads_neither_distributed_nor_ray(tiny_export, tmp_path):
    from tests.support.images import make_shape_dataset

    shapes = make_shape_dataset(tmp_path / "shapes")
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(tiny_export), str(shapes), str(tmp_path / "g")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == [] and 0 <= out["map_all"] <= 1


def _cycles(graph: dict[str, frozenset[str]], room: str) -> list[list[str]]:
    """Import cycles among ``room``'s modules (strongly connected components of more than one)."""
    nodes = {m for m in graph if _in(m, room) and m != room}
    edges = {m: {d for d in graph[m] if d in nodes} for m in nodes}
    cycles = []
    for m in sorted(nodes):
        loop = sorted(n for n in _reachable({m}, edges) if m in _reachable({n}, edges))
        if len(loop) > 1 and loop not in cycles:
            cycles.append(loop)
    return cycles


def test_model_modules_import_each_other_one_way():
    assert "zse_infer.model.checkpoint" in import_graph()["zse_infer.model.zse"]
    assert _cycles(import_graph(), "zse_infer.model") == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {
        "zse_infer.model": frozenset(),
        "zse_infer.model.a": frozenset({"zse_infer.model.b"}),
        "zse_infer.model.b": frozenset({"zse_infer.model.a"}),
    }
    assert _cycles(graph, "zse_infer.model") == [["zse_infer.model.a", "zse_infer.model.b"]]
