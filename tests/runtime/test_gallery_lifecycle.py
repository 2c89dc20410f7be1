"""The gallery as a store, through the Retriever: concurrent writers and a reader, deletes,
changed files, ids from relative paths, creation rules, persisted stage 1, threads."""

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.support.images import make_photo_files
from zse_infer import Retriever
from zse_infer.errors import GalleryError, ZseError

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

WRITER = textwrap.dedent(
    """
    import sys
    from zse_infer import Retriever
    export, gallery, listing = sys.argv[1:4]
    r = Retriever.load(export, gallery=gallery, create=True)
    r.index(open(listing).read().split(), batch_size=2, commit_size=2, progress=False)
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    from zse_infer import Retriever
    from zse_infer.errors import GalleryError
    export, gallery, sketch, stop = sys.argv[1:5]
    r = None
    searches = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        finished = __import__("os").path.exists(stop)
        if r is None:
            try:
                r = Retriever.load(export, gallery=gallery)
            except GalleryError:  # not created yet
                time.sleep(0.05)
                continue
        r.refresh()
        if len(r) == 0:  # created (empty, stamped with the model) before the first commit
            time.sleep(0.05)
            continue
        hits = r.search(sketch, k=50, rerank=3)
        ids = [h.id for h in hits]
        assert len(ids) == len(set(ids)), ids  # a snapshot never shows a photo twice
        searches += 1
        if finished:
            break
    print("searches", searches)
    """
)


def test_two_writers_and_a_reader(tiny_export, tmp_path, golden_images):
    photos = make_photo_files(tmp_path / "photos", 24)
    gallery = tmp_path / "gallery"
    lists = []
    for name, part in (("a", photos[0::2]), ("b", photos[1::2])):  # disjoint sets
        lists.append(tmp_path / f"{name}.txt")
        lists[-1].write_text("\n".join(map(str, part)))
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(tiny_export), str(gallery), str(golden_images["sketch"][0]), str(stop)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tiny_export), str(gallery), str(x)],
            env=ENV,
            stderr=subprocess.PIPE,
            text=True,
        )
        for x in lists
    ]
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    stop.write_text("")
    out, err = reader.communicate(timeout=300)
    assert reader.returncode == 0, err  # the reader never errored
    assert int(out.split()[-1]) >= 1
    r = Retriever.load(tiny_export, gallery=gallery)
    ids = r.gallery.ids
    assert sorted(ids) == sorted(str(p.resolve()) for p in photos)  # every photo, once
    hits = r.search(photos[5], k=24, rerank=0)
    assert sorted(h.id for h in hits) == sorted(ids)


@pytest.fixture
def photos(tmp_path):
    return make_photo_files(tmp_path / "photos", 10)


def test_delete_then_search_never_returns_deleted(tiny_export, photos, tmp_path):
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    r.index(photos, progress=False)
    other = Retriever.load(tiny_export, gallery=tmp_path / "g")  # a second, long-lived reader
    gone = [str(p.resolve()) for p in photos[:4]]
    assert r.delete(gone) == 4 and len(r) == 6
    for rerank in (0, 3, "all"):
        assert not {h.id for h in r.search(photos[0], k=10, rerank=rerank)} & set(gone)
    assert len(other) == 10  # pinned to its snapshot until it refreshes
    assert other.refresh() and len(other) == 6
    assert not {h.id for h in other.search(photos[0], k=10, rerank=2)} & set(gone)
    assert r.compact()["old_versions_removed"] == 0  # replaced seconds ago: kept for readers (KEEP_VERSIONS_S)
    assert r.compact(keep_versions_seconds=0)["old_versions_removed"] >= 1
    assert sorted(Retriever.load(tiny_export, gallery=tmp_path / "g").gallery.ids) == sorted(
        str(p.resolve()) for p in photos[4:]
    )
    assert r.delete(["never-stored"]) == 0


def test_changed_file_is_re_encoded_on_re_index(tiny_export, photos, tmp_path):
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    r.index(photos, progress=False)
    before = r.gallery.snapshot.tokens(r.gallery.snapshot.row_ids())
    order = list(r.gallery.ids)
    photos[3].write_bytes(photos[7].read_bytes())  # new content, new size and mtime
    report = r.index(photos, progress=False)
    assert (report.added, report.replaced, report.skipped_existing) == (1, 1, 9)
    assert len(r) == 10 and len(set(r.gallery.ids)) == 10
    snap = r.gallery.snapshot
    new_row = snap.row_ids()[snap.ids.index(str(photos[3].resolve()))]
    np.testing.assert_allclose(snap.tokens([new_row])[0], before[order.index(str(photos[7].resolve()))], atol=1e-6)
    assert r.index(photos, progress=False).added == 0


