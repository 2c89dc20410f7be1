"""The soak test of issue 18: a real ``zse serve`` process beside writers, a deleter and a
compactor in other processes, for 60 s (``ZSE_SOAK_SECONDS`` shortens it for a local try).

2 writer processes index distinct photos in commits of 3; 1 process deletes a committed photo
and compacts, in a loop; 8 client threads search over kept-alive HTTP connections, every 8th
request of each uploading a photo (``POST /v1/photos``) instead. Afterwards: every id that was
committed (a writer's ``index`` returned, an upload answered 200) and not deleted is in the
gallery; no response carries a storage-layer text; no 5xx but 503 with Retry-After (counted);
no connection was reset; no process failed. The figures are printed (``-s``) and, with
``ZSE_SOAK_REPORT=FILE``, written there as JSON.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("soak_worker.py")
CLIENTS = 8
TOKEN = "soak-token"
#: texts of the storage layer or of Python that a response must never carry
RAW = re.compile(r"Arrow|Lance|OSError|Traceback|Not found:|\.lance|Errno", re.IGNORECASE)
RESETS = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected, http.client.IncompleteRead)


class Tally:
    """What the client threads saw (appended under a lock)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.bad: list[str] = []  # raw texts, 5xx other than 503 + Retry-After, 503s without it
        self.resets = 0
        self.uploaded: list[str] = []
        self.upload_503 = 0

    def record(self, status: int, latency: float | None = None) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if latency is not None:
                self.latencies.append(latency)


