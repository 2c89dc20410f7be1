"""Gallery token codecs on the bundled demo model: ``python benchmarks/codec_agreement.py --out DIR``.

Exports the bundled model, indexes the bundled gallery (unseen concepts) once per codec and
reports, against the float16 gallery: bytes per photo, the top-10 overlap of the two-stage
ranking (rerank 20, the demo's setting when this was measured; its export now records 10) and of the exhaustive one, and the change of mAP@all.

Trained codecs (pca*-sq8) are trained on the gallery's first commit. To measure them on
photos they were not trained on, the first commit holds the photos of half the concepts
(every other concept) and the rest come after it. Writes ``DIR/codecs_demo.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CODECS = ("float16", "int8", "pq", "pca16-sq8", "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--export", type=Path, help="an existing export of the demo model (default: export it)")
    parser.add_argument("--codecs", nargs="+", default=list(CODECS))
    parser.add_argument(
        "--exhaustive", action="store_true", help="also the exhaustive ranking (slow: every pair per codec)"
    )
    args = parser.parse_args()

    from zse_infer.demo.assets import load_demo_assets
    from zse_infer.demo.cli import _eval_set
    from zse_infer.evaluation.protocol import evaluate
    from zse_infer.exporting import ExportOptions, export_model
    from zse_infer.runtime.retriever import Retriever

    assets = load_demo_assets()
    eval_set = _eval_set(assets)
    photos = [str(p) for p in eval_set.photo_paths]
    first = [p for p, label in zip(photos, eval_set.photo_labels, strict=False) if label % 2 == 0]
    rest = [p for p in photos if p not in set(first)]
    sketches = [str(q) for q in eval_set.sketch_paths]
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        export = args.export
        if export is None:
            export = Path(tmp) / "export"
            export_model(assets.checkpoint, export, config=assets.config, options=ExportOptions(engines="never"))
        tops = {}
        for codec in args.codecs:
            r = Retriever.load(export, gallery=Path(tmp) / codec, create=True, codec=codec, backend="onnxruntime-cpu")
            r.index(first, ids=first, progress=False)  # the first commit: trains pca codecs
            r.index(rest, ids=rest, progress=False)
            row = {"codec": r.gallery.codec.name, "bytes_per_photo": r.gallery.codec.nbytes}
            # Exhaustive with codec "none" would re-encode the whole gallery for every query: not measured.
            rankings = (
                (("two-stage", 20, 20), ("rn", 0, "all"))
                if r.gallery.codec.stores_tokens and args.exhaustive
                else (("two-stage", 20, 20),)
            )
            for ranking, rerank, search_rerank in rankings:
                report = evaluate(r, eval_set, ranking=ranking, rerank=rerank, index=False, progress=False)
                tops[(codec, ranking)] = [
                    [h.id for h in hits] for hits in r.search_batch(sketches, k=10, rerank=search_rerank)
                ]
                ref = tops[("float16", ranking)]
                overlap = sum(
                    len(set(a) & set(b)) / 10 for a, b in zip(ref, tops[(codec, ranking)], strict=False)
                ) / len(ref)
                row[ranking] = {"map_all": round(report["metrics"]["map_all"], 4), "top10_overlap": round(overlap, 4)}
            result[codec] = row
            print(json.dumps({codec: row}), flush=True)
        base = result["float16"]
        for row in result.values():
            row["x_smaller"] = (
                round(base["bytes_per_photo"] / row["bytes_per_photo"], 1) if row["bytes_per_photo"] else None
            )
            for ranking in [x for x in ("two-stage", "rn") if x in row]:
                row[ranking]["delta_map_all"] = round(row[ranking]["map_all"] - base[ranking]["map_all"], 4)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "codecs_demo.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        "| codec | bytes/photo | x smaller | two-stage top-10 overlap | two-stage dmAP@all | exhaustive overlap | exhaustive dmAP@all |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in result.values():
        ts, rn = row["two-stage"], row.get("rn")
        rn_text = f"{rn['top10_overlap']:.3f} | {rn['delta_map_all']:+.4f}" if rn else "- | -"
        print(
            f"| {row['codec']} | {row['bytes_per_photo']:,} | {row['x_smaller'] or '-'} | {ts['top10_overlap']:.3f} | {ts['delta_map_all']:+.4f} | {rn_text} |"
        )


if __name__ == "__main__":
    main()
