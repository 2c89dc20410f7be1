"""One local Ray (2 CPUs) for the whole test session: starting it takes ~15 s."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="session")
def ray_cluster():
    """The address of a local Ray cluster started once per session (skips where Ray is not installed)."""
    ray = pytest.importorskip("ray", reason="Ray is the optional extra 'ray' (pip install 'zse-infer[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is part of the extra 'ray'")
    started_here = not ray.is_initialized()
    with pytest.MonkeyPatch.context() as patch:
        if started_here:
            # Workers import the test helpers (tests/support, e.g. Ray Serve's stand-in app) from the
            # repository root, which is not packaged: they inherit PYTHONPATH from this process (set
            # for the cluster's lifetime, restored after).
            patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        yield ray.get_runtime_context().gcs_address
        if started_here:
            ray.shutdown()
