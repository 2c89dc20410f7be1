"""torch module -> ONNX ModelProto (dynamo exporter), with the dynamic ``batch`` dimension and the contract's I/O
names; why it is shaped so (name clashes, stack traces stripped, opset): docs/export.md."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Mapping, Sequence

import onnx
import torch

from ..errors import ExportError

_log = logging.getLogger(__name__)

BATCH_DIM = "batch"
# Tracing with batch 2 keeps torch.export from specialising the dimension (0 and 1 are special-cased).
TRACE_BATCH = 2
_STRIPPED_METADATA = ("pkg.torch.onnx.stack_trace",)


def export_graph(
    module: torch.nn.Module,
    example: Mapping[str, torch.Tensor],
    output_names: Sequence[str],
    opset: int,
    max_batch: int,
    graph_name: str,
    static_inputs: Sequence[str] = (),
) -> onnx.ModelProto:
    """Export ``module(**example)`` with a dynamic first dimension named ``batch`` on every input
    but ``static_inputs`` (e.g. one query's tensors that a graph broadcasts over the batch)."""
    parameter_names = {n for n, _ in module.named_parameters()} | {n for n, _ in module.named_buffers()}
    if clashes := sorted((set(example) | set(output_names)) & parameter_names):
        fix = "the dynamo exporter would write an invalid model (rename the parameters or the graph I/O)"
        raise ExportError(f"graph {graph_name}: input/output name(s) {clashes} equal parameter names; {fix}")
    batch = torch.export.Dim(BATCH_DIM, min=1, max=max(max_batch, TRACE_BATCH))
    dynamic_shapes = {name: (None if name in static_inputs else {0: batch}) for name in example}
    captured = io.StringIO()
    try:
        # The exporter prints its progress to stdout and warns that all inputs share the
        # one "batch" axis (intended); keep both out of the user's terminal, in our log.
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(captured):
            warnings.filterwarnings("ignore", message=".*axis name: batch.*")
            program = torch.onnx.export(
                module,
                tuple(example.values()),
                None,
                input_names=list(example),
                output_names=list(output_names),
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                dynamo=True,
                verbose=False,
                external_data=False,
            )
    except Exception as exc:  # the exporter raises many types (torch._dynamo, onnxscript, ...)
        raise ExportError(f"graph {graph_name}: torch.onnx.export failed ({type(exc).__name__}: {exc})") from exc
    finally:
        if output := captured.getvalue().strip():
            _log.debug("torch.onnx output for %s:\n%s", graph_name, output)
    if program is None:  # only when given a file to write, which this call never does
        raise ExportError(f"graph {graph_name}: torch.onnx.export returned no ONNX program")
    model = program.model_proto
    model.graph.name = graph_name
    _check_io(model, list(example), output_names, graph_name, static_inputs)
    return model


def _check_io(
    model: onnx.ModelProto, inputs: Sequence[str], outputs: Sequence[str], name: str, static: Sequence[str]
) -> None:
    got_in, got_out = [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    if got_in != list(inputs) or got_out != list(outputs):
        expected = f"expected {list(inputs)} -> {list(outputs)}"
        raise ExportError(f"graph {name}: exported I/O names {got_in} -> {got_out}, {expected}")
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.name not in static and (not dims or dims[0].dim_param != BATCH_DIM):
            raise ExportError(f"graph {name}: {value.name} has no dynamic '{BATCH_DIM}' first dimension")


def strip_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop per-node stack traces (keep module scopes: small, and useful to read a graph)."""
    for node in model.graph.node:
        kept = [p for p in node.metadata_props if p.key not in _STRIPPED_METADATA]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    return model


def save_graph(model: onnx.ModelProto, path) -> None:
    """Check and write one self-contained .onnx file (every graph here is far below protobuf's 2 GB)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path}: the exported graph is not valid ONNX ({exc})") from exc
    onnx.save_model(model, str(path))
