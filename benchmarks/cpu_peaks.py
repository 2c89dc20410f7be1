"""How close each backend gets to this machine's matrix-product peaks (fp32 and bf16).

Peaks: the best of ``repeats`` square matrix products (n = 2048) on all cores,
fp32 with numpy (its BLAS) and with torch, bf16 with torch (oneDNN: AMX or
AVX512-BF16 where the CPU has them, else converted to fp32 and much slower).
Work per item: torch's ``FlopCounterMode`` over the model's own modules (the
random-weights ViT-B/16 the benchmark exports): the encoder per image, the
compatibility relation head per pair, and the restructured head's parts
(photo side per photo, pair graph per pair). FLOPs count 2 per multiply-add
(ViT-B/16's "17.6 GFLOPs" is multiply-adds: 35.2 GFLOP here). A backend's
achieved GFLOP/s = items/s x GFLOP per item; its fraction of a peak says how
much of the machine it uses (attention, softmax, norms and GELU are not
matrix products, so 100% is out of reach).
"""

from __future__ import annotations

import time
from typing import Any

#: GFLOP per item of each benchmark row's backend family (see :func:`row_work`)
FAST = ("torch-fast", "onnxruntime-fast", "openvino-fast")


def matmul_peaks(n: int = 2048, repeats: int = 7) -> dict[str, Any]:
    """{"fp32_numpy", "fp32_torch", "bf16_torch"} best GFLOP/s, plus the settings."""
    import numpy as np
    import torch

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 2 * n**3 / min(times) / 1e9

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), np.float32) for _ in range(2))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ha, hb = ta.bfloat16(), tb.bfloat16()
    with torch.inference_mode():
        peaks = {
            "fp32_numpy": best(lambda: a @ b),
            "fp32_torch": best(lambda: ta @ tb),
            "bf16_torch": best(lambda: ha @ hb),
        }
    peaks = {k: round(v, 1) for k, v in peaks.items()}
    peaks.update(
        fp32=max(peaks["fp32_numpy"], peaks["fp32_torch"]),
        bf16=peaks["bf16_torch"],
        n=n,
        repeats=repeats,
        threads=torch.get_num_threads(),
        how="best of the repeats, 2 FLOP per multiply-add",
    )
    return peaks


def graph_work(checkpoint: str) -> dict[str, float]:
    """GFLOP per item: encoder (image), relation_head (pair), relation_photo (photo), relation_pair (pair)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from zse_infer.model import load_model
    from zse_infer.model.fast_relation import FastRelationHead

    model = load_model(checkpoint).eval()
    fast = FastRelationHead(model.relation_head).eval()
    n, d = model.config.num_tokens, model.config.width
    size = model.config.encoder.image_size
    tokens = torch.randn(4, n, d)

    def gflop(fn, items: int) -> float:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            fn()
        return round(counter.get_total_flops() / items / 1e9, 3)

    photos = fast.prepare_photos(tokens)
    sketch = fast.prepare_sketch(tokens[:1])
    return {
        "encoder": gflop(lambda: model.encode(torch.randn(2, 3, size, size)), 2),
        "relation_head": gflop(lambda: model.relation_head(tokens, tokens), 4),
        "relation_photo": gflop(lambda: fast.prepare_photos(tokens), 4),
        "relation_pair": gflop(lambda: fast.score_prepared(sketch, photos), 4),
    }


def row_work(record: dict, work: dict[str, float]) -> float | None:
    """GFLOP per item of one benchmark row (None for rows that are not model throughput)."""
    backend = str(record.get("backend", ""))
    if record.get("component") == "encoder":
        return work["encoder"]
    if record.get("component") != "relation_head":
        return None
    if backend.startswith(FAST):
        return work["relation_pair"] + (0.0 if backend.endswith("cached") else work["relation_photo"])
    return work["relation_head"]


def add_peak_fractions(records: list[dict], peaks: dict[str, Any], work: dict[str, float]) -> None:
    """``gflops`` and ``of_fp32_peak`` / ``of_bf16_peak`` (fractions) on every model-throughput row."""
    for r in records:
        per_item = row_work(r, work) if "value" in r else None
        if per_item is None:
            continue
        achieved = r["value"] * per_item
        r["gflops"] = round(achieved, 1)
        r["of_fp32_peak"] = round(achieved / peaks["fp32"], 3)
        r["of_bf16_peak"] = round(achieved / peaks["bf16"], 3)
