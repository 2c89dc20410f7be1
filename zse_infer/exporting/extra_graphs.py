"""Graphs beyond the two-graph contract (docs/export.md): ``explain`` (:mod:`zse_infer.model.explain`) and the
restructured relation head ``relation_sketch/photo/pair`` (:mod:`zse_infer.model.fast_relation`); fp32, attention
written out, validated on ONNX Runtime CPU against the PyTorch modules."""

from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..manifest import HEAD_INPUTS, TensorSpec

# Not imported from torch_to_onnx: this module is also read by `zse-export validate` on runtime-only
# installs (no torch, no onnx), which need EXTRA_ROLES and folder_parity only.
BATCH_DIM = "batch"

EXTRA_ROLES = ("explain", "relation_sketch", "relation_photo", "relation_pair")
RELATION_ROLES = ("relation_sketch", "relation_photo", "relation_pair")  # also written as TensorRT-shaped graphs


def io_specs(config: ModelConfig, role: str) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    n, d, a, b = config.num_tokens, config.width, config.relation_head.anchors(config.encoder), BATCH_DIM
    tok, patches = (b, n, d), (b, n - 1, d)
    f32 = lambda name, shape: TensorSpec(name, "float32", shape)  # noqa: E731
    if role == "explain":
        outputs = (
            f32("score", (b,)),
            f32("kernel", (b, a, a)),
            f32("sketch_attention", (b, n, n)),
            f32("photo_attention", (b, n, n)),
            TensorSpec("best_photo_anchor", "int64", (b, a)),
            f32("sketch_relevance", (b, a, n - 1)),
            f32("photo_relevance", (b, a, n - 1)),
            f32("bias_relevance", (b, a, 2)),
        )
        return tuple(f32(name, tok) for name in HEAD_INPUTS), outputs
    if role == "relation_sketch":
        return (f32("sketch_tokens", tok),), (f32("sketch_q", patches), f32("sketch_v", tok), f32("sketch_k", tok))
    if role == "relation_photo":
        return (f32("photo_tokens", tok),), (f32("photo_k", tok), f32("photo_q", patches), f32("photo_v", tok))
    # relation_pair: the two sides' tokens and outputs, the sketch's (one query) with batch 1, broadcast over photos
    sketch_side = (f32("sketch_tokens", tok), *io_specs(config, "relation_sketch")[1])
    photo_side = (f32("photo_tokens", tok), *io_specs(config, "relation_photo")[1])
    return (*(f32(s.name, (1, *s.shape[1:])) for s in sketch_side), *photo_side), (f32("score", (b,)),)


def static_inputs(config: ModelConfig, role: str) -> list[str]:
    return [t.name for t in io_specs(config, role)[0] if not isinstance(t.shape[0], str)]


def _fast_head(head: Any, style: str):
    """The restructured head with explicit attention: scores divided by sqrt(d) (``"divide"``, ORT's pattern)
    or q scaled by d**-0.5 before the first MatMul (``"prescale"``, TensorRT's fused-attention pattern)."""
    import torch

    from ..model.fast_relation import FastRelationHead

    class PrescaledFastRelationHead(FastRelationHead):
        def _attend(self, q, k, v):
            # matmul broadcasts the batch-1 sketch side, as the divide form does.
            scores = torch.matmul(q * (q.shape[-1] ** -0.5), k.transpose(-2, -1))
            return torch.matmul(scores.softmax(dim=-1), v)

    fast = PrescaledFastRelationHead(head) if style == "prescale" else FastRelationHead(head)
    fast.fused = False
    return fast.eval()


