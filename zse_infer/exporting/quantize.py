"""int8 graphs for ONNX Runtime on CPUs: dynamic quantisation of the matrix products with 7-bit weights (why 7 bits:
docs/export.md); :func:`saturation_risks` checks the written graph, rankings decide acceptance (lower_precision)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError, require

#: what the manifest records about how each int8 graph was made (``extra.quantization``)
SETTINGS: dict[str, Any] = {
    "method": "onnxruntime.quantization.quantize_dynamic",
    "format": "U8S8",  # activations uint8 (dynamic, per tensor), weights int8
    "per_channel": True,
    "reduce_range": True,  # 7-bit weights: no VPMADDUBSW saturation on AVX2/AVX-512 without VNNI
    "op_types": ["MatMul", "Gemm"],
}

#: the largest |w0| + |w1| of two neighbouring int8 weights whose products with uint8
#: activations (<= 255) cannot leave int16 in VPMADDUBSW: 255 * 128 = 32640 <= 32767
SAFE_PAIR_SUM = 128


def quantize_int8(source: Path, target: Path) -> dict[str, Any]:
    """Write ``target``, the int8 version of the fp32 graph ``source``; return the settings used."""
    require("onnxruntime", "runtime", "int8 quantisation")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    root.addFilter(_no_preprocess_advice)
    options = {"per_channel": SETTINGS["per_channel"], "reduce_range": SETTINGS["reduce_range"]}
    try:
        ops = list(SETTINGS["op_types"])
        quantize_dynamic(str(source), str(target), **options, weight_type=QuantType.QInt8, op_types_to_quantize=ops)
    except Exception as exc:  # the quantiser raises assorted types (ValueError, onnx errors, ...)
        raise ExportError(f"{source.name}: int8 quantisation failed ({type(exc).__name__}: {exc})") from exc
    finally:
        root.removeFilter(_no_preprocess_advice)
    return dict(SETTINGS)


def _no_preprocess_advice(record: logging.LogRecord) -> bool:
    """Drop the quantiser's root-logger advice to pre-process the model: it concerns static quantisation; our graphs
    are already shape-inferred and the parity check vouches for them."""
    return "consider to run pre-processing" not in record.getMessage()


def saturation_risks(path: Path) -> list[str]:
    """Names of the ``MatMulInteger`` nodes of ``path`` whose int8 weights could saturate on x86 without VNNI:
    U8S8 kernels add the products of neighbouring K positions in 16 bits, so a node is safe when no two
    neighbouring weights of one output channel exceed :data:`SAFE_PAIR_SUM` in absolute sum (U8U8 always is)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = {t.name: t for t in model.graph.initializer}
    risky = []
    for node in model.graph.node:
        if node.op_type != "MatMulInteger" or node.input[1] not in weights:
            continue
        if (w := numpy_helper.to_array(weights[node.input[1]])).dtype != np.int8:
            continue
        w = np.abs(w.astype(np.int32).reshape(-1, w.shape[-1]))
        if w.shape[0] % 2:
            w = np.concatenate([w, np.zeros((1, w.shape[1]), np.int32)])
        if int((w[0::2] + w[1::2]).max(initial=0)) > SAFE_PAIR_SUM:
            risky.append(node.name or node.output[0])
    return risky
