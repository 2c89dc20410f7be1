"""Ray indexing into an ``s3://`` gallery (issue 21): encoder actors write the fragments to a
real S3 endpoint on 127.0.0.1 (moto), the driver commits their metadata; the gallery ranks
exactly as a local one."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.images import make_photo_files
from zse_infer import Retriever
from zse_infer.distributed.ray_index import RayIndexExecutor, RayOptions

pytestmark = pytest.mark.ray
pytest.importorskip("moto.server", reason="needs moto[server] (the dev extra)")


@pytest.fixture
def s3(monkeypatch):
    from tests.support.s3 import isolate, local_server, new_bucket

    isolate(monkeypatch)
    for endpoint in local_server():
        yield new_bucket(endpoint, monkeypatch)


def test_ray_workers_write_fragments_to_s3(ray_cluster, s3, tiny_export, tmp_path, golden_images):
    photos = make_photo_files(tmp_path / "photos", 40, size=32)
    local = Retriever.load(tiny_export, gallery=tmp_path / "local", create=True)
    local.index(photos, progress=False, commit_size=16)
    # The Ray workers started before this test: the credentials travel in storage_options.
    remote = Retriever.load(tiny_export, gallery=s3.uri(), create=True, storage_options=s3.options_with_keys)
    options = RayOptions(address=ray_cluster, actors=1)
    report = remote.index(photos[:24], progress=False, commit_size=16, batch_size=8, executor=RayIndexExecutor(options))
    assert report.added == 24 and options.timings["driver_bytes"] / 24 < 2048  # metadata, not tokens
    report = remote.index(
        photos,
        progress=False,
        commit_size=16,
        batch_size=8,
        executor=RayIndexExecutor(RayOptions(address=ray_cluster, actors=1)),
    )
    assert report.skipped_existing == 24 and report.added == 16  # a re-run adds only what is missing
    assert remote.gallery.version == 1 + 2 + 1  # create, then one Append per chunk of 16
    assert sorted(remote.gallery.ids) == sorted(local.gallery.ids)
    for sketch in golden_images["sketch"][:2]:
        assert [(h.id, round(h.score, 5)) for h in remote.search(sketch, k=10, rerank=5)] == [
            (h.id, round(h.score, 5)) for h in local.search(sketch, k=10, rerank=5)
        ]


def test_ray_indexes_photos_from_an_s3_prefix(ray_cluster, s3, tiny_export, tmp_path):
    """Decode tasks read the objects themselves (with the gallery's storage_options); the same
    gallery as indexing the prefix in this process, bad objects reported by URI."""
    client = s3.client()
    for path in make_photo_files(tmp_path / "photos", 12, size=32):
        client.put_object(Bucket=s3.bucket, Key=f"photos/{path.name}", Body=path.read_bytes())
    client.put_object(Bucket=s3.bucket, Key="photos/bad.png", Body=b"not an image")
    prefix = f"s3://{s3.bucket}/photos/"
    here = Retriever.load(tiny_export, gallery=tmp_path / "here", create=True, storage_options=s3.options_with_keys)
    here.index(prefix, progress=False, on_error="skip", commit_size=8)
    remote = Retriever.load(tiny_export, gallery=s3.uri(), create=True, storage_options=s3.options_with_keys)
    executor = RayIndexExecutor(RayOptions(address=ray_cluster, actors=1))
    report = remote.index(prefix, progress=False, on_error="skip", commit_size=8, batch_size=4, executor=executor)
    assert report.added == 12 and [uri for uri, _ in report.failed] == [f"{prefix}bad.png"]
    assert remote.gallery.ids == here.gallery.ids and remote.gallery.ids[0] == f"{prefix}photo_000.png"
    rows = [remote.gallery.snapshot.row_ids(), here.gallery.snapshot.row_ids()]
    np.testing.assert_array_equal(remote.gallery.tokens(rows[0]), here.gallery.tokens(rows[1]))
    again = remote.index(prefix, progress=False, on_error="skip", executor=executor)
    assert again.skipped_existing == 12 and again.added == 0