def build_module(model: Any, role: str, style: str = "divide"):
    """A torch module for ``role`` on a private copy of the model, attention written out explicitly."""
    import torch

    from ..model.explain import EXPLAIN_OUTPUTS, ExplainHead
    from ..model.fast_relation import RelationPairGraph, RelationPhotoGraph, RelationSketchGraph

    source = copy.deepcopy(model).float().eval()
    for module in source.modules():
        if hasattr(module, "fused"):
            module.fused = False
    head = source.relation_head
    if role == "explain":
        explain = ExplainHead(head).eval()

        class Explain(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = explain

            def forward(self, sketch_tokens, photo_tokens):
                out = self.inner(sketch_tokens, photo_tokens)
                return tuple(out[name] for name in EXPLAIN_OUTPUTS)

        return Explain().eval()
    graphs = dict(zip(RELATION_ROLES, (RelationSketchGraph, RelationPhotoGraph, RelationPairGraph), strict=True))
    return graphs[role](_fast_head(head, style)).eval()


def feeds(role: str, data: Mapping[str, np.ndarray], batch: int, model: Any) -> dict[str, np.ndarray]:
    """Inputs of ``role`` for ``batch`` rows of the built-in reference tokens."""
    sketch, photo = (np.ascontiguousarray(data[name][:batch]) for name in HEAD_INPUTS)
    if role == "explain":
        return {HEAD_INPUTS[0]: sketch, HEAD_INPUTS[1]: photo}
    if role == "relation_sketch":
        return {"sketch_tokens": sketch}
    if role == "relation_photo":
        return {"photo_tokens": photo}
    # relation_pair: one query (row 0) against `batch` photos; its sides come from the torch modules.
    s_out = torch_outputs(model, "relation_sketch", {"sketch_tokens": sketch[:1]})
    p_out = torch_outputs(model, "relation_photo", {"photo_tokens": photo})
    return {"sketch_tokens": sketch[:1], **s_out, "photo_tokens": photo, **p_out}


# model -> {role: module}: validation asks for the same graph's reference outputs several times,
# and build_module deep-copies the model; build each role once per model.
_MODULES: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def torch_outputs(model: Any, role: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    modules = _MODULES.setdefault(model, {})
    module = modules.get(role) or modules.setdefault(role, build_module(model, role))
    names = [t.name for t in io_specs(model.config, role)[1]]
    with torch.no_grad():
        out = module(*(torch.from_numpy(np.asarray(v)) for v in inputs.values()))
    out = out if isinstance(out, tuple) else (out,)
    return {name: t.numpy() for name, t in zip(names, out, strict=True)}


def parity(run, model: Any, role: str, data: Mapping[str, np.ndarray], batch_sizes: Sequence[int]) -> dict[str, float]:
    """Max abs error per float output of the ONNX graph against PyTorch; for integer outputs,
    the fraction of entries that differ (argmax of near-equal values may flip)."""
    errors: dict[str, float] = {}
    for b in batch_sizes:
        inputs = feeds(role, data, b, model)
        want = torch_outputs(model, role, inputs)
        got = run(inputs)
        for name, expected in want.items():
            value = np.asarray(got[name])
            if value.shape != expected.shape:
                shapes = f"received {value.shape}, expected {expected.shape}"
                raise ValueError(f"{role}: output {name} at batch {b}: {shapes}")
            if np.issubdtype(expected.dtype, np.integer):
                err = float(np.mean(value != expected))
            elif np.all(np.isfinite(value)):
                err = float(np.abs(value.astype(np.float32) - expected).max())
            else:
                err = float("inf")
            errors[name] = max(errors.get(name, 0.0), err)
    return errors


def tolerances(config: ModelConfig, role: str, fp32: Mapping[str, float]) -> dict[str, float]:
    """Scores use the recipe's score tolerance; every other float output its token tolerance."""
    # best_photo_anchor: the share of anchors whose argmax may flip between near-equal cosines.
    return {
        s.name: 0.05 if s.name == "best_photo_anchor" else fp32["score" if s.name == "score" else "tokens"]
        for s in io_specs(config, role)[1]
    }


def folder_parity(
    manifest, role: str, data: Mapping[str, np.ndarray], batch_sizes: Sequence[int], runner, variant: str = "plain"
) -> dict[str, float]:
    """Score error of an extra graph against the folder's PyTorch reference scores, without torch: ``explain``'s
    ``score``, or the three relation graphs (of ``variant``) composed row by row; ``runner(graph)``: feeds -> out."""
    sketch, photo, want = data[HEAD_INPUTS[0]], data[HEAD_INPUTS[1]], data["score"]
    n = max(batch_sizes)
    if role == "explain":
        got = runner(manifest.graphs["explain"])({HEAD_INPUTS[0]: sketch[:n], HEAD_INPUTS[1]: photo[:n]})["score"]
    else:
        run_s, run_p, run_pair = (runner(manifest.select_graph(r, ("fp32",), (variant,))) for r in RELATION_ROLES)
        got = np.empty(n, np.float32)
        for i in range(n):
            s_in, p_in = {"sketch_tokens": sketch[i : i + 1]}, {"photo_tokens": photo[i : i + 1]}
            got[i] = run_pair({**s_in, **run_s(s_in), **p_in, **run_p(p_in)})["score"][0]
    return {"score": float(np.abs(np.asarray(got, np.float32) - want[:n]).max())}
