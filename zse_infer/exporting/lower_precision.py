"""int8 graphs and bf16 compute at export, judged by rankings and recorded in the manifest. Token error is recorded,
not judged (a random ViT-B/16 reaches 0.1-0.3 in tokens of magnitude tens while its rankings agree)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..errors import ExportError
from ..manifest import GraphSpec
from . import validation
from .agreement import Models, RankingSet, demo_ranking_set, parity_ranking_set, ranking_agreement, runner_fns
from .recipes import ROLES, Recipe

_log = logging.getLogger(__name__)

#: used when a recipe names no int8 tolerances (recipes written before ranking-based acceptance)
DEFAULT_INT8_TOLERANCES = {
    "score": 0.01,
    "ret_token_cosine_min": 0.99,
    "top10_overlap_min": 0.8,
    "map_all_delta_min": -0.02,
}


class Reference:
    """The ranking set and the fp32 graphs' (encode, score) on it, made on first use and shared by the int8
    and bf16 measurements (encoding the set in fp32 once: ~30 s for ViT-B/16 on 2 cores)."""

    def __init__(self, folder: Path, graphs: Mapping[str, GraphSpec], cfg: ModelConfig, data: Mapping[str, Any]):
        self.folder, self.graphs, self.cfg, self.data = folder, graphs, cfg, data

    @functools.cached_property
    def rankings(self) -> RankingSet:
        return demo_ranking_set(self.cfg) or parity_ranking_set(dict(self.data))

    @functools.cached_property
    def fns(self) -> Models:
        from ..runtime.runners.onnxruntime_backend import OrtRunner

        encode, score = runner_fns(*(OrtRunner(self.graphs[role], self.folder) for role in ROLES))
        done: dict[int, np.ndarray] = {}

        def memo_encode(images: np.ndarray) -> np.ndarray:
            if id(images) not in done:  # the ranking set's arrays live as long as this object
                done[id(images)] = encode(images)
            return done[id(images)]

        return memo_encode, score


def int8_tolerance(recipe: Recipe) -> dict[str, float]:
    return dict(recipe.tolerances.get("int8") or DEFAULT_INT8_TOLERANCES)


def int8_graphs(
    graphs: Mapping[str, GraphSpec], folder: Path, recipe: Recipe, data: Mapping[str, Any], reference: Reference
) -> dict[str, GraphSpec]:
    """``encoder_int8`` and ``relation_head_int8``, accepted by ranking agreement (else :class:`ExportError`)."""
    from ..runtime.runners.cpu_features import cpu_features
    from ..runtime.runners.onnxruntime_backend import OrtRunner
    from ..runtime.runners.precision_check import failed_criteria
    from .quantize import quantize_int8, saturation_risks

    tolerance = int8_tolerance(recipe)
    made: dict[str, GraphSpec] = {}
    for role in ROLES:
        t0 = time.perf_counter()
        source, gid = graphs[role], f"{role}_int8"
        path = folder / f"{gid}.onnx"
        settings = quantize_int8(folder / source.file, path)
        if risky := saturation_risks(path):
            nodes = f"{len(risky)} MatMulInteger node(s) ({', '.join(risky[:3])})"
            why = "can saturate on x86 CPUs without VNNI; expected 7-bit weights (reduce_range)"
            raise ExportError(f"{path.name} (int8): {nodes} have int8 weights that {why}")
        parity = validation.measure_parity(validation.ort_cpu_runner(path), role, data, recipe.validation_batch_sizes)
        extra: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 1), "size_bytes": path.stat().st_size}
        extra["quantization"] = {**settings, "saturation_free_on_x86": True}
        made[gid] = replace(
            source, id=gid, precision="int8", file=path.name, parity=parity, fused_nodes={}, extra=extra
        )
    t0 = time.perf_counter()
    candidate = runner_fns(*(OrtRunner(made[f"{role}_int8"], folder) for role in ROLES))
    agreement = ranking_agreement(reference.fns, candidate, reference.rankings)
    # Rankings decide (agreement); the parity pair's score error is what the load-time self-check re-measures.
    score_tolerance = {k: v for k, v in tolerance.items() if k == "score"}
    failed = failed_criteria(agreement, tolerance) + failed_criteria(made["relation_head_int8"].parity, score_tolerance)
    _log.info("int8 agreement with fp32 (%.0f s): %s", time.perf_counter() - t0, agreement)
    if failed:
        raise ExportError(f"int8 graphs change rankings ({agreement['set']}): " + "; ".join(failed))
    validated_on = {**cpu_features(), "agreement": agreement, "tolerance": tolerance}
    # GraphSpecs are values: record the validation in new ones rather than mutate their extra in place.
    for gid, spec in list(made.items()):
        extra = {**spec.extra, "validated_on": {**validated_on, "parity": dict(spec.parity)}}
        if gid == "encoder_int8":
            extra["ret_token_cosine_min"] = agreement["ret_token_cosine_min"]
        made[gid] = replace(spec, extra=extra)
    return made


def bf16_agreement(folder: Path, graphs: Mapping[str, GraphSpec], reference: Reference) -> dict[str, Any]:
    """OpenVINO bf16 against ONNX Runtime fp32 on ``rankings``, or ``{"measured": False, "reason": ...}``."""
    import importlib.util

    from ..runtime.runners.cpu_features import bf16_unit, cpu_features, describe

    features = cpu_features()
    unit = bf16_unit(features)
    if unit is None:
        return {"measured": False, "reason": f"no bf16 unit on the exporting CPU ({describe(features)})"}
    if importlib.util.find_spec("openvino") is None:
        reason = "openvino not installed where the export ran (pip install 'zse-infer[cpu]')"
        return {"measured": False, "reason": reason}
    from ..runtime.runners.openvino_backend import OpenVinoRunner, openvino_version

    bf16 = runner_fns(*(OpenVinoRunner(graphs[role], folder, "bf16", cache_dir=False) for role in ROLES))
    t0 = time.perf_counter()
    agreement = ranking_agreement(reference.fns, bf16, reference.rankings)
    _log.info("bf16 agreement with fp32 (%.0f s): %s", time.perf_counter() - t0, agreement)
    return {"measured": True, "cpu": describe(features), "unit": unit, "openvino": openvino_version(), **agreement}
