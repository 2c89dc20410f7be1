"""torch -> ONNX export: graphs shaped for ONNX Runtime and TensorRT, fp16, attention fusion, validation, manifest.
Entry points are imported lazily, so ``zse_infer.exporting.recipes`` stays free of torch and onnx."""

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