def _png(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _multipart(data: bytes, photo_id: str) -> tuple[bytes, str]:
    boundary = "soak" + os.urandom(8).hex()
    parts = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="ids"\r\n\r\n{photo_id}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="p.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return parts, f"multipart/form-data; boundary={boundary}"


def _client(n: int, port: int, sketch: bytes, stop: threading.Event, tally: Tally) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    i = 0
    while not stop.is_set():
        i += 1
        upload = i % 8 == 0
        if upload:
            photo_id = f"http-{n}-{i}"
            body, ctype = _multipart(_png(10_000 * (n + 1) + i), photo_id)
            path = "/v1/photos"
        else:
            body, ctype, path = sketch, "image/png", "/v1/search?k=5"
        t0 = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers={**auth, "Content-Type": ctype})
            r = conn.getresponse()
            text = r.read().decode("utf-8", "replace")
        except RESETS:
            with tally.lock:
                tally.resets += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        latency = time.perf_counter() - t0
        tally.record(r.status, None if upload else latency)
        problem = None
        if RAW.search(text):
            problem = f"raw text in {path} {r.status}: {text[:300]}"
        elif r.status == 503 and not r.getheader("Retry-After"):
            problem = f"503 without Retry-After on {path}: {text[:300]}"
        elif (r.status >= 500 and r.status != 503) or (r.status != 200 and r.status != 503):
            problem = f"{r.status} on {path}: {text[:300]}"
        with tally.lock:
            if problem:
                tally.bad.append(problem)
            if upload and r.status == 200:
                tally.uploaded.append(photo_id)
            if upload and r.status == 503:
                tally.upload_503 += 1
        if (r.getheader("Connection") or "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()


def _wait_ready(port: int, proc: subprocess.Popen, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"zse serve exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)  # polling a starting process: no signal to wait on but its port
    raise RuntimeError(f"zse serve was not ready within {deadline_s:g} s")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_soak_writers_deleter_compactor_and_searching_clients(tiny_export, serve_gallery, sketches, tmp_path):
    from zse_infer.runtime.retriever import Retriever

    seconds = float(os.environ.get("ZSE_SOAK_SECONDS", "60"))
    gallery = tmp_path / "gallery"
    shutil.copytree(serve_gallery, gallery)
    stop_file = tmp_path / "STOP"
    port = free_port()
    # The workers import this checkout (as the other subprocess tests do), whatever is installed.
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    server_log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - the server writes to it until the finally below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zse_infer.cli.main",
            "serve",
            str(tiny_export),
            "--gallery",
            str(gallery),
            "--port",
            str(port),
            "--allow-writes",
            "--token",
            TOKEN,
            "--upload-dir",
            str(tmp_path / "uploads"),
            "--threads",
            "1",
        ],
        cwd=ROOT,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    workers: list[tuple[str, subprocess.Popen]] = []
    try:
        _wait_ready(port, server)
        writer_logs = [tmp_path / f"writer{w}.log" for w in range(2)]
        for w, log in enumerate(writer_logs):
            workers.append(
                (
                    f"writer{w}",
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(WORKER),
                            "writer",
                            str(tiny_export),
                            str(gallery),
                            str(log),
                            str(stop_file),
                            f"w{w}",
                            str(w),
                        ],
                        cwd=ROOT,
                        stderr=subprocess.PIPE,
                        text=True,
                        env=env,
                    ),
                )
            )
        deleter_log = tmp_path / "deleter.log"
        workers.append(
            (
                "deleter",
                subprocess.Popen(
                    [
                        sys.executable,
                        str(WORKER),
                        "deleter",
                        str(tiny_export),
                        str(gallery),
                        str(deleter_log),
                        str(stop_file),
                        *map(str, writer_logs),
                    ],
                    cwd=ROOT,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                ),
            )
        )

        tally, stop = Tally(), threading.Event()
        sketch = sketches[0].read_bytes()
        clients = [
            threading.Thread(target=_client, args=(n, port, sketch, stop, tally), daemon=True) for n in range(CLIENTS)
        ]
        t0 = time.monotonic()
        for c in clients:
            c.start()
        stop.wait(seconds)  # the soak's length itself, not a wait for something to happen
        stop.set()
        stop_file.touch()
        for c in clients:
            c.join(timeout=120)
        elapsed = time.monotonic() - t0
        failures = {}
        for name, proc in workers:
            _, err = proc.communicate(timeout=180)
            if proc.returncode != 0 or "Traceback" in err:
                failures[name] = f"exit {proc.returncode}: {err[-2000:]}"
    finally:
        stop_file.touch()
        for _, proc in workers:
            if proc.poll() is None:
                proc.kill()
        server.terminate()
        server.wait(timeout=30)
        server_log.close()
    server_text = (tmp_path / "server.log").read_text()

    committed = {i for log in writer_logs for line in _lines(log) for i in line.split()} | set(tally.uploaded)
    deleted = {line.split(" ", 1)[1] for line in _lines(deleter_log) if line.startswith("deleted ")}
    present = set(Retriever.load(tiny_export, gallery=gallery).gallery.ids)
    lost = sorted(committed - deleted - present)
    resurrected = sorted(deleted & present)
    lat = np.array(tally.latencies) * 1000
    figures = {
        "seconds": round(elapsed, 1),
        "requests": sum(tally.statuses.values()),
        "statuses": tally.statuses,
        "searches": len(tally.latencies),
        "search_p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "search_p95_ms": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
        "answered_503": tally.statuses.get(503, 0),
        "uploads_committed": len(tally.uploaded),
        "writer_commits": sum(len(_lines(log)) for log in writer_logs),
        "deletes": len(deleted),
        "compactions": _lines(deleter_log).count("compacted"),
        "resets": tally.resets,
        "lost": len(lost),
        "gallery_rows": len(present),
    }
    print("soak figures:", json.dumps(figures))
    if os.environ.get("ZSE_SOAK_REPORT"):
        Path(os.environ["ZSE_SOAK_REPORT"]).write_text(json.dumps(figures, indent=2))

    assert not failures, failures
    attempted = {line.split(" ", 1)[1] for line in _lines(deleter_log) if line.startswith("attempt ")}
    assert not lost, (
        f"{len(lost)} committed ids lost, e.g. {lost[:5]} "
        f"({len(set(lost) & attempted)} of them the deleter tried to delete)"
    )
    assert not resurrected, f"deleted ids back in the gallery: {resurrected[:5]}"
    assert tally.resets == 0, f"{tally.resets} connections reset"
    assert not tally.bad, tally.bad[:5]
    assert "Traceback" not in server_text, server_text[-3000:]
    assert figures["searches"] > 0 and figures["writer_commits"] > 0 and figures["compactions"] > 0, figures
