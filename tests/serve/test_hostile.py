"""Hostile clients against a writable server without a token (issue 18, items 8-12 and 16):
uploads that become pages, stored files swapped for links, links out of --photo-root,
pixel bombs as photos, broken JSON, cross-origin form posts, rebound host names, and ids
that would tell where the server keeps its files."""

from __future__ import annotations

import os
import shutil
from urllib.parse import quote

import httpx
import pytest

from .bad_images import forged_png, huge_png, polyglot_png
from .conftest import running_server
from .test_errors import LEAKS, _error

PAGE = b"<script>"


@pytest.fixture(scope="module")
def site(tiny_export, shapes, tmp_path_factory):
    """A server with --allow-writes and no token over a gallery of copies of the shape photos
    under a --photo-root named 'photos' (the tests change files there). Yields (base, root, retriever)."""
    from zse_infer.runtime.retriever import Retriever

    top = tmp_path_factory.mktemp("hostile")
    root = top / "photos"
    shutil.copytree(shapes / "photo", root)
    (top / "outside").mkdir()
    (top / "outside" / "secret.jpg").write_bytes(next(root.rglob("*.jpg")).read_bytes())
    r = Retriever.load(tiny_export, gallery=top / "gallery", create=True)
    r.index([str(root)], progress=False)
    with running_server(
        r, allow_writes=True, upload_dir=top / "uploads", photo_roots=(root,), max_upload_bytes=2 * 1024 * 1024
    ) as (base, app):
        yield base, root, app


def _hits(base: str, sketch: bytes, k: int = 50) -> list[dict]:
    r = httpx.post(base + "/v1/search", params={"k": k, "rerank": "0"}, files={"sketch": ("s.png", sketch)}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["hits"]


def _upload(base: str, name: str, content: bytes, headers: dict | None = None, **kw) -> httpx.Response:
    return httpx.post(
        base + "/v1/photos",
        files=[("photos", (name, content, "application/octet-stream"))],
        headers=headers,
        timeout=60,
        **kw,
    )


def _size(base: str) -> int:
    return httpx.get(base + "/readyz").json()["detail"]["gallery_size"]


# ---------------------------------------------------------------------- item 16: ids
def test_hit_ids_are_relative_to_the_photo_root_never_server_paths(site, sketches):
    base, root, app = site
    hits = _hits(base, sketches[0].read_bytes())
    assert len(hits) == 9
    for h in hits:
        assert h["id"].startswith("photos/") and not h["id"].startswith("/"), h
        assert str(root) not in h["id"] and str(root) not in h["photo_url"]
        assert h["name"] == h["id"].rsplit("/", 1)[1]
        served = httpx.get(base + h["photo_url"])
        assert served.status_code == 200 and served.content == (root / h["id"].split("/", 1)[1]).read_bytes()
    # the library keeps its paths
    library = app.state.zse.retriever.search(sketches[0].read_bytes(), k=1, rerank=0)[0]
    assert library.path.startswith(str(root)) and library.id == library.path


def test_ids_outside_every_root_are_opaque(server, reference, sketches):
    """The read-only server has no --photo-root: every id of an indexed file is '@' + 16 hex digits."""
    hits = _hits(server, sketches[0].read_bytes())
    assert hits and all(h["id"].startswith("@") and len(h["id"]) == 17 for h in hits)
    body = httpx.post(server + "/v1/search?k=3", files={"sketch": sketches[0].read_bytes()}).text
    assert "/tmp/" not in body and "pytest-of" not in body


# ---------------------------------------------------------------------- item 8: uploads that become pages
def test_a_polyglot_upload_is_stored_and_served_as_the_image_it_decodes_as(site):
    base, _root, app = site
    r = _upload(base, "poly.html", polyglot_png(), data={"ids": ["poly"]})
    assert r.status_code == 200, r.text
    uploads = app.state.zse.settings.upload_dir
    stored = [p.name for p in uploads.iterdir()]
    assert len(stored) == 1 and stored[0].endswith(".png") and "poly" not in stored[0], (
        stored
    )  # named by content and format
    served = httpx.get(base + "/v1/photos/poly")
    assert served.status_code == 200 and served.content == polyglot_png()
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]
    assert "default-src 'none'" in served.headers["content-security-policy"]


