"""Our attention rewrite: every AttentionCore becomes one com.microsoft::MultiHeadAttention, nothing else changes."""

import numpy as np
import onnx
import pytest
import torch

from zse_infer.errors import ExportError
from zse_infer.exporting.attention_fusion import count_fused_nodes, fuse_attention, fuse_for_ort
from zse_infer.exporting.graph_checks import nonstandard_ops, require_standard_ops
from zse_infer.exporting.graph_modules import build_export_module
from zse_infer.exporting.torch_to_onnx import export_graph


def _export(model, role, precision="fp32", style="divide"):
    module = build_export_module(model, role, precision, style)
    if role == "encoder":
        example, outputs = {"image": torch.randn(2, 3, 64, 64)}, ["tokens"]
    else:
        example, outputs = {"sketch_tokens": torch.randn(2, 65, 32), "photo_tokens": torch.randn(2, 65, 32)}, ["score"]
    return export_graph(module, example, outputs, 18, 16, role)


@pytest.fixture(scope="module")
def graphs():
    torch.manual_seed(0)
    from zse_infer.model import ZseModel

    model = ZseModel("tiny").eval()
    return model, {role: _export(model, role) for role in ("encoder", "relation_head")}


def _run(model_proto, feeds):
    import onnxruntime as ort

    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def test_every_encoder_block_and_both_cross_attentions_fuse(graphs):
    model, protos = graphs
    depth = model.config.encoder.depth
    _encoder, counts = fuse_for_ort(protos["encoder"], 2, 32, "encoder")
    # fp32: ORT's own fusion takes every block, block 0 included (the expanded position embedding)
    assert counts["Attention"] == depth and "MultiHeadAttention" not in counts
    assert counts["SkipLayerNormalization"] == 2 * depth + 1
    head, counts = fuse_for_ort(protos["relation_head"], 2, 32, "relation_head")
    assert counts == {"MultiHeadAttention": 2}
    assert not any(n.op_type == "Softmax" for n in head.graph.node)
    onnx.checker.check_model(head)


def test_fp16_encoder_attention_left_by_ort_is_fused_by_our_rewrite(graphs):
    model, _ = graphs
    fp16 = _export(model, "encoder", "fp16")
    fused, counts = fuse_for_ort(fp16, 2, 32, "encoder")
    assert counts["MultiHeadAttention"] == model.config.encoder.depth and "Attention" not in counts
    image = np.random.default_rng(0).uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
    np.testing.assert_allclose(_run(fused, {"image": image}), _run(fp16, {"image": image}), atol=2e-2)


def test_fused_graphs_compute_the_same(graphs):
    _model, protos = graphs
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        image = rng.standard_normal((batch, 3, 64, 64)).astype(np.float32)
        fused, _ = fuse_for_ort(protos["encoder"], 2, 32, "encoder")
        np.testing.assert_allclose(_run(fused, {"image": image}), _run(protos["encoder"], {"image": image}), atol=1e-5)
        feeds = {n: rng.standard_normal((batch, 65, 32)).astype(np.float32) for n in ("sketch_tokens", "photo_tokens")}
        fused, _ = fuse_for_ort(protos["relation_head"], 2, 32, "relation_head")
        np.testing.assert_allclose(_run(fused, feeds), _run(protos["relation_head"], feeds), atol=1e-6)


def test_cross_attention_keeps_the_quirky_key_and_value(graphs):
    # S' = L1(q=S, k=P, v=S): the fused node must read k from the *other* image's projection.
    _, protos = graphs
    head, _ = fuse_for_ort(protos["relation_head"], 2, 32, "relation_head")
    producer = {o: n for n in head.graph.node for o in n.output}
    for node in (n for n in head.graph.node if n.op_type == "MultiHeadAttention"):
        layer = node.name.split(".")[0]
        q_scope, k_scope, v_scope = (str(producer[i].metadata_props) for i in node.input)
        assert f"{layer}.q" in q_scope and f"{layer}.k" in k_scope and f"{layer}.v" in v_scope


def test_fusion_leaves_the_input_untouched(graphs):
    _, protos = graphs
    before = protos["encoder"].SerializeToString()
    fuse_for_ort(protos["encoder"], 2, 32, "encoder")
    assert protos["encoder"].SerializeToString() == before


def test_graph_without_scopes_is_refused(graphs):
    _, protos = graphs
    stripped = onnx.ModelProto()
    stripped.CopyFrom(protos["relation_head"])
    for node in stripped.graph.node:
        del node.metadata_props[:]
    with pytest.raises(ExportError, match="no attention node groups"):
        fuse_attention(stripped, 2)


def test_standard_ops_check(graphs):
    _, protos = graphs
    require_standard_ops(protos["encoder"], "encoder")
    fused, _ = fuse_for_ort(protos["relation_head"], 2, 32, "relation_head")
    assert nonstandard_ops(fused) == ["com.microsoft::MultiHeadAttention"]
    with pytest.raises(ExportError, match="only standard ONNX ops"):
        require_standard_ops(fused, "relation_head_trt")
    assert count_fused_nodes(protos["encoder"]) == {}


def test_trt_graphs_scale_q_before_the_first_matmul(graphs):
    model, _ = graphs
    proto = _export(model, "relation_head", style="prescale")
    producer = {o: n for n in proto.graph.node for o in n.output}
    softmax = [n for n in proto.graph.node if n.op_type == "Softmax"]
    assert len(softmax) == 2
    for node in softmax:
        first = producer[node.input[0]]
        assert first.op_type == "MatMul"  # no Div between the MatMul and the Softmax
        assert producer[first.input[0]].op_type == "Mul"  # q * d**-0.5


def test_output_named_like_a_parameter_is_refused(tiny_model):
    module = build_export_module(tiny_model, "relation_head")
    example = {"sketch_tokens": torch.randn(2, 65, 32), "photo_tokens": torch.randn(2, 65, 32)}
    with pytest.raises(ExportError, match="equal parameter names"):
        export_graph(module, example, ["anchor_conv.weight"], 18, 8, "relation_head")
