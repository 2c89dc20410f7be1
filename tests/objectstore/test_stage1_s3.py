"""The persisted stage-1 (IVF) index of an ``s3://`` gallery lives in the bucket beside it
(``<gallery>/stage1/``): built once, updated incrementally by the next reader of a newer
version, and rebuilt by a reader that finds it gone."""

from __future__ import annotations

import json

import pytest

from tests.support.images import make_photo_files
from zse_infer import Retriever

pytest.importorskip("faiss", reason="the IVF index is the 'ann' extra")


def test_stage1_index_is_kept_in_the_bucket(s3, tiny_export, tmp_path, monkeypatch):
    from zse_infer.runtime.gallery import stage1

    monkeypatch.setattr(stage1, "APPROX_MIN", 8)
    photos = make_photo_files(tmp_path / "photos", 30, size=32)
    r = Retriever.load(tiny_export, gallery=s3.uri(), create=True, storage_options=s3.options)
    r.index(photos[:20], progress=False)
    r.search(photos[0], k=5, rerank=0)

    def pointer() -> dict:
        return json.loads(s3.client().get_object(Bucket=s3.bucket, Key="g/stage1/ivf.json")["Body"].read())

    first = pointer()
    assert first["count"] == 20 and "recall_at_100" in first
    r.index(photos[20:], progress=False)
    r.delete([str(photos[1].resolve())])
    fresh = Retriever.load(tiny_export, gallery=s3.uri(), storage_options=s3.options)
    hits = fresh.search(photos[0], k=30, rerank=0)
    index = fresh.searcher.stage1._index
    assert index.kind == "ivf" and index.index.ntotal == 29 and str(photos[1].resolve()) not in {h.id for h in hits}
    updated = pointer()
    assert updated["count"] == 29 and updated["trained_on"] == 20  # updated incrementally, not retrained
    folders = {k.split("/")[2] for k in s3.keys("g/stage1/v")}
    assert folders == {updated["dir"]}  # the older version's folder is gone
    assert list(tmp_path.glob("**/stage1")) == []  # nothing local
    # A reader that finds the files gone (a writer replaced them meanwhile) rebuilds and keeps the new one.
    for key in s3.keys("g/stage1/v"):
        s3.client().delete_object(Bucket=s3.bucket, Key=key)
    r.index(make_photo_files(tmp_path / "more", 1, size=32, seed=5), progress=False)
    again = Retriever.load(tiny_export, gallery=s3.uri(), storage_options=s3.options)
    assert again.search(photos[0], k=3, rerank=0)[0].id == str(photos[0].resolve())
    assert again.searcher.stage1._index.kind == "ivf" and pointer()["count"] == 30
    assert {k.split("/")[2] for k in s3.keys("g/stage1/v")} == {pointer()["dir"]}
