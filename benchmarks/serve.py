"""``zse serve`` under load: ``python benchmarks/serve.py --export DIR [--gallery DIR] [--out benchmarks/results]``.

Starts the server twice as subprocesses on localhost (dynamic batching on:
``--max-batch 16``; off: ``--max-batch 1``) plus, for the overload check, a
third with a short queue, then drives each with 1, 4, 16 and 64 concurrent
clients (asyncio + httpx, each client posting the bundled query sketches back
to back) for ``--seconds`` per phase, alternating on/off phases so drift on a
shared machine hits both alike. Reports requests/s, p50/p95/p99 latency, the
server's mean batch size (from /metrics) and error counts. A 503 is the
server shedding load: the client waits Retry-After and goes on; it is counted
apart from errors (timeouts, other statuses, broken connections).

Writes ``serve.json``, ``serve.md`` and ``serve.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import _cpu_model as cpu_name  # noqa: E402 - the query-latency benchmark's CPU probe

# batching on = zse serve's defaults (batches of what queued while the model was busy)
MODES = {
    "batching_on": ["--max-batch", "16", "--max-delay-ms", "5"],
    "batching_off": ["--max-batch", "1", "--max-delay-ms", "0"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(export: Path, gallery: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "zse_infer.cli.main",
        "serve",
        str(export),
        "--gallery",
        str(gallery),
        "--port",
        str(port),
        *extra,
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("server not ready after 120 s")


def batch_stats(base: str) -> tuple[float, float]:
    import httpx

    text = httpx.get(base + "/metrics", timeout=10).text
    total = float(re.search(r"^zse_batch_size_sum (\S+)", text, re.M).group(1))
    count = float(re.search(r"^zse_batch_size_count (\S+)", text, re.M).group(1))
    return total, count


async def load(base: str, sketches: list[bytes], clients: int, seconds: float, params: dict) -> dict:
    import httpx

    latencies, statuses = [], {}
    errors = {"timeout": 0, "transport": 0, "status": 0}
    shed = 0
    stop_at = time.perf_counter() + seconds

    async def client(i: int, http: httpx.AsyncClient):
        nonlocal shed
        n = i
        while time.perf_counter() < stop_at:
            data = sketches[n % len(sketches)]
            n += clients
            t0 = time.perf_counter()
            try:
                r = await http.post(base + "/v1/search", params=params, files={"sketch": ("q.png", data, "image/png")})
            except httpx.TimeoutException:
                errors["timeout"] += 1
                continue
            except httpx.TransportError:
                errors["transport"] += 1
                continue
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t0)
            elif r.status_code == 503:
                shed += 1
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
            else:
                errors["status"] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        elapsed = time.perf_counter() - t0
    lat = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "ok": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "shed_503": shed,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def phase(base: str, sketches, clients: int, seconds: float, params: dict) -> dict:
    asyncio.run(load(base, sketches, clients, min(2.0, seconds / 4), params))  # warm the connections and the server
    before = batch_stats(base)
    result = asyncio.run(load(base, sketches, clients, seconds, params))
    after = batch_stats(base)
    batches = after[1] - before[1]
    result["mean_batch"] = round((after[0] - before[0]) / batches, 2) if batches else None
    return result


def encoder_ceiling(export: Path, sketches: list[bytes], seconds: float = 3.0, threads: int | None = None) -> dict:
    """In-process encoder throughput (images/s) at batch 1 and at batch 16, alternated twice: the most
    dynamic batching can gain on this machine, since it batches only the encoder call."""
    from zse_infer.preprocess import _decode_sketch
    from zse_infer.runtime.retriever import Retriever

    r = Retriever.load(export, threads=threads)
    images = [_decode_sketch(d, "query") for d in sketches[:16]]
    r.encode(images, "sketch")
    rates: dict[int, list[float]] = {1: [], 16: []}
    for _ in range(2):
        for b in (1, 16):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                r.encode(images[:b], "sketch")
                n += b
            rates[b].append(n / (time.perf_counter() - t0))
    r.close()
    best = {b: round(max(v), 1) for b, v in rates.items()}
    return {
        "threads": threads or "default",
        "images_per_s_batch1": best[1],
        "images_per_s_batch16": best[16],
        "ratio": round(best[16] / best[1], 2),
    }


def write_outputs(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# zse serve under load",
        "",
        f"{report['machine']}. {report['note']}",
        "",
        f"Model: {report['model']}, gallery {report['gallery_size']} photos, rerank={report['rerank']}, {report['seconds']} s per phase.",
        "",
        "| clients | batching | requests/s | p50 ms | p95 ms | p99 ms | mean batch | 503 (shed) | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['clients']} | {row['mode']} | {row['requests_per_s']} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | "
            f"{row['mean_batch']} | {row['shed_503']} | {row['errors']} |"
        )
    lines += [
        "",
        "Speed-up of batching (requests/s on / off): "
        + ", ".join(f"{c} clients {v}x" for c, v in report["speedup"].items()),
        "",
    ]
    at16 = report["speedup"].get(16, report["speedup"].get("16"))
    if at16 is not None:
        lines += [
            f"Target, 16 clients: batching on >= 1.5x the requests/s of batching off: {'met' if at16 >= 1.5 else 'NOT met'} "
            f"({at16}x). Batching batches only the encoder call, and on this CPU the encoder is compute-bound: a batch "
            "of 16 gains little per image over single calls (the encoder-alone lines below: the ceiling of any "
            "server-side batching here). The batcher waits for company only while the last batch had some, so a "
            "lone client pays no delay: batching is on (--max-batch 16) on every device.",
            "",
        ]
    for e in report["encoder_ceiling"]:
        lines += [
            f"Encoder alone, in process, threads={e['threads']} (the ceiling of what batching can gain here): "
            f"{e['images_per_s_batch1']} images/s at batch 1, {e['images_per_s_batch16']} at batch 16 ({e['ratio']}x).",
            "",
        ]
    if report.get("overload"):
        o = report["overload"]
        lines += [
            f"Overload check (64 clients, --max-queue {o['max_queue']}, batching on): {o['requests_per_s']} requests/s, "
            f"{o['shed_503']} answered 503 with Retry-After, {o['errors']} errors (timeouts {o['error_kinds']['timeout']}).",
            "",
        ]
    (out / "serve.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, style in (("batching_on", "o-"), ("batching_off", "s--")):
        rows = [r for r in report["rows"] if r["mode"] == mode]
        xs = [r["clients"] for r in rows]
        a.plot(xs, [r["requests_per_s"] for r in rows], style, label=mode.replace("_", " "))
        b.plot(xs, [r["p95_ms"] for r in rows], style, label=mode.replace("_", " "))
    for ax, title in ((a, "throughput (requests/s)"), (b, "p95 latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 4, 16, 64], ["1", "4", "16", "64"])
        ax.set_xlabel("concurrent clients")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    b.set_yscale("log")
    fig.suptitle(f"zse serve, {report['model']}, rerank={report['rerank']} ({report['machine_short']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "serve.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, required=True, help="export folder of the demo model")
    parser.add_argument(
        "--gallery", type=Path, default=None, help="gallery folder (indexed from the bundled demo gallery if missing)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--rerank", default="0", help="rerank depth of every search (0 = stage 1 only)")
    parser.add_argument("--overload-queue", type=int, default=8, help="--max-queue of the overload check (0 skips it)")
    parser.add_argument(
        "--replot", action="store_true", help="only rewrite serve.md and serve.png from --out/serve.json"
    )
    args = parser.parse_args()
    if args.replot:
        write_outputs(args.out, json.loads((args.out / "serve.json").read_text()))
        return

    from zse_infer.demo.assets import load_demo_assets
    from zse_infer.runtime.retriever import Retriever

    assets = load_demo_assets()
    gallery = args.gallery or Path("/tmp/zse_serve_bench_gallery")
    r = Retriever.load(args.export, gallery=gallery, create=True)
    if not len(r):
        r.index([str(g.path) for g in assets.gallery], progress=False)
    gallery_size, model = len(r), r.manifest.model.name
    r.close()
    sketches = [Path(q.path).read_bytes() for q in assets.queries]
    params = {"k": 10, "rerank": args.rerank}
    clients = [int(c) for c in args.clients.split(",")]

    ceiling = [encoder_ceiling(args.export, sketches), encoder_ceiling(args.export, sketches, threads=1)]
    print(json.dumps({"encoder_ceiling": ceiling}), flush=True)
    servers = {mode: start_server(args.export, gallery, flags) for mode, flags in MODES.items()}
    rows = []
    try:
        for n in clients:
            for mode in MODES:
                row = {"mode": mode, **phase(servers[mode][1], sketches, n, args.seconds, params)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    overload = None
    if args.overload_queue:
        proc, base = start_server(
            args.export, gallery, [*MODES["batching_on"], "--max-queue", str(args.overload_queue)]
        )
        try:
            overload = {"max_queue": args.overload_queue, **phase(base, sketches, 64, args.seconds, params)}
            print(json.dumps({"overload": overload}), flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    by = {(r["mode"], r["clients"]): r for r in rows}
    speedup = {
        n: round(by[("batching_on", n)]["requests_per_s"] / max(by[("batching_off", n)]["requests_per_s"], 1e-9), 2)
        for n in clients
    }
    load_avg = os.getloadavg()
    report = {
        "model": model,
        "gallery_size": gallery_size,
        "rerank": args.rerank,
        "seconds": args.seconds,
        "clients": clients,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, load average at the end {load_avg[0]:.1f}",
        "machine_short": f"{os.cpu_count()} shared CPU cores",
        "note": "The machine is shared with other jobs (timings vary 3x run to run): compare on/off within this run, as ratios. "
        "Clients, servers and everything else share the same cores.",
        "rows": rows,
        "speedup": speedup,
        "encoder_ceiling": ceiling,
        "overload": overload,
    }
    write_outputs(args.out, report)
    print(f"batching speed-up by clients: {speedup}; wrote {args.out / 'serve.json'}, serve.md, serve.png")


if __name__ == "__main__":
    main()
