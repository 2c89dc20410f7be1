"""What one client may cost everyone else (issue 18, items 13 and 14): rerank depth, work for
requests that already timed out, slow and many connections. Real sockets to 127.0.0.1 only,
bounded in number and time; every wait is on a signal (a response, a closed socket, a gate)
with a deadline, never a sleep."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import running_server
from .faults import Faulty
from .test_errors import _error, _search

DEADLINE_S = 30


# ---------------------------------------------------------------------- item 13: rerank depth
def test_rerank_deeper_than_max_rerank_is_422(server, sketches):
    good = sketches[0].read_bytes()
    for value in ("1001", "999999999"):
        err = _error(_search(server, good, params={"rerank": value}), 422, "invalid_request")
        assert "--max-rerank" in err["message"] and "1000" in err["message"], err
    assert _search(server, good, params={"rerank": "1000"}).status_code == 200  # at the limit (9 photos: all of them)
    assert httpx.get(server + "/readyz").json()["detail"]["max_rerank"] == 1000


def test_rerank_all_only_in_galleries_within_max_rerank(tiny_export, serve_gallery, sketches):
    from zse_infer.runtime.retriever import Retriever

    good = sketches[0].read_bytes()
    with running_server(Retriever.load(tiny_export, gallery=serve_gallery), max_rerank=4) as (base, _app):
        err = _error(_search(base, good, params={"rerank": "all"}), 422, "invalid_request")
        assert "'all' for a gallery of 9 photos" in err["message"] and "4" in err["message"], err
        _error(_search(base, good, params={"rerank": "5"}), 422)
        r = _search(base, good, params={"rerank": "4", "k": 9})
        assert r.status_code == 200 and [h["stage"] for h in r.json()["hits"]] == [2] * 4 + [1] * 5
        default = _search(base, good).json()["rerank"]  # the export's default, held to the limit
        assert default <= 4


# ---------------------------------------------------------------------- item 13: work for a request that timed out
def _drain(app) -> None:
    """Wait until the model thread has finished everything submitted so far."""
    app.state.zse.model_thread.submit(lambda: None).result(timeout=DEADLINE_S)


@pytest.fixture
def faulty_server(tiny_export, serve_gallery, tmp_path):
    """A server over a Faulty retriever: 1 s timeout, batches of one; yields (base, app, faulty)."""
    import shutil

    from zse_infer.runtime.retriever import Retriever

    gallery = tmp_path / "gallery"
    shutil.copytree(serve_gallery, gallery)
    faulty = Faulty(Retriever.load(tiny_export, gallery=gallery))
    with running_server(
        faulty,
        timeout_s=1.0,
        max_batch=1,
        max_delay_ms=0,
        refresh_s=0,
        allow_writes=True,
        upload_dir=tmp_path / "uploads",
    ) as (base, app):
        faulty.calls.clear()
        yield base, app, faulty


def test_a_search_that_timed_out_is_not_finished(faulty_server, sketches):
    """The batch is already running (in the encoder) when the request times out: its stages are
    skipped. (Before: the model thread ran stage 1 and stage 2 for a client that had gone.)"""
    base, app, faulty = faulty_server
    faulty.gates["encode"] = gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_search, base, sketches[0].read_bytes(), params={"rerank": "all"})
        assert faulty.entered_event("encode").wait(DEADLINE_S)
        _error(pending.result(timeout=DEADLINE_S), 504, "timeout")
    gate.set()
    _drain(app)
    assert faulty.calls["encode"] == 1 and faulty.calls["search_tokens"] == 0
    del faulty.gates["encode"]
    assert _search(base, sketches[0].read_bytes()).status_code == 200  # and the server goes on


def test_indexing_that_timed_out_stops_between_commits(faulty_server, monkeypatch):
    """POST /v1/photos indexes in commits; once the request timed out (504), the next commit is not started."""
    from PIL import Image

    import zse_infer.serve.app as app_module

    from .bad_images import _ink, _png

    base, app, faulty = faulty_server
    monkeypatch.setattr(app_module, "COMMIT_SIZE", 1)
    faulty.gates["index"] = gate = threading.Event()
    photos = [("photos", (f"p{i}.png", _png(Image.fromarray(_ink((64 + i, 64)))), "image/png")) for i in range(2)]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, base + "/v1/photos", files=photos, timeout=DEADLINE_S)
        assert faulty.entered_event("index").wait(DEADLINE_S)
        _error(pending.result(timeout=DEADLINE_S), 504, "timeout")
    gate.set()
    _drain(app)
    assert faulty.calls["index"] == 1  # the second commit was never started
    assert httpx.get(base + "/readyz").json()["detail"]["gallery_size"] == 10  # the first one stays


# ---------------------------------------------------------------------- item 14: slow and many clients
@pytest.fixture(scope="module")
def small_server(tiny_export, serve_gallery):
    """At most 8 connections; headers within 1.5 s, bodies within 1.5 s, headers of at most 4 kB,
    responses taken within 1 s. Yields (base, host, port, app)."""
    from zse_infer.runtime.retriever import Retriever

    with running_server(
        Retriever.load(tiny_export, gallery=serve_gallery),
        max_connections=8,
        header_timeout_s=1.5,
        body_timeout_s=1.5,
        max_header_bytes=4096,
        send_timeout_s=1.0,
    ) as (base, app):
        host, port = base.split("//", 1)[1].split(":")
        yield base, host, int(port), app


def _connect(host: str, port: int, first: bytes = b"") -> socket.socket:
    s = socket.create_connection((host, port), timeout=DEADLINE_S)
    if first:
        s.sendall(first)
    return s


def _read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket timeout)."""
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def _raw_healthz(host: str, port: int) -> bytes:
    with _connect(host, port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n") as s:
        return _read_all(s)


def test_slow_clients_up_to_the_limit_do_not_block_healthz(small_server):
    """Issue 18, item 14: clients that trickle their headers (or send nothing) held connections
    forever and, enough of them, made /healthz unreachable."""
    _base, host, port, _app = small_server
    slow = [_connect(host, port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(6)]
    slow.append(_connect(host, port))  # connects and sends nothing
    try:
        assert _raw_healthz(host, port).startswith(b"HTTP/1.1 200")  # 7 slow + this one: within the limit of 8
        slow.append(_connect(host, port, b"POST /v1/search HTTP/1.1\r\n"))  # the 8th: the limit
        refused = _raw_healthz(host, port)  # a 9th connection is answered at once, not queued behind them
        assert refused.startswith(b"HTTP/1.1 503") and b"overloaded" in refused and b"retry-after: 1" in refused.lower()
        for s in slow:  # each one is cut off after the header deadline, with a 408
            assert _read_all(s).startswith(b"HTTP/1.1 408"), "a slow client kept its connection"
    finally:
        for s in slow:
            s.close()
    assert _raw_healthz(host, port).startswith(b"HTTP/1.1 200")


def test_kept_alive_connections_must_send_their_next_request_in_time(small_server):
    _base, host, port, _app = small_server
    with _connect(host, port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /healthz HTTP/1.1\r\n") as s:
        answer = _read_all(s)
    assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1 408") == 1


def test_oversized_headers_are_431(small_server):
    _base, host, port, _app = small_server
    with _connect(host, port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: " + b"a" * 8000) as s:
        assert _read_all(s).startswith(b"HTTP/1.1 431")


def test_a_body_that_trickles_is_408(small_server, sketches):
    _base, host, port, _app = small_server
    data = sketches[0].read_bytes()
    head = (
        f"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    with _connect(host, port, head + data[:10]) as s:
        answer = _read_all(s)
    assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer and b"request body" in answer


def test_a_client_that_stops_reading_is_disconnected(small_server):
    """A client that never reads its response (a slow reader) does not hold its connection:
    after send_timeout_s with the server's send buffer full, the server drops it."""
    _base, host, port, app = small_server
    uvicorn_server = app.state.test_server
    before = len(uvicorn_server.server_state.connections)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(DEADLINE_S)
    s.connect((host, port))
    try:
        # /openapi.json is ~10 kB: ask for it again and again without reading, until the server's
        # buffer is full and it stops writing
        s.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 400)
        deadline = time.monotonic() + DEADLINE_S
        while len(uvicorn_server.server_state.connections) > before and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a real signal (the server's own connection set), bounded
        assert len(uvicorn_server.server_state.connections) == before, "the non-reading client kept its connection"
    finally:
        s.close()


@pytest.mark.parametrize(
    "soft, hard, raised, served",
    [
        (1024, 1_048_576, 2 * 512 + 128, 512),  # the usual: the soft limit is raised, every connection is served
        (256, 256, None, (256 - 128) // 2),  # a hard limit too low: fewer connections rather than running out
    ],
)
def test_the_descriptor_limit_is_fitted_to_the_connections(monkeypatch, soft, hard, raised, served):
    """uvicorn accepts until the process has no descriptor left, and then nothing answers: the
    server raises its soft limit where it may, and serves fewer connections where it may not."""
    import resource

    from zse_infer.serve import ServeSettings
    from zse_infer.serve.server import fit_to_fd_limit

    limits = {"now": (soft, hard)}

    def setrlimit(kind, value):
        if value[0] > hard:
            raise ValueError("not allowed")
        limits["now"] = value

    monkeypatch.setattr(resource, "getrlimit", lambda kind: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    fitted = fit_to_fd_limit(ServeSettings())
    assert fitted.max_connections == served
    assert limits["now"][0] == (raised or soft)
