"""CPU backends interleaved: ``python benchmarks/cpu_backends.py --export-dir DIR --out DIR [--rounds 7]``.

On a shared machine the load changes between ``run.py``'s groups (each runs in
its own child, one after the other), so a ratio between two groups can be off
by 2x. Here every round runs each backend once, in turn, on the same inputs
(ViT-B/16 encoder at batch 8; relation head at rerank 100, compatibility graph
and restructured graphs), and the medians of the rounds are compared: ONNX
Runtime fp32 (plain and ORT-fused graphs), OpenVINO f32 and OpenVINO bf16.
Writes ``DIR/cpu_backends.json`` (times of every round, medians, ratios to ONNX
Runtime, the CPU flags and the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def contenders(export_dir: str) -> dict:
    """name -> (encode fn, relation fn) over the same inputs."""
    import numpy as np

    from zse_infer.manifest import Manifest
    from zse_infer.runtime.runners.onnxruntime_backend import OrtRunner
    from zse_infer.runtime.runners.openvino_backend import OpenVinoRunner
    from zse_infer.runtime.runners.select import RELATION_ROLES, relation_scores

    manifest = Manifest.load(export_dir, verify=False)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((8, 3, 224, 224)).astype(np.float32)
    sketch = rng.standard_normal((1, 197, 768)).astype(np.float32)
    photos = rng.standard_normal((100, 197, 768)).astype(np.float32)
    tiled = np.ascontiguousarray(np.broadcast_to(sketch, photos.shape))

    def plain(role):
        return manifest.select_graph(role, ("fp32",), ("plain",))

    def make(open_graph, variant="plain"):
        enc = open_graph(manifest.select_graph("encoder", ("fp32",), (variant,)))
        head = open_graph(manifest.select_graph("relation_head", ("fp32",), (variant,)))
        fast = {r: open_graph(plain(r)) for r in RELATION_ROLES}
        return {
            "encoder_b8": lambda: enc.run({"image": images}),
            "relation_head_r100": lambda: head.run({"sketch_tokens": tiled, "photo_tokens": photos}),
            "relation_fast_r100": lambda: relation_scores(fast, sketch, photos),
        }

    return {
        "onnxruntime fp32": make(lambda g: OrtRunner(g, export_dir)),
        "onnxruntime-fused fp32": make(lambda g: OrtRunner(g, export_dir), "ort_fused"),
        "openvino f32": make(lambda g: OpenVinoRunner(g, export_dir, "fp32", cache_dir=False)),
        "openvino bf16": make(lambda g: OpenVinoRunner(g, export_dir, "bf16", cache_dir=False)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--export-dir", type=Path, required=True, help="an export of the random ViT-B/16 (benchmarks/run.py makes one)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from zse_infer.runtime.runners.cpu_features import cpu_features

    runs = contenders(str(args.export_dir))
    load_start = os.getloadavg()
    times: dict[str, dict[str, list[float]]] = {name: {k: [] for k in fns} for name, fns in runs.items()}
    for fns in runs.values():  # warm-up
        for fn in fns.values():
            fn()
    for _ in range(args.rounds):
        for task in next(iter(runs.values())):
            for name, fns in runs.items():
                t0 = time.perf_counter()
                fns[task]()
                times[name][task].append(time.perf_counter() - t0)
    items = {"encoder_b8": 8, "relation_head_r100": 100, "relation_fast_r100": 100}
    medians = {name: {task: statistics.median(ts) for task, ts in tasks.items()} for name, tasks in times.items()}
    per_s = {name: {task: round(items[task] / m, 2) for task, m in tasks.items()} for name, tasks in medians.items()}
    base = per_s["onnxruntime fp32"]
    result = {
        "cpu": cpu_features(),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "rounds": args.rounds,
        "units": {"encoder_b8": "images/s", "relation_head_r100": "pairs/s", "relation_fast_r100": "pairs/s"},
        "per_second": per_s,
        "vs_onnxruntime_fp32": {
            name: {t: round(v / base[t], 2) for t, v in tasks.items()} for name, tasks in per_s.items()
        },
        "times_s": {name: {t: [round(x, 4) for x in ts] for t, ts in tasks.items()} for name, tasks in times.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_backends.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("per_second", "vs_onnxruntime_fp32", "load_average")}, indent=2))


if __name__ == "__main__":
    main()
