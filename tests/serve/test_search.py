"""Search over HTTP equals the in-process Retriever; batches form under concurrency; probes, docs, metrics."""

from __future__ import annotations

import base64
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .conftest import public_id


def _same(http_hits: list[dict], hits) -> None:
    assert [h["id"] for h in http_hits] == [public_id(h) for h in hits]
    assert [h["name"] for h in http_hits] == [Path(h.path).name for h in hits]
    assert [h["rank"] for h in http_hits] == [h.rank for h in hits]
    assert [h["stage"] for h in http_hits] == [h.stage for h in hits]
    for a, b in zip(http_hits, hits, strict=False):
        assert abs(a["score"] - b.score) <= 1e-5


@pytest.mark.parametrize("rerank", [0, 4, "all", None])
def test_search_equals_in_process_retriever(server, reference, sketches, rerank):
    default = reference.manifest.default_rerank
    for path in sketches[::2]:
        data = path.read_bytes()
        params = {"k": 5} if rerank is None else {"k": 5, "rerank": str(rerank)}
        r = httpx.post(server + "/v1/search", params=params, files={"sketch": ("s.png", data, "image/png")}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        _same(body["hits"], reference.search(data, k=5, rerank=default if rerank is None else rerank))
        assert body["rerank"] == (default if rerank is None else rerank)
        assert set(body["timing_ms"]) >= {"queue", "decode", "encode", "stage1", "stage2", "total"}
        assert all(h["photo_url"].startswith("/v1/photos/") for h in body["hits"])


def test_json_base64_and_raw_body_give_the_same_hits(server, reference, sketches):
    data = sketches[0].read_bytes()
    expected = reference.search(data, k=3, rerank=2)
    as_json = httpx.post(
        server + "/v1/search?k=3&rerank=2", json={"image": base64.b64encode(data).decode()}, timeout=30
    )
    data_url = httpx.post(
        server + "/v1/search?k=3&rerank=2",
        json={"image": "data:image/png;base64," + base64.b64encode(data).decode()},
        timeout=30,
    )
    raw = httpx.post(
        server + "/v1/search?k=3&rerank=2", content=data, headers={"content-type": "image/png"}, timeout=30
    )
    for r in (as_json, data_url, raw):
        assert r.status_code == 200, r.text
        _same(r.json()["hits"], expected)


def test_concurrent_searches_are_batched_and_still_exact(server, reference, sketches):
    jobs = [sketches[i % len(sketches)] for i in range(16)]

    def one(path):
        return path, httpx.post(server + "/v1/search?k=4&rerank=3", files={"sketch": path.read_bytes()}, timeout=60)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, jobs))
    sizes = []
    for path, r in results:
        assert r.status_code == 200, r.text
        _same(r.json()["hits"], reference.search(path.read_bytes(), k=4, rerank=3))
        sizes.append(r.json()["batch_size"])
    assert max(sizes) > 1, f"no two concurrent requests shared a batch: {sizes}"


def test_gallery_photos_are_served(server, stored):
    from zse_infer.serve.app import photo_url

    assert len(stored) == 9
    for pid, path in stored:
        r = httpx.get(server + photo_url(pid), timeout=10)
        assert r.status_code == 200
        assert r.content == Path(path).read_bytes()
        assert r.headers["content-type"] == "image/jpeg"


def test_explain_json_and_png(server, reference, sketches, stored):
    pid, path = stored[0]
    data = sketches[0].read_bytes()
    r = httpx.post(server + "/v1/explain", files={"sketch": ("s.png", data)}, data={"id": pid}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    expected = reference.explain(data, path)
    assert body["id"] == pid and abs(body["score"] - expected.score) <= 1e-5
    assert len(body["matches"]) == len(expected.matches) and len(body["sketch_heat"]) == expected.sketch_heat.shape[0]
    png = httpx.post(
        server + "/v1/explain",
        json={"image": base64.b64encode(data).decode(), "id": pid},
        headers={"Accept": "image/png"},
        timeout=30,
    )
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert abs(float(png.headers["x-relation-score"]) - expected.score) <= 1e-5


def test_probes_docs_page_and_metrics(server):
    assert httpx.get(server + "/healthz").json()["status"] == "ok"
    ready = httpx.get(server + "/readyz").json()
    assert ready["status"] == "ready" and ready["detail"]["gallery_size"] == 9
    spec = httpx.get(server + "/openapi.json").json()
    assert {"/v1/search", "/v1/explain", "/v1/photos", "/v1/photos/{photo_id}"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/v1/search"]["post"]["requestBody"]["content"]
    for docs_page in ("/docs",):  # offline: every asset from this server, none from a CDN (issue 18, item 17)
        html = httpx.get(server + docs_page).text
        assert "cdn." not in html and "googleapis" not in html, docs_page
        assets = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', html)
        assert len(assets) >= 2, assets
        for asset in assets:
            assert asset.startswith("/"), asset
            assert httpx.get(server + asset).status_code == 200, asset
    page = httpx.get(server + "/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    for asset in ("app.js", "style.css"):
        assert httpx.get(f"{server}/static/{asset}").status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    text = httpx.get(server + "/metrics").text
    for needle in (
        'zse_requests_total{method="POST",route="/v1/search",status="200"}',
        'zse_stage_seconds_bucket{le="0.5",stage="encode"}',
        'zse_stage_seconds_count{stage="stage2"}',
        'zse_stage_seconds_count{stage="decode"}',
        "zse_batch_size_bucket",
        "zse_queue_depth ",
        "zse_gallery_size 9.0",
    ):
        assert needle in text, needle


def test_searches_see_another_writers_commits(tiny_export, serve_gallery, shapes, tmp_path):
    """A ``zse index`` (or another replica) beside the server: its photos are searchable and
    servable within ``refresh_s``, without restarting the server."""
    import shutil

    from zse_infer.runtime.retriever import Retriever

    from .conftest import running_server

    gallery = tmp_path / "gallery"
    shutil.copytree(serve_gallery, gallery)
    sketch = sorted((shapes / "sketch").rglob("*.png"))[0]
    with running_server(Retriever.load(tiny_export, gallery=gallery), refresh_s=0.2) as (base, _app):
        before = httpx.post(
            base + "/v1/search?k=50&rerank=0", files={"sketch": sketch.read_bytes()}, timeout=30
        ).json()["hits"]
        writer = Retriever.load(tiny_export, gallery=gallery)
        writer.index([str(sorted((shapes / "photo").rglob("*.jpg"))[0])], ids=["from-another-writer"], progress=False)
        time.sleep(0.5)
        httpx.post(
            base + "/v1/search?k=1&rerank=0", files={"sketch": sketch.read_bytes()}, timeout=30
        )  # picks up the commit
        after = httpx.post(base + "/v1/search?k=50&rerank=0", files={"sketch": sketch.read_bytes()}, timeout=30).json()[
            "hits"
        ]
        assert len(after) == len(before) + 1 and "from-another-writer" in {h["id"] for h in after}
        assert httpx.get(base + "/v1/photos/from-another-writer", timeout=30).status_code == 200
