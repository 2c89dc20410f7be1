"""ONNX Runtime graphs: every attention as one fused node (``com.microsoft::Attention`` or ``MultiHeadAttention``).

ORT's optimizer runs first; :func:`fuse_attention` turns each :class:`~.graph_modules.AttentionCore` name-scope group
it left into ``MultiHeadAttention(q, k, v)``; :func:`fuse_for_ort` checks all got fused (docs/export.md).
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
    # Stored as a Python list literal of quoted names.
    return next((list(ast.literal_eval(p.value)) for p in node.metadata_props if p.key == key), [])


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
        if (scope := _core_scope(node)) is not None:
            groups[scope].append(i)
    return dict(groups)


def fuse_attention(model: onnx.ModelProto, num_heads: int, allow_none: bool = False) -> int:
    """Replace every AttentionCore node group by MultiHeadAttention, in place; returns how many."""
    graph, groups = model.graph, attention_groups(model)
    if not groups and allow_none:
        return 0
    if not groups:
        what = f"graph {graph.name!r}: no attention node groups found (expected nodes whose name scope is an "
        raise ExportError(
            what + "AttentionCore); was it exported by zse_infer.exporting from the export-shaped modules?"
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
        escaping = sorted(o for o in produced if o in graph_outputs or any(c not in member_set for c in consumers[o]))
        if sorted(qkv) != sorted(_PROJECTIONS) or len(escaping) != 1:
            found = f"found inputs {qkv} and outputs {escaping}"
            raise ExportError(f"attention {scope!r}: expected inputs from projections q, k, v and one output; {found}")
        qkv_in, node_name = [qkv[p] for p in _PROJECTIONS], f"{scope}.MultiHeadAttention"
        replacements[members[0]] = helper.make_node(
            "MultiHeadAttention", qkv_in, escaping, name=node_name, domain=MS_DOMAIN, num_heads=num_heads
        )
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
        available.update(o for n in ready for o in n.output)
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
    """A plain graph (name scopes intact) -> its ORT-fused copy and the fused node counts. The encoder goes through
    ORT's optimizer at ``opt_level=0`` (no provider-specific folding: stays portable), then our rewrite. The relation
    head gets our rewrite only: ORT 1.32's optimizer breaks it (drops the final Sigmoid: "Graph is not a DAG")."""
    expected = len(attention_groups(model))
    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    if role == "encoder":
        fused = _ort_optimizer(fused, num_heads, hidden_size)
    ours = fuse_attention(fused, num_heads, allow_none=role == "encoder")
    _ensure_ms_opset(fused)  # ORT's optimizer may add com.microsoft nodes without declaring the domain
    counts = count_fused_nodes(fused)
    done = counts.get("Attention", 0) + counts.get("MultiHeadAttention", 0)
    name = fused.graph.name
    if expected == 0 or done != expected:
        found = f"{done} fused attention nodes after optimisation ({counts})"
        raise ExportError(f"graph {name}: {expected} attention blocks, but {found}")
    _log.info("graph %s: %d attentions fused by ORT's optimizer, %d by our rewrite", name, done - ours, ours)
    return fused, counts


def _ort_optimizer(model: onnx.ModelProto, num_heads: int, hidden_size: int) -> onnx.ModelProto:
    require("onnxruntime", "runtime", "optimising graphs for ONNX Runtime")
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    name = model.graph.name
    try:
        settings = {"model_type": "vit", "num_heads": num_heads, "hidden_size": hidden_size, "opt_level": 0}
        optimized = optimize_model(model, **settings, optimization_options=FusionOptions("vit"))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ExportError(f"graph {name}: onnxruntime's transformer optimizer failed ({exc})") from exc
    optimized.model.graph.name = name
    return optimized.model
