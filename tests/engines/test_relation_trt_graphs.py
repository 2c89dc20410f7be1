"""The restructured relation head, TensorRT-shaped (relation_*_trt): exported, linted, chosen for engines,
and served by ``open_relation_runners`` (ONNX Runtime CPU here; TensorRT engines are GPU tests)."""

import pytest

from tests.support.relation import rerank_gap
from zse_infer.engines.build import engine_graphs
from zse_infer.manifest import Manifest
from zse_infer.runtime.runners.select import RELATION_ROLES, open_relation_runners, open_runners

onnx = pytest.importorskip("onnx")


def test_trt_relation_graphs_are_exported_prescaled_and_linted(tiny_export):
    manifest = Manifest.load(tiny_export)
    for role in RELATION_ROLES:
        graph = manifest.select_graph(role, ("fp32",), ("trt",))
        assert graph.id == f"{role}_trt" and graph.extra["attention_scale"] == "prescale"
        lint = graph.extra["lint"]
        assert lint.get("failing") == 0 or "skipped" in lint
    proto = onnx.load(str(tiny_export / "relation_pair_trt.onnx"))
    producer = {o: n for n in proto.graph.node for o in n.output}
    softmaxes = [n for n in proto.graph.node if n.op_type == "Softmax"]
    assert len(softmaxes) == 2
    for sm in softmaxes:  # MatMul(q * d**-0.5, K^T) -> Softmax: the pattern TensorRT fuses
        matmul = producer[sm.input[0]]
        assert matmul.op_type == "MatMul" and producer[matmul.input[0]].op_type == "Mul"
    assert not [n for n in proto.graph.node if n.domain not in ("", "ai.onnx")]


def test_engines_are_planned_for_the_trt_relation_graphs(tiny_export):
    chosen = {g.id for g in engine_graphs(Manifest.load(tiny_export))}
    assert {
        "encoder_trt",
        "relation_head_trt",
        "relation_sketch_trt",
        "relation_photo_trt",
        "relation_pair_trt",
    } <= chosen


def test_open_relation_runners_on_onnxruntime_matches_the_relation_head(tiny_export):
    manifest = Manifest.load(tiny_export)
    runners = open_runners(tiny_export, manifest, backend="onnxruntime-cpu")
    fast = open_relation_runners(tiny_export, manifest, runners)
    assert set(fast) == set(RELATION_ROLES)
    assert rerank_gap(fast, runners, manifest, photos=6) < 1e-5
    for r in fast.values():
        r.close()
    runners.close()


def test_open_relation_runners_is_none_on_the_torch_backend(tiny_export):
    from zse_infer.runtime.runners.base import ModelRunners

    manifest = Manifest.load(tiny_export)
    ort = open_runners(tiny_export, manifest, backend="onnxruntime-cpu")
    as_torch = ModelRunners(ort.encoder, ort.relation_head, "torch", "fp32")
    assert open_relation_runners(tiny_export, manifest, as_torch) is None