def test_relative_path_from_two_working_directories_is_one_photo(tiny_export, photos, tmp_path, monkeypatch):
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    monkeypatch.chdir(tmp_path)
    r.index([os.path.relpath(photos[0])], progress=False)
    monkeypatch.chdir(tmp_path / "photos")
    report = r.index([photos[0].name], progress=False)
    assert report.skipped_existing == 1 and len(r) == 1
    assert r.gallery.ids == [str(photos[0].resolve())] and r.gallery.paths == [str(photos[0].resolve())]


def test_missing_gallery_needs_create_and_a_failed_first_index_leaves_an_empty_gallery(tiny_export, photos, tmp_path):
    with pytest.raises(GalleryError, match=str(tmp_path / "nothing")):
        Retriever.load(tiny_export, gallery=tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()
    r = Retriever.load(tiny_export, gallery=tmp_path / "new", create=True)
    with pytest.raises(ZseError, match=r"missing\.png"):
        r.index([tmp_path / "missing.png", *photos], progress=False)
    assert len(Retriever.load(tiny_export, gallery=tmp_path / "new")) == 0  # created (empty) by create=True
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "gallery.json").write_text("{}")
    with pytest.raises(GalleryError, match="zse gallery migrate"):
        Retriever.load(tiny_export, gallery=tmp_path / "old")


@pytest.mark.parametrize("codec", ["int8", "pq", "none"])
def test_codecs_search_like_float16(tiny_export, photos, tmp_path, codec):
    ref = Retriever.load(tiny_export)
    ref.index(photos, progress=False)
    r = Retriever.load(tiny_export, gallery=tmp_path / codec, create=True, codec=codec)
    r.index(photos[:4], progress=False, commit_size=4)  # the pq codec trains on this first batch
    r.index(photos, progress=False)
    reopened = Retriever.load(tiny_export, gallery=tmp_path / codec)
    assert reopened.gallery.codec.name == r.gallery.codec.name
    want = ref.search(photos[2], k=10, rerank="all")
    got = reopened.search(photos[2], k=10, rerank="all")
    assert [h.id for h in got][:3] == [h.id for h in want][:3]
    tol = {"int8": 0.01, "pq": 0.05, "none": 1e-5}[codec]
    assert (
        max(
            abs(a.score - b.score)
            for a, b in zip(sorted(got, key=lambda h: h.id), sorted(want, key=lambda h: h.id), strict=False)
        )
        < tol
    )


def test_codec_none_refuses_in_memory_photos(tiny_export):
    r = Retriever.load(tiny_export, codec="none")
    with pytest.raises(ZseError, match="codec-'none'"):
        r.index([np.zeros((32, 32, 3), np.uint8)], progress=False)


def test_persisted_stage1_index_is_updated_incrementally(tiny_export, tmp_path, monkeypatch):
    from zse_infer.runtime.gallery import stage1

    monkeypatch.setattr(stage1, "APPROX_MIN", 8)
    photos = make_photo_files(tmp_path / "photos", 30)
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    r.index(photos[:20], progress=False)
    r.search(photos[0], k=5, rerank=0)
    meta = (tmp_path / "g" / "stage1" / "ivf.json").read_text()
    assert '"count": 20' in meta and "recall_at_100" in meta
    r.index(photos[20:], progress=False)
    r.delete([str(photos[1].resolve())])
    fresh = Retriever.load(tiny_export, gallery=tmp_path / "g")
    hits = fresh.search(photos[0], k=30, rerank=0)
    index = fresh.searcher.stage1._index
    assert index.kind == "ivf" and index.index.ntotal == 29
    assert str(photos[1].resolve()) not in {h.id for h in hits}
    assert '"count": 29' in (tmp_path / "g" / "stage1" / "ivf.json").read_text()


def test_search_from_threads_equals_serial(tiny_export, photos, golden_images):
    r = Retriever.load(tiny_export)
    r.index(photos, progress=False)
    sketches = [golden_images["sketch"][0], photos[1], photos[2], photos[3]]
    want = [[(h.id, h.score) for h in r.search(s, k=5, rerank=4)] for s in sketches]
    fresh = Retriever.load(tiny_export, gallery=None)
    fresh.gallery = r.gallery  # share one gallery; fresh runners and lazy set-up under threads
    fresh.searcher.gallery = fresh.indexer.gallery = fresh.searcher.stage1.gallery = r.gallery
    got = [None] * len(sketches) * 3
    errors = []

    def work(i):
        try:
            got[i] = [(h.id, h.score) for h in fresh.search(sketches[i % len(sketches)], k=5, rerank=4)]
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(got))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert got == want * 3
