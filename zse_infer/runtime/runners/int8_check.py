"""Whether int8 graphs can be trusted on this CPU; if not, the fp32 graphs run instead (with a warning).

An int8 graph's integer products can depend on the CPU (see
:mod:`.cpu_features`): exports since 7-bit weights are exact on every x86-64
CPU, older ones can saturate on CPUs without VNNI. Two checks, on load:

1. Recorded: a graph not recorded as saturation-free (``quantization.
   saturation_free_on_x86`` in the manifest) is refused on an x86 CPU without VNNI.
2. Measured: the int8 encoder and relation head run on the first row of the
   export folder's own parity inputs (``parity_inputs.npz``: the images and the
   PyTorch outputs the export validated against) and must stay within the
   manifest's int8 tolerance. One image and one pair, once per load: for
   ViT-B/16 about half the time of one fp32 encode of one image (1.0 s against
   2.0 s measured side by side on 2 heavily shared cores), against silently
   wrong tokens. A CPU other than the one recorded is no reason to refuse by
   itself (7-bit graphs are exact on all of them); what this CPU computes is.

The CPU the graph was validated on at export is logged next to this one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ...manifest import ENCODER_INPUT, ENCODER_OUTPUT, HEAD_INPUTS, HEAD_OUTPUT, Manifest
from .base import ModelRunners, Runner
from .cpu_features import cpu_features, describe

_log = logging.getLogger(__name__)

PARITY_FILE = "parity_inputs.npz"
_IO = {"encoder": ((ENCODER_INPUT,), ENCODER_OUTPUT), "relation_head": (HEAD_INPUTS, HEAD_OUTPUT)}


@dataclass
class Int8Check:
    trusted: bool
    reason: str  # why not trusted, or what passed
    errors: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def check_int8(folder: Path, manifest: Manifest, runners: ModelRunners) -> Int8Check:
    """Recorded and measured checks of the int8 graphs among ``runners`` (see the module docstring)."""
    t0 = time.perf_counter()
    here = cpu_features()
    graphs = [r for r in (runners.encoder, runners.relation_head) if r.graph.precision == "int8"]
    for runner in graphs:
        saturation_free = (runner.graph.extra.get("quantization") or {}).get("saturation_free_on_x86", False)
        if not saturation_free and here["u8s8_exact"] is False:
            return Int8Check(
                False,
                f"graph {runner.graph.id} was quantised with 8-bit weights, which can saturate on this CPU "
                f"({describe(here)}, no VNNI); re-export with this version of zse-export --int8",
            )
    tolerance = (manifest.extra.get("tolerances") or {}).get("int8")
    if not tolerance:
        return Int8Check(False, "the manifest records no int8 tolerance to check the graphs against")
    path = folder / manifest.extra.get("parity_inputs", PARITY_FILE)
    errors: dict[str, float] = {}
    try:
        with np.load(path) as data:
            for runner in graphs:
                errors.update(_row_error(runner, data))
    except (OSError, KeyError, ValueError) as exc:
        return Int8Check(False, f"cannot run the self-check on {path.name} ({type(exc).__name__}: {exc})")
    seconds = time.perf_counter() - t0
    over = [f"{k} max abs error {v:.3g} > tolerance {tolerance[k]:.3g}" for k, v in errors.items() if k in tolerance and not v <= tolerance[k]]
    validated = [describe(r.graph.extra["validated_on"]) for r in graphs if "validated_on" in r.graph.extra]
    where = f"on {describe(here)} (validated at export on {validated[0] if validated else 'an unrecorded CPU'})"
    if over:
        return Int8Check(False, f"self-check against {path.name} failed {where}: " + "; ".join(over), errors, seconds)
    summary = ", ".join(f"{k} {v:.3g} <= {tolerance.get(k, float('nan')):.3g}" for k, v in errors.items())
    return Int8Check(True, f"self-check passed {where}: {summary}", errors, seconds)


def _row_error(runner: Runner, data) -> dict[str, float]:
    """Max abs error of ``runner`` on the first row of the parity inputs against the stored PyTorch output."""
    inputs, output = _IO[runner.graph.role]
    got = runner.run({name: np.ascontiguousarray(data[name][:1]) for name in inputs})[output]
    want = data[output][:1]
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return {output: float("inf")}
    return {output: float(np.abs(got.astype(np.float32) - want).max())}


def trusted_or_fp32(runners: ModelRunners, folder: Path, manifest: Manifest, open_fp32: Callable[[], ModelRunners]) -> ModelRunners:
    """``runners`` when their int8 graphs pass :func:`check_int8`, else (warning why) the fp32 runners."""
    check = check_int8(folder, manifest, runners)
    if check.trusted:
        _log.info("int8 graphs in use: %s (%.0f ms)", check.reason, check.seconds * 1000)
        return runners
    _log.warning("int8 graphs not trusted on this CPU, using fp32 instead: %s", check.reason)
    runners.close()
    return open_fp32()
