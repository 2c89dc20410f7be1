"""The export-shaped modules compute what the PyTorch model computes, from the same weights."""

import pytest
import torch
from torch import nn

from zse_infer.errors import ExportError
from zse_infer.exporting.graph_modules import AttentionCore, build_export_module


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(3, 3, 64, 64, generator=g),
        torch.randn(3, 65, 32, generator=g),
        torch.randn(3, 65, 32, generator=g),
    )


@pytest.mark.parametrize("style", ["divide", "prescale"])
def test_fp32_modules_match_the_model(tiny_model, inputs, style):
    image, s, p = inputs
    encoder = build_export_module(tiny_model, "encoder", "fp32", style)
    head = build_export_module(tiny_model, "relation_head", "fp32", style)
    with torch.no_grad():
        assert torch.allclose(encoder(image), tiny_model.encode(image), atol=1e-5)
        assert torch.allclose(head(s, p), tiny_model.relate(s, p), atol=1e-6)


def test_fp16_modules_keep_float32_io_and_fp32_islands(tiny_model, inputs):
    image, s, p = inputs
    encoder = build_export_module(tiny_model, "encoder", "fp16")
    head = build_export_module(tiny_model, "relation_head", "fp16")
    assert encoder.blocks[0].q.weight.dtype == torch.float16
    assert encoder.blocks[0].norm1.norm.weight.dtype == torch.float32  # LayerNorm stays fp32
    assert head.sketch_layer.norm1.norm.a.dtype == torch.float32  # unbiased-std norm stays fp32
    assert head.mlp[0].weight.dtype == torch.float32  # cosine kernel + relation MLP stay fp32
    with torch.no_grad():
        tokens, score = encoder(image), head(s, p)
        assert tokens.dtype == score.dtype == torch.float32
        assert (tokens - tiny_model.encode(image)).abs().max() < 2e-2
        assert (score - tiny_model.relate(s, p)).abs().max() < 1e-3


def test_building_never_touches_the_callers_model(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    build_export_module(tiny_model, "encoder", "fp16")
    for k, v in tiny_model.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, before[k])


def test_split_qkv_rows_are_q_k_v(tiny_model):
    block = tiny_model.encoder.blocks[0]
    export = build_export_module(tiny_model, "encoder").blocks[0]
    d = tiny_model.config.width
    assert torch.equal(export.k.weight, block.attn.qkv.weight[d : 2 * d])
    assert torch.equal(export.v.bias, block.attn.qkv.bias[2 * d :])


def test_unknown_arguments_are_refused(tiny_model):
    with pytest.raises(ExportError, match="role: received 'decoder'"):
        build_export_module(tiny_model, "decoder")
    with pytest.raises(ExportError, match="precision: received 'int4'"):
        build_export_module(tiny_model, "encoder", "int4")
    with pytest.raises(ExportError, match="attention style"):
        AttentionCore(2, 32, "sdpa")


def test_blocks_with_parts_the_exporter_does_not_know_are_refused(tiny_model):
    tiny_model.encoder.blocks[1].ls1 = nn.Linear(32, 32)
    with pytest.raises(ExportError, match="non-identity ls1"):
        build_export_module(tiny_model, "encoder")


def test_a_block_of_another_layout_is_refused_not_exported_differently(tiny_model):
    # Layer norm swapped for RMSNorm: the exporter's fp32 LayerNorm would silently change the network.
    tiny_model.encoder.blocks[0].norm1 = nn.RMSNorm(tiny_model.config.width)
    with pytest.raises(ExportError, match="encoder block part 'norm1' is RMSNorm, expected LayerNorm"):
        build_export_module(tiny_model, "encoder")
