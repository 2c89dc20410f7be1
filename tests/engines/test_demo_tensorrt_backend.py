"""``zse-demo --backend tensorrt`` builds engines when it exports.

So without TensorRT + a GPU it stops early, clearly.
"""

import importlib.util

import pytest
from click.testing import CliRunner

from zse_infer.runtime.runners.trt_environment import probe_tensorrt


@pytest.mark.skipif(probe_tensorrt().ready, reason="TensorRT and a GPU are present: the demo would build engines")
def test_demo_with_tensorrt_backend_fails_early_naming_what_is_missing(tmp_path):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("the demo exports with torch")
    from zse_infer.demo.cli import main

    result = CliRunner().invoke(main, ["--out", str(tmp_path), "--backend", "tensorrt", "--skip-random"])
    assert result.exit_code != 0
    assert "TensorRT engines requested but cannot be built here" in result.output
    assert not (tmp_path / "export" / "manifest.json").exists()  # stopped before minutes of exporting
