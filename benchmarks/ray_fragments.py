"""Ray indexing: workers write Lance fragments (the driver commits metadata) against the old
path (tokens travel to the driver, which commits them), in one run (not in CI).

    python benchmarks/ray_fragments.py [--export DIR] [--n 2000] [--out benchmarks/results]

Model: the bundled demo model (exported here with torch unless ``--export`` names an export
folder). Photos: the demo gallery's PNGs copied to ``--n`` distinct files. Local Ray with 2 CPUs,
2 encoder actors (half a CPU each), commit chunks of 256 photos, a local gallery folder. Rows,
in the order run: driver commit, worker fragments, then both again (the machine is shared: the
spread between a row and its repeat is the noise).

Measured per row: photos/s (``Retriever.index`` wall time, actors' start-up included) and the
bytes the driver received from Ray per photo (the Arrow tables ``iter_batches`` handed it:
``RayOptions.timings["driver_bytes"]``). Every gallery is checked to equal the first, token for
token. Writes ``ray_fragments.json`` and ``ray_fragments.md`` to ``--out``.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from ray_index import columns, export_demo, photos  # noqa: E402  (the same model and photos as ray_index.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="An export folder (default: export the bundled demo model).")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    import ray

    from zse_infer import Retriever
    from zse_infer.distributed.ray_index import RayIndexExecutor, RayOptions

    work = Path(tempfile.mkdtemp(prefix="zse-ray-fragments-"))
    try:
        export = args.export or export_demo(work / "export")
        paths = photos(work / "photos", args.n)
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        rows = []
        for run, write in enumerate(("driver", "workers", "driver", "workers")):
            gallery = work / f"g{run}"
            r = Retriever.load(export, gallery=gallery, create=True)
            options = RayOptions(actors=2, cpus_per_actor=0.5, write=write)
            t0 = time.perf_counter()
            report = r.index(paths, progress=False, executor=RayIndexExecutor(options))
            seconds = time.perf_counter() - t0
            assert report.added == args.n and not report.failed, report
            rows.append(
                {
                    "write": write,
                    "photos": args.n,
                    "seconds": round(seconds, 2),
                    "photos_per_s": round(args.n / seconds, 1),
                    "driver_bytes_per_photo": round(options.timings["driver_bytes"] / args.n, 1),
                    "token_bytes_per_photo_fp32": r.manifest.model.num_tokens * r.manifest.model.width * 4,
                    "gallery": gallery,
                }
            )
        ray.shutdown()
        reference = columns(rows[0]["gallery"])
        for row in rows:
            row["same_gallery"] = columns(row.pop("gallery")).equals(reference)
        model = json.loads((Path(export) / "manifest.json").read_text()).get("model", {})
        result = {
            "benchmark": "Ray indexing: workers write fragments vs driver commits tokens (local Ray, 2 CPUs, 2 actors)",
            "model": model.get("name", Path(export).name),
            "photos": args.n,
            "ray_start_s": round(ray_start, 2),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "ray": ray.__version__,
            "rows": rows,
            "note": "timings on a shared 2-core machine: compare rows of this run; driver bytes do not depend on timing",
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_fragments.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Ray indexing, {args.n} demo photos (model {result['model']}): who writes the gallery",
        "",
        f"Local Ray, 2 CPUs, 2 encoder actors; Ray start-up (not in the rows): {result['ray_start_s']} s",
        "",
        "| write | seconds | photos/s | driver bytes/photo | token bytes/photo (fp32) | same gallery |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['write']} | {r['seconds']} | {r['photos_per_s']} | {r['driver_bytes_per_photo']} | {r['token_bytes_per_photo_fp32']} "
        f"| {r['same_gallery']} |"
        for r in rows
    ]
    lines += ["", result["note"] + "."]
    (args.out / "ray_fragments.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
