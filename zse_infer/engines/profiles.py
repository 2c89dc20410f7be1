"""TensorRT optimisation profiles from the manifest's batch ranges: plain data, no TensorRT needed."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ExportError
from ..manifest import BatchRange, TensorSpec

Shapes = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def profile_shapes(inputs: Iterable[TensorSpec], batch: BatchRange) -> Shapes:
    """input name -> (min, opt, max) shapes: the dynamic ``batch`` dim takes the range, the rest are fixed.
    Fully static inputs (``relation_pair``'s one-query sketch side, leading dim 1) get no entry."""
    shapes: Shapes = {}
    for spec in inputs:
        dynamic = [d for d in spec.shape if isinstance(d, str)]
        if not dynamic:
            continue
        if dynamic != ["batch"] or spec.shape[0] != "batch":
            expected = "expected a leading 'batch' dimension and fixed others"
            raise ExportError(f"input {spec.name}: shape {list(spec.shape)}, {expected}")
        rest = tuple(int(d) for d in spec.shape[1:])
        shapes[spec.name] = ((batch.min, *rest), (batch.opt, *rest), (batch.max, *rest))
    return shapes


def profile_to_json(shapes: Shapes) -> dict[str, dict[str, list[int]]]:
    return {name: {"min": list(mn), "opt": list(op), "max": list(mx)} for name, (mn, op, mx) in sorted(shapes.items())}