def test_a_stored_file_of_no_image_format_is_served_as_a_download(site, tmp_path):
    """A stored photo rewritten in place with its size and modification time kept cannot be told
    apart by its fingerprint; read again, it is no image, so it goes out as a download, never a page."""
    base, root, _app = site
    target = root / "circle" / "0.jpg"
    before = target.stat()
    original = target.read_bytes()
    fake = (b"<html><script>alert(1)</script>" + b" " * len(original))[: len(original)]
    try:
        target.write_bytes(fake)
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size and time: the fingerprint cannot tell
        r = httpx.get(base + "/v1/photos/" + quote("photos/circle/0.jpg", safe=""))
        assert r.status_code == 200
        assert (
            r.headers["content-type"] == "application/octet-stream" and r.headers["content-disposition"] == "attachment"
        )
        assert r.headers["x-content-type-options"] == "nosniff" and "sandbox" in r.headers["content-security-policy"]
    finally:
        target.write_bytes(original)
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))


CROSS_ORIGIN = [
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    {
        "Origin": "http://localhost:9999",
        "Sec-Fetch-Site": "same-site",
    },  # another port of this machine is another origin
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},  # sandboxed frames, file:// pages
    {"Origin": "https://evil.example"},  # an older browser: no Sec-Fetch-* headers
    {"Sec-Fetch-Site": "cross-site"},
]


@pytest.mark.parametrize(
    "headers", CROSS_ORIGIN, ids=["cross-site", "same-site", "null", "origin-only", "fetch-site-only"]
)
def test_cross_origin_writes_are_refused_without_a_token(site, headers, sketches):
    """Item 8: a page on another origin posts a form (no preflight) to upload or delete."""
    base, root, _app = site
    size = _size(base)
    err = _error(_upload(base, "x.png", polyglot_png(), headers=headers), 403, "forbidden")
    assert "cross-origin write refused" in err["message"]
    _error(httpx.post(base + "/v1/photos", json={"paths": [str(root)]}, headers=headers), 403, "forbidden")
    victim = _hits(base, sketches[0].read_bytes())[0]["id"]
    _error(httpx.delete(base + "/v1/photos/" + quote(victim, safe=""), headers=headers), 403, "forbidden")
    assert _size(base) == size
    # reading stays open to every origin (CORS decides what a page may read of it)
    assert (
        httpx.post(base + "/v1/search", files={"sketch": sketches[0].read_bytes()}, headers=headers).status_code == 200
    )


