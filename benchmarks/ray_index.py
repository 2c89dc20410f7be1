"""Indexing throughput on Ray (2 CPUs) against single-process indexing, in one run (not in CI).

    python benchmarks/ray_index.py [--export DIR] [--n 480] [--out benchmarks/results]

Model: the bundled demo model (exported here with torch unless ``--export`` names an export
folder). Photos: the bundled demo gallery's PNGs, copied to ``--n`` distinct files. Rows:

* single process: ``Retriever.index`` (ONNX Runtime on both cores);
* Ray, 1 encoder actor (1 CPU, 1 thread) + decode tasks on the other CPU;
* Ray, 2 encoder actors (half a CPU, 1 thread each) + decode tasks;
* single process again (the machine is shared: the spread of the two single-process rows is the noise).

Ray's start-up (``ray.init(num_cpus=2)``) is timed separately and not in the Ray rows; each Ray
row does include its actors' start-up (opening the export once per actor), as a job would.
Every Ray gallery is checked to equal the single-process one, token for token.
Writes ``ray_index.json`` and ``ray_index.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def export_demo(out: Path) -> Path:
    from zse_infer.demo.assets import load_demo_assets
    from zse_infer.exporting import ExportOptions, export_model

    assets = load_demo_assets()
    export_model(assets.checkpoint, out, config=assets.config, options=ExportOptions(overwrite=True, engines="never"))
    return out


def photos(folder: Path, n: int) -> list[str]:
    src = sorted((ROOT / "zse_infer" / "assets" / "demo" / "gallery").glob("*.png"))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        target = folder / f"{i:05d}_{src[i % len(src)].name}"
        shutil.copyfile(src[i % len(src)], target)
        out.append(str(target))
    return out


def columns(gallery: Path):
    import lance

    return lance.dataset(str(gallery / "photos.lance")).to_table(columns=["id", "ret", "tokens"]).sort_by("id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="An export folder (default: export the bundled demo model).")
    parser.add_argument("--n", type=int, default=480)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    import ray

    from zse_infer import Retriever
    from zse_infer.distributed.ray_index import RayIndexExecutor, RayOptions

    work = Path(tempfile.mkdtemp(prefix="zse-ray-bench-"))
    try:
        export = args.export or export_demo(work / "export")
        paths = photos(work / "photos", args.n)
        rows = []

        def run(name: str, index) -> None:
            gallery = work / name.replace(" ", "_").replace(",", "")
            r = Retriever.load(export, gallery=gallery, create=True)
            t0 = time.perf_counter()
            report = index(r)
            seconds = time.perf_counter() - t0
            assert report.added == args.n and not report.failed, report
            rows.append(
                {
                    "run": name,
                    "photos": args.n,
                    "seconds": round(seconds, 2),
                    "photos_per_s": round(args.n / seconds, 1),
                    "gallery": gallery,
                }
            )

        run("single process", lambda r: r.index(paths, progress=False))
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        run(
            "ray, 1 actor",
            lambda r: r.index(paths, progress=False, executor=RayIndexExecutor(RayOptions(actors=1, cpus_per_actor=1))),
        )
        run(
            "ray, 2 actors",
            lambda r: r.index(
                paths, progress=False, executor=RayIndexExecutor(RayOptions(actors=2, cpus_per_actor=0.5))
            ),
        )
        ray.shutdown()
        run("single process, again", lambda r: r.index(paths, progress=False))  # the machine is shared: how noisy?

        reference = columns(rows[0]["gallery"])
        for row in rows:
            row["same_gallery_as_single"] = columns(row.pop("gallery")).equals(reference)
            row["vs_single"] = round(row["photos_per_s"] / rows[0]["photos_per_s"], 2)
        result = {
            "benchmark": "indexing throughput, Ray (2 CPUs) vs single process",
            "model": json.loads((Path(export) / "manifest.json").read_text())
            .get("model", {})
            .get("name", Path(export).name),
            "photos": args.n,
            "ray_start_s": round(ray_start, 2),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "ray": ray.__version__,
            "rows": rows,
            "note": "timings on a shared 2-core machine: compare the ratios within this run",
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_index.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Indexing on Ray (2 CPUs) vs one process: {args.n} demo photos, model {result['model']}",
        "",
        f"Ray start-up (`ray.init(num_cpus=2)`, not in the rows below): {result['ray_start_s']} s",
        "",
        "| run | seconds | photos/s | vs single | same gallery |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['run']} | {r['seconds']} | {r['photos_per_s']} | {r['vs_single']}x | {r['same_gallery_as_single']} |"
        for r in rows
    ]
    lines += ["", result["note"] + "."]
    (args.out / "ray_index.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
