"""The benchmark's int8 group times int8 graphs only where they pass the runtime's check on this CPU."""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import run

from zse_infer.manifest import Manifest


def test_int8_group_runs_on_trusted_graphs_and_notes_untrusted_ones(tiny_int8_export, tmp_path):
    args = {"export_dir": str(tiny_int8_export), "backend": "onnxruntime"}
    assert run._int8_untrusted(args, "encoder") == []
    folder = shutil.copytree(tiny_int8_export, tmp_path / "export")
    m = Manifest.load(folder)
    m.extra["tolerances"]["int8"]["tokens"] = 1e-9
    m.save(folder)
    [note] = run._int8_untrusted({**args, "export_dir": str(folder)}, "encoder")
    assert note["precision"] == "int8" and "value" not in note
    assert note["note"].startswith("skipped: self-check against parity_inputs.npz failed")
