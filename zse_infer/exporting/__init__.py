"""torch -> ONNX export: graphs shaped for ONNX Runtime and TensorRT, fp16, attention fusion, validation, manifest.

Public entry points (imported lazily, so ``zse_infer.exporting.recipes`` stays
free of torch and onnx)::

    from zse_infer.exporting import export_model, ExportOptions
    manifest = export_model("best_checkpoint.pth", "engines/zse_vit_b16", options=ExportOptions(fp16=True))

Roles of the modules: ``recipes`` (export/*.json), ``plan`` (which graphs,
their I/O contract), ``graph_modules`` (export-shaped torch modules),
``torch_to_onnx`` (the exporter call), ``attention_fusion`` (ORT graphs),
``graph_checks`` (standard ops, polygraphy lint), ``validation`` (parity on
ORT CPU), ``folder`` (all-or-nothing output), ``pipeline`` (the whole export),
``report`` (validate / inspect an existing folder).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "export_model": "zse_infer.exporting.pipeline",
    "ExportOptions": "zse_infer.exporting.pipeline",
    "load_recipe": "zse_infer.exporting.recipes",
    "list_recipes": "zse_infer.exporting.recipes",
    "Recipe": "zse_infer.exporting.recipes",
    "validate_folder": "zse_infer.exporting.report",
    "describe_folder": "zse_infer.exporting.report",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zse_infer.exporting' has no attribute {name!r}")
