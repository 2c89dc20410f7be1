"""int8 graphs for ONNX Runtime on CPUs: dynamic quantisation of the matrix products, per channel.

Weights of every MatMul/Gemm become int8 with one scale per output channel;
activations are quantised on the fly per tensor (``DynamicQuantizeLinear`` +
``MatMulInteger``), so no calibration set is needed. Norms, softmax, GELU and
the cosine kernel stay float32. Opt-in (``zse-export --int8``): measured on
the ViT-B/16 encoder at about 1.6x the fp32 ONNX Runtime graph on 2 CPU cores,
with the ret-token's cosine to fp32 >= 0.999.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ExportError, require

_log = logging.getLogger(__name__)

#: used when a recipe names no int8 tolerances: looser than fp16 (int8 is lossy by design)
DEFAULT_INT8_TOLERANCES = {"tokens": 0.25, "score": 0.01}


def quantize_int8(source: Path, target: Path) -> None:
    require("onnxruntime", "runtime", "int8 quantisation")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        quantize_dynamic(
            str(source), str(target), per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
        )
    except Exception as exc:  # the quantiser raises assorted types (ValueError, onnx errors, ...)
        raise ExportError(f"{source.name}: int8 quantisation failed ({type(exc).__name__}: {exc})") from exc


def ret_token_cosine(reference: np.ndarray, tokens: np.ndarray) -> float:
    """Smallest cosine between reference and int8 token 0s (what stage-1 search ranks by)."""
    a, b = reference[:, 0].astype(np.float64), tokens[:, 0].astype(np.float64)
    return float(((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).min())