def test_writes_from_the_servers_own_pages_and_programs_are_allowed(site):
    base, _root, _app = site
    for i, headers in enumerate(
        [{"Origin": base, "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "same-origin"}, {"Origin": base}, {}]
    ):
        r = _upload(base, f"own{i}.png", forged_png(64, 64), headers=headers, data={"ids": [f"own-{i}"]})
        assert r.status_code == 200, (headers, r.text)


def test_a_token_or_a_cors_origin_allows_cross_origin_writes(tiny_export, serve_gallery, tmp_path):
    from zse_infer.runtime.retriever import Retriever

    gallery = tmp_path / "gallery"
    shutil.copytree(serve_gallery, gallery)
    evil = {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"}
    with running_server(
        Retriever.load(tiny_export, gallery=gallery),
        allow_writes=True,
        upload_dir=tmp_path / "up",
        cors=("https://app.example",),
    ) as (base, _app):
        assert _upload(base, "a.png", forged_png(64, 64), headers=evil).status_code == 200
        _error(_upload(base, "b.png", forged_png(64, 64), headers={**evil, "Origin": "https://other.example"}), 403)
    with running_server(
        Retriever.load(tiny_export, gallery=gallery), allow_writes=True, upload_dir=tmp_path / "up", token="t"
    ) as (base, _app):
        r = _upload(base, "c.png", polyglot_png(), headers={**evil, "Authorization": "Bearer t"})
        assert r.status_code == 200, r.text  # a page on another origin cannot send the token without CORS


def test_rebound_host_names_are_refused_on_a_loopback_server(site, sketches):
    """DNS rebinding: a page whose name now points at 127.0.0.1 is same-origin to the browser,
    so Origin checks pass; its requests still name its host. zse serve on loopback answers
    loopback names only."""
    base, _root, _app = site
    port = base.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
        headers = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
        err = _error(_upload(base, "r.png", polyglot_png(), headers=headers), 400, "invalid_host")
        assert "--allowed-host" in err["message"]
        _error(httpx.get(base + "/v1/photos/" + quote("photos/circle/0.jpg", safe=""), headers={"Host": host}), 400)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert httpx.get(base + "/healthz", headers={"Host": host}).status_code == 200


# ---------------------------------------------------------------------- item 9: stored files that change
def test_a_stored_photo_swapped_for_a_link_is_never_served(site, tmp_path):
    base, root, _app = site
    target = root / "square" / "1.jpg"
    original, url = target.read_bytes(), base + "/v1/photos/" + quote("photos/square/1.jpg", safe="")
    secret = tmp_path / "hostname"
    secret.write_bytes(b"secret-host-name\n")
    try:
        target.unlink()
        target.symlink_to(secret)
        r = httpx.get(url)
        err = _error(r, 410, "gone")
        assert b"secret-host-name" not in r.content and "link" in err["message"]
        explain = httpx.post(base + "/v1/explain", files={"sketch": polyglot_png()}, data={"id": "photos/square/1.jpg"})
        _error(explain, 410, "gone")
    finally:
        target.unlink()
        target.write_bytes(original)


def test_a_stored_photo_that_changed_or_went_is_410_or_404(site):
    base, root, _app = site
    target = root / "square" / "2.jpg"
    original, stat = target.read_bytes(), target.stat()
    url = base + "/v1/photos/" + quote("photos/square/2.jpg", safe="")
    try:
        target.write_bytes(original + b"\0")  # grew
        assert "changed" in _error(httpx.get(url), 410, "gone")["message"]
        target.write_bytes(original)  # same size, new time
        _error(httpx.get(url), 410, "gone")
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert httpx.get(url).status_code == 200  # the indexed file again
        target.unlink()
        _error(httpx.get(url), 404, "not_found")
    finally:
        target.write_bytes(original)
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert httpx.get(url).status_code == 200


def test_a_folder_on_a_stored_path_swapped_for_a_link_is_not_followed(site, tmp_path):
    base, root, _app = site
    folder = root / "cross"
    moved = tmp_path / "elsewhere"
    url = base + "/v1/photos/" + quote("photos/cross/0.jpg", safe="")
    assert httpx.get(url).status_code == 200
    shutil.move(str(folder), moved)  # the same files, same times, now behind a link
    try:
        folder.symlink_to(moved, target_is_directory=True)
        _error(httpx.get(url), 410, "gone")
    finally:
        folder.unlink()
        shutil.move(str(moved), folder)
    assert httpx.get(url).status_code == 200


# ---------------------------------------------------------------------- item 10: links out of --photo-root
def test_links_inside_a_photo_root_to_files_outside_are_refused(site):
    base, root, app = site
    outside = root.parent / "outside" / "secret.jpg"
    sneaky = root / "sneaky"
    sneaky.mkdir()
    try:
        (sneaky / "link.jpg").symlink_to(outside)
        size = _size(base)
        for paths in ([str(sneaky)], [str(sneaky / "link.jpg")], [str(root)]):
            err = _error(httpx.post(base + "/v1/photos", json={"paths": paths}, timeout=60), 403, "forbidden")
            assert "outside the server's --photo-root" in err["message"] and "outside/secret" not in err["message"], err
        (sneaky / "link.jpg").unlink()
        (sneaky / "dir").symlink_to(outside.parent, target_is_directory=True)
        _error(httpx.post(base + "/v1/photos", json={"paths": [str(sneaky / "dir" / "secret.jpg")]}), 403)
        assert _size(base) == size
        assert not any(h.endswith("secret.jpg") for h in app.state.zse.retriever.gallery.ids)
    finally:
        shutil.rmtree(sneaky)


def test_photo_root_paths_index_with_public_ids(site, sketches):
    base, root, _app = site
    extra = root / "extra"
    extra.mkdir()
    try:
        shutil.copy(next(root.rglob("*.jpg")), extra / "copy.jpg")
        r = httpx.post(base + "/v1/photos", json={"paths": [str(extra)]}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["ids"] == ["photos/extra/copy.jpg"] and r.json()["added"] == 1
        assert httpx.get(base + "/v1/photos/" + quote("photos/extra/copy.jpg", safe="")).status_code == 200
        assert httpx.delete(base + "/v1/photos/" + quote("photos/extra/copy.jpg", safe="")).status_code == 200
    finally:
        shutil.rmtree(extra)


# ---------------------------------------------------------------------- item 11: pixel limits for photos
def test_photos_get_the_same_pixel_limit_as_sketches(site):
    base, root, app = site
    size = _size(base)
    err = _error(_upload(base, "huge.png", huge_png()), 422, "invalid_image")
    assert err["message"].startswith("upload 'huge.png': image is 13000x13000 pixels, expected at most"), err
    _error(_upload(base, "forged.png", forged_png(60000, 60000)), 422, "invalid_image")
    big = root / "big"
    big.mkdir()
    try:
        (big / "huge.png").write_bytes(huge_png())
        err = _error(httpx.post(base + "/v1/photos", json={"paths": [str(big)]}, timeout=60), 422, "invalid_image")
        assert err["message"].startswith("photo 'photos/big/huge.png': image is 13000x13000 pixels"), err
    finally:
        shutil.rmtree(big)
    assert _size(base) == size
    assert not list(app.state.zse.settings.upload_dir.glob("*huge*"))


@pytest.mark.parametrize(
    "name, data",
    [
        ("notes.txt", b"not an image"),
        ("page.html", b"<html><script>alert(1)</script></html>"),
        ("truncated.png", polyglot_png()[:60]),
        ("empty.png", b""),
    ],
)
def test_undecodable_photo_uploads_are_422_and_nothing_is_stored(site, name, data):
    base, _root, app = site
    before = (
        sorted(p.name for p in app.state.zse.settings.upload_dir.glob("*"))
        if app.state.zse.settings.upload_dir.exists()
        else []
    )
    err = _error(_upload(base, name, data), 422, "invalid_image")
    assert err["message"].startswith(f"upload '{name}': ") and not LEAKS.search(err["message"]), err
    assert sorted(p.name for p in app.state.zse.settings.upload_dir.glob("*")) == before


# ---------------------------------------------------------------------- item 12: bad JSON
@pytest.mark.parametrize(
    "content", [b'{"paths": 5}', b"not json", b"[]", b'{"paths": ["a"], "ids": 3}', b'{"paths": [1, {}]}', b""]
)
def test_bad_json_on_post_photos_is_422(site, content):
    base, _root, _app = site
    r = httpx.post(base + "/v1/photos", content=content, headers={"content-type": "application/json"})
    err = _error(r, 422, "invalid_request")
    assert err["message"].startswith("JSON body") and not LEAKS.search(err["message"]), err


def test_paths_outside_every_root_are_403_without_telling_where_roots_are(site, tmp_path):
    """The message echoes the path as sent; it does not list the server's roots (it used to)."""
    base, root, _app = site
    for path in ("/etc/hostname", str(root / ".." / "outside"), str(tmp_path)):
        err = _error(httpx.post(base + "/v1/photos", json={"paths": [path]}), 403, "forbidden")
        assert err["message"] == f"path {path!r}: outside the server's --photo-root folders", err


@pytest.mark.parametrize(
    "paths, fragment",
    [
        (["{root}/circle/0.jpg\u0000.png"], "NUL character"),
        (["{root}/circle/nope.jpg"], "no such file"),
        (["{root}/fifo.jpg"], "not a regular file"),
        (["{root}/empty"], "no images"),
        ([], "empty"),
    ],
)
def test_odd_photo_root_paths_are_422_never_hang_or_500(site, paths, fragment):
    base, root, _app = site
    os.mkfifo(root / "fifo.jpg")
    (root / "empty").mkdir()
    try:
        body = {"paths": [p.format(root=root) for p in paths]}
        err = _error(httpx.post(base + "/v1/photos", json=body, timeout=30), 422, "invalid_request")
        assert fragment in err["message"], err
    finally:
        (root / "fifo.jpg").unlink()
        (root / "empty").rmdir()


@pytest.mark.parametrize(
    "photo_id", ["x' OR id LIKE '%", "a\\' OR 1=1 --", "../../etc/passwd", "ünï cødé/片", "%2e%2e", "#1"]
)
def test_ids_chosen_by_clients_are_data_never_sql_or_paths(site, sketches, photo_id):
    """A client's id goes into the store's delete filter and into URLs: it must stay one id."""
    base, _root, _app = site
    r = _upload(base, "p.png", forged_png(64, 64), data={"ids": [photo_id]})
    assert r.status_code == 200, r.text
    size = _size(base)
    url = base + "/v1/photos/" + quote(photo_id, safe="")
    assert httpx.get(url).status_code == 200
    assert httpx.delete(url).status_code == 200
    assert _size(base) == size - 1  # that photo, and no other
    _error(httpx.get(url), 404)


@pytest.mark.parametrize("photo_id", ["line\nbreak", "nul\u0000", "", "@0123456789abcdef", "x" * 513])
def test_ids_that_could_not_be_named_in_a_url_are_refused(site, photo_id):
    base, root, _app = site
    size = _size(base)
    err = _error(_upload(base, "p.png", forged_png(64, 64), data={"ids": [photo_id]}), 422, "invalid_request")
    assert err["message"].startswith("ids: received"), err
    _error(httpx.post(base + "/v1/photos", json={"paths": [str(root / "circle" / "0.jpg")], "ids": [photo_id]}), 422)
    assert _size(base) == size


def test_ids_are_checked_against_the_photos_before_anything_is_committed(site, monkeypatch):
    import zse_infer.serve.app as app_module

    base, root, _app = site
    monkeypatch.setattr(app_module, "COMMIT_SIZE", 1)  # commits of one: a late check would leave some committed
    size = _size(base)
    folder = str(root / "circle")
    for ids, fragment in ((["a", "b"], "2 ids for 3 photos"), (["a", "b", "a"], "the same id given twice")):
        err = _error(httpx.post(base + "/v1/photos", json={"paths": [folder], "ids": ids}), 422, "invalid_request")
        assert fragment in err["message"], err
    assert _size(base) == size
