"""The gallery store's failures over HTTP (issue 18): a store that cannot be read or written just
now (GalleryUnavailableError) is 503 with Retry-After, a gallery whose state refuses the
request (GalleryError) is 409, and no error, not even a bug's 500, closes the client's
kept-alive connection (it did: 108 of 185 searches beside a compacting writer answered 500
and reset their connections)."""

from __future__ import annotations

import http.client
import json

import pytest

from zse_infer.errors import GalleryError, GalleryUnavailableError

from .conftest import running_server
from .faults import Faulty


@pytest.fixture(scope="module")
def faulty(tiny_export, serve_gallery, tmp_path_factory):
    """(host, port, Faulty retriever) of a writable server; tests set and clear faults."""
    import shutil

    from zse_infer.runtime.retriever import Retriever

    root = tmp_path_factory.mktemp("faults")
    shutil.copytree(serve_gallery, root / "gallery")
    f = Faulty(Retriever.load(tiny_export, gallery=root / "gallery"))
    with running_server(f, allow_writes=True, upload_dir=root / "uploads", refresh_s=0) as (base, _app):
        host, port = base.split("//", 1)[1].split(":")
        yield host, int(port), f, str(root / "gallery")


@pytest.fixture(autouse=True)
def _no_faults_left(request):
    yield
    if "faulty" in request.fixturenames:
        request.getfixturevalue("faulty")[2].errors.clear()


def _ask(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None, ctype: str = "image/png"):
    conn.request(method, path, body=body, headers={"Content-Type": ctype} if body is not None else {})
    r = conn.getresponse()
    return r, r.read()


@pytest.mark.parametrize(
    "method, error, status, kind",
    [
        (
            "search_tokens",
            GalleryUnavailableError("/srv/g/gallery.lance/data/x.lance: Not found"),
            503,
            "gallery_unavailable",
        ),
        ("encode", GalleryUnavailableError("LanceError(IO): object store"), 503, "gallery_unavailable"),
        ("search_tokens", GalleryError("{gallery}: the gallery is empty: index photos first"), 409, "gallery_conflict"),
        ("search_tokens", RuntimeError("a bug"), 500, "server_error"),
        ("search_tokens", OSError("Not found: /srv/g/data/raw.lance"), 500, "server_error"),
    ],
)
def test_store_errors_are_503_or_409_and_keep_the_connection(faulty, sketches, method, error, status, kind):
    host, port, f, gallery = faulty
    if "{gallery}" in str(error):
        error = type(error)(str(error).format(gallery=gallery))
    sketch = sketches[0].read_bytes()
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        f.errors[method] = error
        r, data = _ask(conn, "POST", "/v1/search", sketch)
        first = conn.sock
        body = json.loads(data)["error"]
        assert (r.status, body["type"]) == (status, kind), data
        if status == 503:
            assert r.getheader("Retry-After") == "1"
        assert "/srv/" not in body["message"] and gallery not in body["message"] and "0x" not in body["message"], body
        assert not r.will_close
        f.errors.clear()
        r2, _ = _ask(conn, "POST", "/v1/search", sketch)
        assert r2.status == 200 and conn.sock is first, "the error closed the kept-alive connection"
    finally:
        conn.close()


def test_a_failed_refresh_leaves_searches_on_the_version_they_have(tiny_export, serve_gallery, sketches, tmp_path):
    """Picking up other writers' commits may fail (storage away, a commit half visible); searches
    then go on with the gallery version already open (the store keeps it for minutes) instead of
    failing: readers never see an error because someone else wrote."""
    import shutil

    from zse_infer.runtime.retriever import Retriever

    shutil.copytree(serve_gallery, tmp_path / "g")
    f = Faulty(Retriever.load(tiny_export, gallery=tmp_path / "g"))
    with running_server(f, refresh_s=0.001) as (base, _app):
        for error in (
            GalleryUnavailableError("LanceError(IO): gone"),
            GalleryError("the gallery: built with another model"),
        ):
            f.errors["refresh"] = error
            calls = f.calls["refresh"]
            host, port = base.split("//", 1)[1].split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            r, data = _ask(conn, "POST", "/v1/search?k=9", sketches[0].read_bytes())
            assert r.status == 200 and len(json.loads(data)["hits"]) == 9, data
            assert f.calls["refresh"] > calls  # it was tried
            conn.close()


@pytest.mark.parametrize(
    "method, error, status",
    [
        ("index", GalleryUnavailableError("LanceError(IO): commit conflict after retries"), 503),
        ("index", GalleryError("{gallery}: built with model A; this export is model B"), 409),
        ("delete", GalleryUnavailableError("LanceError(IO): slow down"), 503),
    ],
)
def test_write_errors_are_503_or_409(faulty, sketches, method, error, status):
    from .bad_images import polyglot_png

    host, port, f, gallery = faulty
    if "{gallery}" in str(error):
        error = type(error)(str(error).format(gallery=gallery))
    f.errors[method] = error
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        if method == "index":
            boundary = "zse-test-boundary"
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="p.png"\r\n'
                    f"Content-Type: image/png\r\n\r\n"
                ).encode()
                + polyglot_png()
                + f"\r\n--{boundary}--\r\n".encode()
            )
            r, data = _ask(conn, "POST", "/v1/photos", body, f"multipart/form-data; boundary={boundary}")
        else:
            _r0, listing = _ask(conn, "POST", "/v1/search?k=1&rerank=0", sketches[0].read_bytes())
            victim = json.loads(listing)["hits"][0]["id"]
            r, data = _ask(conn, "DELETE", "/v1/photos/" + victim)
        err = json.loads(data)["error"]
        assert r.status == status, data
        assert gallery not in err["message"], err
        if status == 409:
            assert err["message"].startswith("the gallery: built with model A"), err
        assert _ask(conn, "GET", "/healthz")[0].status == 200  # the same connection goes on
    finally:
        conn.close()
