"""A real server (uvicorn on a free 127.0.0.1 port, in a thread) around a tiny export and gallery."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'zse-infer[serve]'")
pytest.importorskip("uvicorn", reason="needs the serve extra: pip install 'zse-infer[serve]'")
httpx = pytest.importorskip("httpx", reason="tests/serve talk HTTP with httpx (dev extra)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(retriever, **settings):
    """Start the server as ``zse serve`` does (:func:`zse_infer.serve.server.build_server`, every
    limit in place) with ``ServeSettings(**settings)``; yield (base_url, app)."""
    from zse_infer.serve import ServeSettings
    from zse_infer.serve.server import build_server

    port = free_port()
    server, app = build_server(retriever, ServeSettings(**settings), "127.0.0.1", port, log_level="warning")
    app.state.test_server = server  # for tests that watch the server's own connection set
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    else:
        server.should_exit = True
        raise RuntimeError("server did not become ready in 60 s")
    try:
        yield base, app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def shapes(tmp_path_factory) -> Path:
    from tests.support.images import make_shape_dataset

    return make_shape_dataset(tmp_path_factory.mktemp("shapes"), sketches=2, photos=3, size=96)


@pytest.fixture(scope="session")
def serve_gallery(tiny_export, shapes, tmp_path_factory) -> Path:
    """A gallery of the shape photos (9 photos, ids = their absolute paths)."""
    from zse_infer.runtime.retriever import Retriever

    gallery = tmp_path_factory.mktemp("serve") / "gallery"
    r = Retriever.load(tiny_export, gallery=gallery, create=True)
    r.index(sorted(str(p) for p in (shapes / "photo").rglob("*.jpg")), progress=False)
    r.close()
    return gallery


@pytest.fixture(scope="session")
def sketches(shapes) -> list[Path]:
    return sorted((shapes / "sketch").rglob("*.png"))


@pytest.fixture(scope="session")
def reference(tiny_export, serve_gallery):
    """An in-process Retriever over the same gallery (its own instance: the server's is confined to its thread)."""
    from zse_infer.runtime.retriever import Retriever

    return Retriever.load(tiny_export, gallery=serve_gallery)


def public_id(hit, roots=()) -> str:
    """The id a server with these ``--photo-root`` folders shows for a library Hit (never its path)."""
    from zse_infer.serve.photos import PhotoRoots, PhotoTable

    return PhotoTable(PhotoRoots(roots)).public_id(hit.id, hit.path)


@pytest.fixture(scope="session")
def stored(reference, sketches) -> list[tuple[str, str]]:
    """(public id on the ``server`` fixture, stored path) of every gallery photo, through the
    public API (a stage-1 search over all of them)."""
    return sorted((public_id(h), h.path) for h in reference.search(str(sketches[0]), k=len(reference), rerank=0))


@pytest.fixture(scope="module")
def server(tiny_export, serve_gallery):
    """Read-only, no token; a small upload limit and a batching delay long enough to see batches form."""
    from zse_infer.runtime.retriever import Retriever

    with running_server(
        Retriever.load(tiny_export, gallery=serve_gallery), max_delay_ms=30, max_upload_bytes=1024 * 1024
    ) as (base, _app):
        yield base


@pytest.fixture(scope="module")
def writable_server(tiny_export, serve_gallery, shapes, tmp_path_factory):
    """Token, --allow-writes, a --photo-root; on a copy of the gallery."""
    from zse_infer.runtime.retriever import Retriever

    root = tmp_path_factory.mktemp("writable")
    gallery = root / "gallery"
    shutil.copytree(serve_gallery, gallery)
    r = Retriever.load(tiny_export, gallery=gallery, create=True)
    with running_server(
        r, token="s3cret", allow_writes=True, upload_dir=root / "uploads", photo_roots=(shapes / "photo",)
    ) as (base, _app):
        yield base


@pytest.fixture(scope="module")
def tight_server(tiny_export, serve_gallery):
    """max_queue=1, batches of one and a short timeout: for 503 and 504. Yields (base, app)."""
    from zse_infer.runtime.retriever import Retriever

    r = Retriever.load(tiny_export, gallery=serve_gallery)
    with running_server(r, max_queue=1, max_batch=1, max_delay_ms=0, timeout_s=1.0) as (base, app):
        yield base, app
