"""bf16 (OpenVINO) and int8 (ONNX Runtime) against fp32 on the bundled model's unseen concepts.

``python benchmarks/precision_agreement.py --out DIR [--export-dir DIR]``

Exports the bundled demo model with ``--int8`` (or reuses ``--export-dir``),
then measures, with the one implementation the export itself uses
(:func:`zse_infer.exporting.agreement.ranking_agreement`), each lower
precision's agreement with ONNX Runtime fp32 on *all* the bundled unseen-concept
queries and photos: ret-token cosine, relation-score error, two-stage top-10
overlap and mAP@all, at the model's recorded rerank depth and at 100. Also the
same for the export's random-weights ViT-B/16 when ``--full-export`` names one.
Writes ``DIR/precision_agreement.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def agreements(export: Path, queries: int | None, reranks: tuple[int, ...]) -> dict:
    from zse_infer.exporting.agreement import demo_ranking_set, ranking_agreement, runner_fns
    from zse_infer.manifest import Manifest
    from zse_infer.runtime.runners.cpu_features import cpu_features, describe
    from zse_infer.runtime.runners.select import open_runners

    manifest = Manifest.load(export)
    rankings = demo_ranking_set(manifest, queries=queries)
    fp32 = open_runners(export, manifest, backend="onnxruntime-cpu", precision="fp32")
    reference = runner_fns(fp32.encoder, fp32.relation_head)
    out = {"cpu": describe(cpu_features()), "model": manifest.model.name}
    candidates = {"bf16": dict(backend="openvino", precision="bf16")}
    if manifest.find_graphs("encoder") and any(g.precision == "int8" for g in manifest.graphs.values()):
        candidates["int8"] = dict(backend="onnxruntime-cpu", precision="int8")
    for name, how in candidates.items():
        runners = open_runners(export, manifest, **how)
        if runners.precision != name:  # the runtime's self-check fell back (logged why)
            out[name] = {"measured": False, "reason": f"the runtime ran {runners.backend} {runners.precision} instead"}
            continue
        fns = runner_fns(runners.encoder, runners.relation_head)
        out[name] = {f"rerank_{r}": ranking_agreement(reference, fns, rankings, rerank=r) for r in reranks}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--export-dir", type=Path, help="an export of the bundled model with --int8 (default: made here)"
    )
    parser.add_argument(
        "--full-export", type=Path, help="also measure this export (e.g. the random ViT-B/16 of benchmarks/run.py)"
    )
    parser.add_argument(
        "--full-queries", type=int, default=32, help="queries for --full-export (ViT-B/16 is slow on CPUs)"
    )
    args = parser.parse_args()

    from zse_infer.demo.assets import load_demo_assets
    from zse_infer.exporting import ExportOptions, export_model

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        export = args.export_dir
        if export is None:
            assets = load_demo_assets()
            export = Path(tmp) / "export"
            export_model(
                assets.checkpoint, export, config=assets.config, options=ExportOptions(int8=True, engines="never")
            )
        from zse_infer.manifest import Manifest

        depth = Manifest.load(export).default_rerank
        result["bundled"] = agreements(export, None, tuple(sorted({depth, 100})))
        if args.full_export:
            result["vit_b16_random"] = agreements(args.full_export, args.full_queries, (20, 100))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision_agreement.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
