"""``zse serve`` on an ``s3://`` gallery (issue 21 item 4): another writer's commits (photos read
from the bucket too) become searchable over HTTP after the server's refresh, without a restart."""

from __future__ import annotations

import time

import pytest

from tests.support.images import make_photo_files
from zse_infer import Retriever

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi", reason="zse serve is the 'serve' extra")


def test_serve_sees_another_writers_commits_on_s3(s3, tiny_export, tmp_path, golden_images):
    from tests.serve.conftest import running_server

    client = s3.client()
    for path in make_photo_files(tmp_path / "photos", 6, size=32):
        client.put_object(Bucket=s3.bucket, Key=f"photos/{path.name}", Body=path.read_bytes())
    first = Retriever.load(tiny_export, gallery=s3.uri(), create=True, storage_options=s3.options)
    first.index(f"s3://{s3.bucket}/photos/photo_000.png", ids=["first"], progress=False)
    sketch = golden_images["sketch"][0].read_bytes()

    def search() -> set[str]:
        done = httpx.post(f"{base}/v1/search?k=50&rerank=0", files={"sketch": sketch}, timeout=30)
        assert done.status_code == 200, done.text
        return {h["id"] for h in done.json()["hits"]}

    server_side = Retriever.load(tiny_export, gallery=s3.uri(), storage_options=s3.options)
    with running_server(server_side, refresh_s=0.05) as (base, _app):
        assert search() == {"first"}
        writer = Retriever.load(tiny_export, gallery=s3.uri(), storage_options=s3.options)  # another process, say
        new = [f"w{i}" for i in range(5)]
        keys = [f"s3://{s3.bucket}/photos/photo_{i:03d}.png" for i in range(1, 6)]
        assert writer.index(keys, ids=new, progress=False).added == 5
        deadline, seen = time.monotonic() + 60, set()
        while time.monotonic() < deadline and seen != {"first", *new}:  # each search may refresh first
            seen = search()
        assert seen == {"first", *new}
        writer.delete(["w0"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "w0" in seen:
            seen = search()
        assert seen == {"first", *new[1:]}
