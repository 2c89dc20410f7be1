"""ONNX Runtime graphs: every attention as one fused node (``com.microsoft::Attention`` or ``MultiHeadAttention``).

What ``onnxruntime.transformers.optimizer`` (ORT 1.31/1.32) does with our graphs, measured: its self-attention
fusion anchors on the (Skip)LayerNormalization after each residual Add, needing separate q/k/v projections and scores
divided by sqrt(d) (the plain graphs; for encoder block 0 see ``ExportEncoder.forward``). In fp16 graphs the fp32
casts around each LayerNorm stop that fusion, and it has no cross-attention fusion at all.

So ORT's optimizer runs first, and :func:`fuse_attention` fuses whatever attention it left: each attention is
exported inside an :class:`~zse_infer.exporting.graph_modules.AttentionCore` submodule whose nodes carry its name
scope (``pkg.torch.onnx.name_scopes``); each such group, whatever ops it holds, becomes one
``MultiHeadAttention(q, k, v)``, q, k and v identified by the sibling projections that produced them.
:func:`fuse_for_ort` checks that every attention ended up fused.
"""

from __future__ import annotations

import ast
import logging
from collections import Counter, defaultdict

import onnx
from onnx import helper

from ..errors import ExportError, require
from .graph_modules import AttentionCore

_log = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"
_SCOPES = "pkg.torch.onnx.name_scopes"
_CLASSES = "pkg.torch.onnx.class_hierarchy"
_CORE_CLASS = f"{AttentionCore.__module__}.{AttentionCore.__qualname__}"
# AttentionCore's q/k/v come from sibling submodules with these names (graph_modules).
_PROJECTIONS = ("q", "k", "v")


def _meta_list(node: onnx.NodeProto, key: str) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == key:
            # Stored as a Python list literal of quoted names.
            return list(ast.literal_eval(prop.value))
    return []


def _core_scope(node: onnx.NodeProto) -> str | None:
    pairs = zip(_meta_list(node, _SCOPES), _meta_list(node, _CLASSES), strict=True)
    return next((scope for scope, cls in pairs if cls == _CORE_CLASS), None)


def _projection_of(node: onnx.NodeProto | None, parent: str) -> str | None:
    scopes = _meta_list(node, _SCOPES) if node is not None else []
    return next((name for name in _PROJECTIONS if f"{parent}.{name}" in scopes), None)


def attention_groups(model: onnx.ModelProto) -> dict[str, list[int]]:
    """AttentionCore scope -> indices of its nodes (the attentions not fused yet)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(model.graph.node):
        scope = _core_scope(node)
        if scope is not None:
            groups[scope].append(i)
    return dict(groups)


def fuse_attention(model: onnx.ModelProto, num_heads: int, allow_none: bool = False) -> int:
    """Replace every AttentionCore node group by MultiHeadAttention, in place; returns how many."""
    graph = model.graph
    groups = attention_groups(model)
    if not groups and allow_none:
        return 0
    if not groups:
        raise ExportError(
            f"graph {graph.name!r}: no attention node groups found (expected nodes whose name scope is an "
            "AttentionCore); was it exported by zse_infer.exporting from the export-shaped modules?"
        )
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(graph.node):
        for name in node.input:
            consumers[name].append(i)
    graph_outputs = {o.name for o in graph.output}

    replacements: dict[int, onnx.NodeProto] = {}
    removed: set[int] = set()
    for scope, members in groups.items():
        member_set = set(members)
        nodes = [graph.node[i] for i in members]
        ops = Counter(n.op_type for n in nodes)
        if ops["Softmax"] != 1 or ops["MatMul"] != 2:
            raise ExportError(f"attention {scope!r}: expected 1 Softmax and 2 MatMul, found {dict(ops)}")
        parent = scope.rsplit(".", 1)[0] if "." in scope else ""
        qkv: dict[str, str] = {}
        for n in nodes:
            for name in n.input:
                role = _projection_of(producer.get(name), parent)
                if role is not None and producer[name] not in nodes:
                    qkv[role] = name
        produced = {o for n in nodes for o in n.output}
        escaping = sorted(
            o for o in produced if o in graph_outputs or any(c not in member_set for c in consumers.get(o, []))
        )
        if sorted(qkv) != sorted(_PROJECTIONS) or len(escaping) != 1:
            raise ExportError(
                f"attention {scope!r}: expected inputs from projections q, k, v and one output; "
                f"found inputs {qkv} and outputs {escaping}"
            )
        fused = helper.make_node(
            "MultiHeadAttention",
            [qkv["q"], qkv["k"], qkv["v"]],
            escaping,
            name=f"{scope}.MultiHeadAttention",
            domain=MS_DOMAIN,
            num_heads=num_heads,
        )
        replacements[members[0]] = fused
        removed.update(members[1:])

    new_nodes = [replacements.get(i, node) for i, node in enumerate(graph.node) if i not in removed]
    del graph.node[:]
    graph.node.extend(_topological_order(graph, new_nodes))
    remove_dead_nodes(model)
    _ensure_ms_opset(model)
    _log.debug("graph %s: fused %d attention groups into MultiHeadAttention", graph.name, len(groups))
    return len(groups)


def _ensure_ms_opset(model: onnx.ModelProto) -> None:
    if not any(op.domain == MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))


def _topological_order(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """``nodes`` reordered so every node follows its producers (stable: keeps the original order otherwise)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(nodes), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ExportError(f"graph {graph.name!r}: cycle or missing input after attention fusion")
        ready_ids = {id(n) for n in ready}
        for n in ready:
            available.update(n.output)
        ordered.extend(ready)
        pending = [n for n in pending if id(n) not in ready_ids]
    return ordered


