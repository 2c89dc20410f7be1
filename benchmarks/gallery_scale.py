"""Gallery scale benchmark (not in CI): ``python benchmarks/gallery_scale.py --n 1000000 --dir /tmp/scale``.

Synthetic clustered ret-tokens (unit vectors around ``--clusters`` random centres), codec
``none`` (no tokens: only ids, paths, fingerprints and ret-tokens are stored), written in
commits of ``--commit`` rows. Reports:

* write time (Lance appends) and the stage-1 index build time (IVF-Flat, once);
* open + first stage-1 query in a fresh process, once the index is built (target < 2 s);
* stage-1 query latency (median / p95 over single queries) and recall@100 against exact search;
* an incremental update (append ``--commit`` rows, delete 1,000) and the index update time;
* for comparison, the exact path: reading the ret column and one numpy query.

Prints one JSON object (paste the figures into docs-snippets/store.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

D = 128


def unit_centres(n: int, per_cluster: int, d: int, rng) -> np.ndarray:
    """(about n / per_cluster, d) random unit cluster centres."""
    centres = rng.normal(size=(max(1, n // per_cluster), d)).astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def clustered(n: int, centres: np.ndarray, rng, spread: float) -> np.ndarray:
    """(n, d) unit vectors around random ``centres`` (noise of norm about ``spread``): synthetic ret-tokens."""
    d = centres.shape[1]
    x = centres[rng.integers(0, len(centres), n)] + spread * rng.normal(size=(n, d)).astype(np.float32) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


OPEN_AND_QUERY = """
import sys, time, json
t0 = time.perf_counter()
import numpy as np
from zse_infer.runtime.gallery.store import Gallery
from zse_infer.runtime.gallery.stage1 import Stage1Cache
import lance, faiss  # imported lazily by the library; timed apart from opening
t_import = time.perf_counter() - t0
t1 = time.perf_counter()
g = Gallery.open(sys.argv[1])
index = Stage1Cache(g).index_for(g.snapshot)
q = np.load(sys.argv[2])[:1]
scores, rows = index.search(q, 100)
t_open_query = time.perf_counter() - t1
print(json.dumps({"imports_s": round(t_import, 3), "open_plus_first_query_s": round(t_open_query, 3), "kind": index.kind, "found": int(rows.shape[1])}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--commit", type=int, default=50_000)
    parser.add_argument("--per-cluster", type=int, default=100, help="photos per cluster (about; clusters = n / this)")
    parser.add_argument("--spread", type=float, default=0.6, help="noise norm around a unit cluster centre")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a dataset written by an earlier run (same --spread); rebuild the index",
    )
    args = parser.parse_args()

    from zse_infer.runtime.gallery import stage1
    from zse_infer.runtime.gallery.stage1 import Stage1Cache
    from zse_infer.runtime.gallery.stage1_index import RetIndex
    from zse_infer.runtime.gallery.store import Batch, Gallery

    stage1.APPROX_MIN = min(stage1.APPROX_MIN, args.n)
    rng = np.random.default_rng(0)
    centres = unit_centres(args.n, args.per_cluster, D, rng)
    out: dict = {"photos": args.n, "commit_rows": args.commit, "clusters": len(centres), "spread": args.spread}
    if args.reuse and Gallery.exists(args.dir):  # keep the written dataset, rebuild the index
        shutil.rmtree(args.dir / "stage1", ignore_errors=True)
        g = Gallery.open(args.dir)
        out["photos"] = len(g)
    else:
        shutil.rmtree(args.dir, ignore_errors=True)
        g = Gallery.create(args.dir, (197, D), {"name": "synthetic"}, codec="none")
    t = time.perf_counter()
    for start in range(0, args.n if not args.reuse or not len(g) else 0, args.commit):
        n = min(args.commit, args.n - start)
        ids = [f"/photos/{i:08d}.jpg" for i in range(start, start + n)]
        g.append(
            Batch(
                ids,
                ids,
                np.full(n, 1000, np.int64),
                np.full(n, 1, np.int64),
                clustered(n, centres, rng, args.spread),
                None,
            )
        )
    g.sync()
    out["write_s"] = round(time.perf_counter() - t, 1)
    out["dataset_mb"] = round(
        sum(p.stat().st_size for p in (args.dir / "photos.lance").rglob("*") if p.is_file()) / 2**20
    )

    t = time.perf_counter()
    index = Stage1Cache(g).index_for(g.snapshot)
    out["index_build_s"] = round(time.perf_counter() - t, 1)
    out["index"] = (
        {k: index.meta[k] for k in ("nlist", "nprobe", "recall_at_100")} if index.kind == "ivf" else index.kind
    )
    out["index_file_mb"] = round(sum(p.stat().st_size for p in (args.dir / "stage1").rglob("*") if p.is_file()) / 2**20)

    queries = clustered(args.queries, centres, rng, args.spread)
    qfile = args.dir / "queries.npy"
    np.save(qfile, queries)
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", OPEN_AND_QUERY, str(args.dir), str(qfile)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout
        )
        for _ in range(3)
    ]
    out["fresh_process"] = runs[-1]  # page cache warm, as on a serving host after the first start
    out["fresh_process_first"] = runs[0]

    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None], 100)
        times.append(time.perf_counter() - t)
    out["query_ms"] = {
        "median": round(float(np.median(times)) * 1000, 2),
        "p95": round(float(np.percentile(times, 95)) * 1000, 2),
    }

    t = time.perf_counter()
    vectors, rowids = g.snapshot.ret_matrix(), g.snapshot.row_ids()
    out["exact_read_ret_column_s"] = round(time.perf_counter() - t, 2)
    exact = RetIndex(vectors, kind="exact")
    t = time.perf_counter()
    truth = exact.search(queries, 100)[1]
    out["exact_query_ms"] = round((time.perf_counter() - t) / len(queries) * 1000, 2)
    got = index.search(queries, 100)[1]
    out["recall_at_100"] = round(
        float(
            np.mean([len(set(rowids[t].tolist()) & set(r.tolist())) / 100 for t, r in zip(truth, got, strict=False)])
        ),
        4,
    )
    del vectors, exact

    n = args.commit
    ids = [f"/photos/new-{time.time_ns()}-{i:08d}.jpg" for i in range(n)]
    g.append(
        Batch(
            ids, ids, np.full(n, 1000, np.int64), np.full(n, 1, np.int64), clustered(n, centres, rng, args.spread), None
        )
    )
    g.delete([f"/photos/{i:08d}.jpg" for i in range(1000)])
    cache = Stage1Cache(g)
    t = time.perf_counter()
    updated = cache.index_for(g.snapshot)
    out["incremental_update_s"] = {
        "appended": n,
        "deleted": 1000,
        "seconds": round(time.perf_counter() - t, 2),
        "ntotal": int(updated.index.ntotal) if updated.kind == "ivf" else None,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
