"""Whether int8 graphs can be trusted on this CPU (what it computes decides, not the CPU recorded at export); if
not, the fp32 graphs run instead, with a warning. The checks: docs/export.md ("int8 graphs for CPUs")."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ...manifest import Manifest
from .base import ModelRunners
from .cpu_features import cpu_features, describe
from .precision_check import PrecisionCheck, check_precision

_log = logging.getLogger(__name__)


def check_int8(folder: Path, manifest: Manifest, runners: ModelRunners) -> PrecisionCheck:
    """Recorded and measured checks of the int8 graphs among ``runners`` (see the module docstring)."""
    t0 = time.perf_counter()
    here = cpu_features()
    graphs = [r for r in (runners.encoder, runners.relation_head) if r.graph.precision == "int8"]
    for runner in graphs:
        saturation_free = (runner.graph.extra.get("quantization") or {}).get("saturation_free_on_x86", False)
        if not saturation_free and here["u8s8_exact"] is False:
            saturates = f"was quantised with 8-bit weights, which can saturate on this CPU ({describe(here)}, no VNNI)"
            fix = "re-export with this version of zse-export --int8"
            return PrecisionCheck(False, f"graph {runner.graph.id} {saturates}; {fix}")
    validated = [describe(r.graph.extra["validated_on"]) for r in graphs if "validated_on" in r.graph.extra]
    where = f"on {describe(here)} (validated at export on {validated[0] if validated else 'an unrecorded CPU'})"
    check = check_precision(folder, manifest, "int8", graphs, where=where)
    return PrecisionCheck(check.trusted, check.reason, check.errors, time.perf_counter() - t0)


def trusted_or_fp32(
    runners: ModelRunners, folder: Path, manifest: Manifest, open_fp32: Callable[[], ModelRunners]
) -> ModelRunners:
    """``runners`` when their int8 graphs pass :func:`check_int8`, else (warning why) the fp32 runners."""
    check = check_int8(folder, manifest, runners)
    if check.trusted:
        _log.info("int8 graphs in use: %s (%.0f ms)", check.reason, check.seconds * 1000)
        return runners
    _log.warning("int8 graphs not trusted on this CPU, using fp32 instead: %s", check.reason)
    runners.close()
    return open_fp32()