def remove_dead_nodes(model: onnx.ModelProto) -> None:
    """Drop nodes and initializers nothing reads any more (e.g. shape arithmetic of a replaced group)."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    live_inits = [t for t in graph.initializer if t.name in needed]
    live_info = [v for v in graph.value_info if v.name in needed]
    for items, live in ((graph.node, kept[::-1]), (graph.initializer, live_inits), (graph.value_info, live_info)):
        del items[:]
        items.extend(live)


def count_fused_nodes(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes of the ``com.microsoft`` domain by op type: what the ORT-specific fusions produced."""
    return dict(sorted(Counter(n.op_type for n in model.graph.node if n.domain == MS_DOMAIN).items()))


def fuse_for_ort(
    model: onnx.ModelProto, num_heads: int, hidden_size: int, role: str
) -> tuple[onnx.ModelProto, dict[str, int]]:
    """A plain graph (as exported, name scopes intact) -> its ORT-fused copy and the fused node counts.

    The encoder goes through ORT's transformer optimizer at ``opt_level=0`` (no provider-specific folding: the
    graph stays portable), then our rewrite fuses what it left. The relation head gets our rewrite only: nothing
    else in it is ORT-fusable, and ORT 1.32's optimizer breaks it (drops the final Sigmoid: "Graph is not a DAG").
    """
    expected = len(attention_groups(model))
    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    if role == "encoder":
        fused = _ort_optimizer(fused, num_heads, hidden_size)
    ours = fuse_attention(fused, num_heads, allow_none=role == "encoder")
    _ensure_ms_opset(fused)  # ORT's optimizer may add com.microsoft nodes without declaring the domain
    counts = count_fused_nodes(fused)
    done = counts.get("Attention", 0) + counts.get("MultiHeadAttention", 0)
    if expected == 0 or done != expected:
        raise ExportError(
            f"graph {fused.graph.name}: {expected} attention blocks, but {done} fused attention nodes after "
            f"optimisation ({counts})"
        )
    _log.info(
        "graph %s: %d attentions fused by ORT's optimizer, %d by our rewrite", fused.graph.name, done - ours, ours
    )
    return fused, counts


def _ort_optimizer(model: onnx.ModelProto, num_heads: int, hidden_size: int) -> onnx.ModelProto:
    require("onnxruntime", "runtime", "optimising graphs for ONNX Runtime")
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    name = model.graph.name
    try:
        optimized = optimize_model(
            model,
            model_type="vit",
            num_heads=num_heads,
            hidden_size=hidden_size,
            opt_level=0,
            optimization_options=FusionOptions("vit"),
        )
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ExportError(f"graph {name}: onnxruntime's transformer optimizer failed ({exc})") from exc
    optimized.model.graph.name = name
    return optimized.model
