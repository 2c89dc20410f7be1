"""int8 vs fp32 on the bundled demo model: ``python benchmarks/int8_agreement.py --out DIR``.

Exports the bundled model with ``--int8``, then on its unseen classes reports
the overlap of each query's top 10 (int8 vs fp32, per ranking) and the change
of mAP@all / mAP@200 / P@10, with the CPU and the quantisation settings. Writes ``DIR/int8_demo.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from zse_infer.demo.assets import load_demo_assets
    from zse_infer.demo.cli import _eval_set
    from zse_infer.evaluation.protocol import evaluate
    from zse_infer.exporting import ExportOptions, export_model
    from zse_infer.runtime.retriever import Retriever
    from zse_infer.runtime.runners.cpu_features import cpu_features, describe

    assets = load_demo_assets()
    eval_set = _eval_set(assets)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export"
        export_model(assets.checkpoint, export, config=assets.config, options=ExportOptions(int8=True, engines="never"))
        retrievers = {p: Retriever.load(export, precision=p) for p in ("fp32", "int8")}
        if retrievers["int8"].runners.precision != "int8":  # the runtime's check fell back (logged why)
            sys.exit("int8 graphs failed the runtime check on this CPU; nothing to compare")
        graph = retrievers["int8"].runners.encoder.graph
        result["int8"] = {
            "cpu": describe(cpu_features()),
            "quantization": graph.extra["quantization"],
            "encoder_parity": dict(graph.parity),
        }
        for ranking, rerank in (("sa", 0), ("two-stage", 20), ("rn", "all")):
            metrics = {}
            for p, r in retrievers.items():
                report = evaluate(
                    r,
                    eval_set,
                    ranking=ranking,
                    rerank=rerank if rerank != "all" else 0,
                    ks=(10,),
                    index=len(r) == 0,
                    progress=False,
                )
                metrics[p] = {k: report["metrics"][k] for k in ("map_all", "map_200", "precision_10")}
            tops = {
                p: [
                    [h.id for h in hits]
                    for hits in r.search_batch([str(q) for q in eval_set.sketch_paths], k=10, rerank=rerank)
                ]
                for p, r in retrievers.items()
            }
            overlap = sum(len(set(a) & set(b)) / 10 for a, b in zip(tops["fp32"], tops["int8"], strict=False)) / len(
                tops["fp32"]
            )
            result[ranking] = {
                "metrics": metrics,
                "top10_overlap": round(overlap, 4),
                "delta_map_all": round(metrics["int8"]["map_all"] - metrics["fp32"]["map_all"], 4),
            }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_demo.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
