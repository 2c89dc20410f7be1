"""Whether a lower precision (int8 graphs, bf16 compute) is right on *this* CPU, measured at load: the first row(s)
of ``parity_inputs.npz`` against PyTorch's outputs there, judged by the manifest's ``tolerances[precision]`` (else
:data:`DEFAULT_TOLERANCES`; ``_min`` keys are lower bounds; ranking criteria such as ``top10_overlap_min`` skipped)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...manifest import ENCODER_INPUT, ENCODER_OUTPUT, HEAD_INPUTS, HEAD_OUTPUT, Manifest
from .base import Runner

PARITY_FILE = "parity_inputs.npz"
_IO = {"encoder": ((ENCODER_INPUT,), ENCODER_OUTPUT), "relation_head": (HEAD_INPUTS, HEAD_OUTPUT)}

#: bf16 (OpenVINO on AMX / AVX512-BF16) against fp32, measured (docs/cpu.md): random ViT-B/16 tokens 0.03,
#: ret-token cosine 0.99998, scores 3e-5; the trained demo model scores up to 4e-3 off with top-10 overlap
#: 0.99 and unchanged mAP, int8's 0.012 still ranks alike (0.98): the score bound sits where rankings hold.
DEFAULT_TOLERANCES = {"bf16": {"tokens": 0.25, "ret_token_cosine_min": 0.999, "score": 1e-2}}


@dataclass
class PrecisionCheck:
    trusted: bool
    reason: str  # why not trusted, or what passed
    errors: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def failed_criteria(values: Mapping[str, float], tolerance: Mapping[str, float]) -> list[str]:
    """Criteria of ``tolerance`` that ``values`` miss ("name value > bound"); unmeasured ones are skipped."""
    failed = []
    for key, bound in tolerance.items():
        lower = key.endswith("_min")
        name = key[: -len("_min")] if lower else key
        value = values.get(key, values.get(name))
        if not isinstance(value, (int, float)):
            continue
        if (lower and not value >= bound) or (not lower and not value <= bound):
            relation = "< minimum" if lower else "> tolerance"
            failed.append(f"{name} {value:.4g} {relation} {bound:.4g}")
    return failed


def measure(
    folder: Path, manifest: Manifest, runners: Iterable[Runner], fast: Mapping[str, Runner] | None = None, rows: int = 1
) -> dict[str, float]:
    """Errors of ``runners`` (encoder / relation head) and ``fast`` (restructured head) on the parity inputs."""
    path = Path(folder) / manifest.extra.get("parity_inputs", PARITY_FILE)
    errors: dict[str, float] = {}
    with np.load(path) as data:
        for runner in runners:
            inputs, output = _IO[runner.graph.role]
            got = runner.run({name: np.ascontiguousarray(data[name][:rows]) for name in inputs})[output]
            errors.update(_errors(output, got, data[output][:rows]))
        if fast:
            from .select import relation_scores

            sketch, photo = (np.ascontiguousarray(data[name][:1]) for name in HEAD_INPUTS)
            got = relation_scores(dict(fast), sketch, photo)
            restructured = _errors(HEAD_OUTPUT, got, data[HEAD_OUTPUT][:1])[HEAD_OUTPUT]
            errors[HEAD_OUTPUT] = max(errors.get(HEAD_OUTPUT, 0.0), restructured)
    return errors


def check_precision(
    folder: Path,
    manifest: Manifest,
    precision: str,
    runners: Iterable[Runner],
    fast: Mapping[str, Runner] | None = None,
    where: str = "",
) -> PrecisionCheck:
    """Measure ``runners`` (and ``fast``) on the parity inputs and judge them by ``precision``'s tolerance."""
    t0 = time.perf_counter()
    tolerance = (manifest.extra.get("tolerances") or {}).get(precision) or DEFAULT_TOLERANCES.get(precision)
    if not tolerance:
        return PrecisionCheck(False, f"the manifest records no {precision} tolerance to check the graphs against")
    try:
        errors = measure(folder, manifest, runners, fast)
    except (OSError, KeyError, ValueError) as exc:
        reason = f"cannot run the {precision} self-check on {PARITY_FILE} ({type(exc).__name__}: {exc})"
        return PrecisionCheck(False, reason)
    seconds = time.perf_counter() - t0
    failed = failed_criteria(errors, tolerance)
    where = f" {where}" if where else ""
    if failed:
        failures = "; ".join(failed)
        return PrecisionCheck(False, f"self-check against {PARITY_FILE} failed{where}: {failures}", errors, seconds)
    summary = ", ".join(f"{k} {v:.3g}" for k, v in errors.items())
    return PrecisionCheck(True, f"self-check passed{where}: {summary}", errors, seconds)


def _errors(output: str, got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return {output: float("inf"), **({"ret_token_cosine": -1.0} if output == ENCODER_OUTPUT else {})}
    got = got.astype(np.float32)
    out = {output: float(np.abs(got - want).max())}
    if output == ENCODER_OUTPUT:
        out["ret_token_cosine"] = cosine_min(got[:, 0], want[:, 0])
    return out


def cosine_min(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest cosine between the rows of ``a`` and ``b`` (in float64)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).min())
