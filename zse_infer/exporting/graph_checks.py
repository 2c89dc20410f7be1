"""Static checks on exported graphs: standard-ops-only (for TensorRT) and ``polygraphy check lint``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx

from ..errors import ExportError

STANDARD_DOMAINS = ("", "ai.onnx")
_POLYGRAPHY = "import sys; from polygraphy.tools import main; sys.exit(main())"


def nonstandard_ops(model: onnx.ModelProto) -> list[str]:
    """``domain::op`` of every node outside the standard ONNX domain (sorted, unique)."""
    return sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in STANDARD_DOMAINS})


def require_standard_ops(model: onnx.ModelProto, what: str) -> None:
    if found := nonstandard_ops(model):
        raise ExportError(f"{what}: TensorRT graphs must contain only standard ONNX ops, found {found}")


def polygraphy_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("polygraphy", "onnx_graphsurgeon"))


def lint(path: Path, input_shapes: Mapping[str, Sequence[int]], timeout: float = 1800.0) -> dict:
    """``polygraphy check lint`` of ``path``: its summary, or ExportError. A subprocess: the CLI is polygraphy's
    documented interface, and it loads the whole graph into ONNX Runtime node by node, memory we want back."""
    shapes = [f"{name}:[{','.join(str(d) for d in dims)}]" for name, dims in input_shapes.items()]
    with tempfile.TemporaryDirectory(prefix="zse-lint-") as tmp:
        report = Path(tmp) / "lint.json"
        cmd = [sys.executable, "-c", _POLYGRAPHY, "check", "lint", str(path), "-o", str(report)]
        cmd += ["--input-shapes", *shapes]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ExportError(f"{path}: polygraphy check lint did not finish in {timeout:.0f} s") from exc
        summary = json.loads(report.read_text()).get("summary", {}) if report.is_file() else {}
    if done.returncode != 0 or summary.get("failing"):
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        failed = f"failed (exit {done.returncode}): {summary.get('failing')}"
        raise ExportError(f"{path}: polygraphy check lint {failed}\n{tail}")
    return {"passing": len(summary.get("passing", [])), "failing": 0}
