"""The gallery store through the Retriever, beside other processes (issue 18, items 1-7; issue 20).

Second writers, compactors and readers are real processes (multiprocessing, spawn); they
wait for each other through files and the store's versions, with bounded deadlines.
"""

import io
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.images import make_photo_files
from zse_infer import Retriever
from zse_infer.errors import GalleryError, InputError
from zse_infer.runtime.gallery.store import Gallery
from zse_infer.runtime.indexer import Encoded, IndexReport, content_id

DEADLINE_S = 300


def _wait_for(predicate, what: str) -> None:
    import time

    end = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _run(target, *args) -> int:
    """Run ``target(*args)`` in another process; its exit code."""
    proc = _start(target, *args)
    proc.join(DEADLINE_S)
    assert not proc.is_alive(), f"{target.__name__} did not finish within {DEADLINE_S} s"
    return proc.exitcode


def _start(target, *args):
    proc = mp.get_context("spawn").Process(target=target, args=args)
    proc.start()
    return proc


def _ids(photos) -> list[str]:
    return [str(p.resolve()) for p in photos]


# ---------------------------------------------------------------------- item 1
def _index(export, gallery, photos, ready):
    if ready:
        _wait_for(lambda: os.path.exists(ready), "the compactor's first compaction")
    Retriever.load(export, gallery=gallery, create=True).index(photos, batch_size=8, commit_size=8, progress=False)


def _compact_until(gallery, ready, stop):
    g = Gallery.open(gallery)
    while True:
        finished = os.path.exists(stop)
        g.compact()  # the default keep time, as `zse gallery compact` runs it
        Path(ready).touch()
        if finished:
            return


def test_indexing_in_commits_of_8_beside_a_compaction_loop(tiny_export, tmp_path):
    photos = make_photo_files(tmp_path / "photos", 168, size=32)
    gallery, ready, stop = tmp_path / "g", tmp_path / "ready", tmp_path / "stop"
    Retriever.load(tiny_export, gallery=gallery, create=True).index(photos[:1], progress=False)
    compactor = _start(_compact_until, gallery, ready, stop)
    assert _run(_index, tiny_export, gallery, photos[:160], ready) == 0  # 20 commits
    stop.touch()
    compactor.join(DEADLINE_S)
    assert compactor.exitcode == 0
    r = Retriever.load(tiny_export, gallery=gallery)  # open
    assert sorted(r.gallery.ids) == sorted(_ids(photos[:160]))  # nothing committed is lost
    assert len(r.search(photos[3], k=5, rerank=3)) == 5  # search
    assert r.index(photos, progress=False).added == 8  # index
    r.compact()  # compact
    assert sorted(Retriever.load(tiny_export, gallery=gallery).gallery.ids) == sorted(_ids(photos))


# ---------------------------------------------------------------------- item 2
def _delete_and_compact(gallery, ids, keep):
    g = Gallery.open(gallery)
    g.delete(ids)
    g.compact() if keep is None else g.compact(keep_versions_seconds=keep)


def test_search_survives_deletes_and_compaction_in_another_process(tiny_export, tmp_path):
    photos = make_photo_files(tmp_path / "photos", 12)
    gallery = tmp_path / "g"
    r = Retriever.load(tiny_export, gallery=gallery, create=True)
    r.index(photos, progress=False, commit_size=3)
    before = r.gallery.version
    assert len(r.search(photos[0], k=12, rerank=12)) == 12
    # Another process deletes and compacts with the default keep time: this reader's version
    # stays readable (the old default, 0 s, removed it: searches raised a raw OSError).
    assert _run(_delete_and_compact, gallery, _ids(photos[:4]), None) == 0
    assert len(r.search(photos[1], k=12, rerank=12)) == 12 and r.gallery.version == before
    # Keep time 0: its version goes; the search refreshes and retries once, on the latest version.
    assert _run(_delete_and_compact, gallery, _ids(photos[4:6]), 0) == 0
    hits = r.search(photos[1], k=12, rerank=12)
    assert r.gallery.version > before and sorted(h.id for h in hits) == sorted(_ids(photos[6:]))


# ---------------------------------------------------------------------- items 3 and 4
def _open_with_create_and_close(export, gallery):
    Retriever.load(export, gallery=gallery, create=True).close()


def _replace_with_another_models(gallery, shape):
    from tests.support.gallery import tiny_batch

    shutil.rmtree(gallery, ignore_errors=True)
    batch = tiny_batch(["b1", "b2"])
    d = shape[1]
    batch.tokens = np.zeros((2, *shape), np.float32)
    batch.ret = np.tile(np.eye(1, d, dtype=np.float32), (2, 1))
    Gallery.create(gallery, shape, {"name": "another"}).append(batch)


def test_create_true_commits_the_gallery_for_other_processes(tiny_export, tmp_path):
    gallery = tmp_path / "g"
    assert _run(_open_with_create_and_close, tiny_export, gallery) == 0  # closed without indexing
    r = Retriever.load(tiny_export, gallery=gallery)  # no create: the gallery is there
    assert len(r) == 0 and r.gallery.model["name"] == r.manifest.model.name


def test_another_models_gallery_is_refused_on_load_refresh_and_index(tiny_export, tmp_path):
    photos = make_photo_files(tmp_path / "photos", 3)
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    shape = r.gallery.tokens_shape
    assert _run(_replace_with_another_models, tmp_path / "g", shape) == 0
    with pytest.raises(GalleryError, match=r"built with model another.*Re-index the photos"):
        r.refresh()
    with pytest.raises(GalleryError, match="built with model another"):
        r.index(photos, progress=False)
    assert sorted(Gallery.open(tmp_path / "g").ids) == ["b1", "b2"]  # nothing of this model's was appended
    for create in (True, False):
        with pytest.raises(GalleryError, match="built with model another"):
            Retriever.load(tiny_export, gallery=tmp_path / "g", create=create)


# ---------------------------------------------------------------------- item 5
def _arrays(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(n)]


def test_in_memory_photos_are_never_lost(tiny_export, tmp_path):
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    arrays = _arrays(4, 0)
    assert r.index(arrays[:3], progress=False).added == 3
    assert r.delete([content_id(arrays[0])]) == 1
    report = r.index(arrays[3:], progress=False)  # was: id '#2' again, skipped as stored
    assert (report.added, report.skipped_existing, len(r)) == (1, 0, 3)
    assert r.index(arrays[1:], progress=False).skipped_existing == 3  # the same images: the same ids
    # Two retrievers opened before either commits (was: both numbered from 0, half were lost).
    a = Retriever.load(tiny_export, gallery=tmp_path / "h", create=True)
    b = Retriever.load(tiny_export, gallery=tmp_path / "h", create=True)
    a.index(_arrays(3, 1), progress=False)
    b.index(_arrays(3, 2), progress=False)
    assert len(Retriever.load(tiny_export, gallery=tmp_path / "h")) == 6
    # A caller's id for an in-memory image: its content is unknown, so a new image replaces it.
    a.index([arrays[0]], ids=["mine"], progress=False)
    report = a.index([Image.fromarray(arrays[1])], ids=["mine"], progress=False)
    assert (report.added, report.replaced, report.skipped_existing) == (1, 1, 0)
    snap = a.gallery.snapshot
    row = snap.row_ids()[snap.ids.index("mine")]
    np.testing.assert_allclose(snap.tokens([row])[0], a.encode([arrays[1]], "photo")[0], atol=0.02)
    with pytest.raises(InputError, match="the same file or image given more than once"):
        a.index([arrays[2], arrays[2].copy()], progress=False)
    png = io.BytesIO()
    Image.fromarray(arrays[3]).save(png, format="PNG")
    a.index([io.BytesIO(png.getvalue())], progress=False)  # a file object: read once, its bytes hashed
    assert content_id(png.getvalue()) in a.gallery.ids
    with pytest.raises(InputError, match="binary mode"):
        a.index([io.StringIO("not an image")], progress=False)


# ---------------------------------------------------------------------- item 6
class _NoBar:
    def update(self, n):
        pass


@pytest.mark.parametrize("stage1", ["exact", "ivf"])
def test_search_returns_each_photo_once_after_overlapping_writers(tiny_export, tmp_path, monkeypatch, stage1):
    if stage1 == "ivf":
        pytest.importorskip("faiss")
        from zse_infer.runtime.gallery import stage1 as module

        monkeypatch.setattr(module, "APPROX_MIN", 4)
    photos = make_photo_files(tmp_path / "photos", 20)  # IVF: at least 16 (its lists) to train on
    gallery = tmp_path / "g"
    one = Retriever.load(tiny_export, gallery=gallery, create=True)
    two = Retriever.load(tiny_export, gallery=gallery, create=True)
    # Both plan before either commits (two `zse index` runs over overlapping folders): both
    # find photos 8-11 new, so both store them (documented: duplicates until `compact`).
    plans = [(r, r.indexer.plan(part, None)[0]) for r, part in ((one, photos[:12]), (two, photos[8:]))]
    for r, todo in plans:
        report = IndexReport()
        tokens, kept = r.indexer.encode(todo, 8, "raise", report, _NoBar())
        r.indexer.commit(Encoded(kept, tokens), report)
    r = Retriever.load(tiny_export, gallery=gallery)
    assert len(r.gallery.ids) == 24 and len(set(r.gallery.ids)) == 20
    snap = r.gallery.snapshot
    newest = {i: max(row for j, row in zip(snap.ids, snap.row_ids(), strict=False) if j == i) for i in set(snap.ids)}
    for rerank in (0, 3, "all"):
        for query in photos[7:11]:
            hits = r.search(query, k=24, rerank=rerank)
            assert len({h.id for h in hits}) == len(hits) >= 16  # IVF may miss a few; never repeats one
            assert all(h.row == newest[h.id] for h in hits)  # the newest row of each photo
    assert r.search_tokens(r.encode([photos[9]], "photo")[0], k=1, rerank=0)[0].row == newest[_ids(photos[9:10])[0]]
    assert r.compact()["duplicates_removed"] == 4 and len(r) == 20


# ---------------------------------------------------------------------- item 7
def test_unknown_uri_is_refused_not_made_a_folder(tiny_export, tmp_path, monkeypatch):
    """s3://, gs://, az:// are served (tests/objectstore); other schemes are refused, nothing created."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        GalleryError, match=r"http://host/g: received a http:// URI, expected a local folder or one of s3://"
    ):
        Retriever.load(tiny_export, gallery="http://host/g", create=True)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- issue 20
def test_nothing_new_shows_no_empty_progress_bar(tiny_export, tmp_path, capfd):
    photos = make_photo_files(tmp_path / "photos", 3)
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    r.index(photos, progress=True)
    assert "indexing" in capfd.readouterr().err
    assert r.index(photos, progress=True).skipped_existing == 3
    assert "indexing" not in capfd.readouterr().err  # was: an 'indexing: 0 photo' bar, twice


# ---------------------------------------------------------------------- galleries this process cannot write
def test_create_true_opens_an_existing_gallery_without_writing(tiny_export, tmp_path, monkeypatch):
    photos = make_photo_files(tmp_path / "photos", 3)
    Retriever.load(tiny_export, gallery=tmp_path / "g", create=True).index(photos, progress=False)

    def no_writes(self, name):
        raise AssertionError(f"took the {name} lock of an existing gallery")

    monkeypatch.setattr(
        Gallery, "_file_lock", no_writes
    )  # as on a read-only mount (`zse serve` loads with create=True)
    assert len(Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)) == 3


def test_stage1_index_that_cannot_be_saved_or_read_is_rebuilt(tiny_export, tmp_path, monkeypatch):
    pytest.importorskip("faiss")
    from zse_infer.runtime.gallery import stage1

    monkeypatch.setattr(stage1, "APPROX_MIN", 8)
    photos = make_photo_files(tmp_path / "photos", 20)
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    r.index(photos, progress=False)
    want = [h.id for h in r.search(photos[0], k=5, rerank=0)]
    # Another process replaced the index files after this one read ivf.json: they are gone.
    for folder in (tmp_path / "g" / "stage1").glob("v*"):
        shutil.rmtree(folder)
    assert [h.id for h in Retriever.load(tiny_export, gallery=tmp_path / "g").search(photos[0], k=5, rerank=0)] == want
    # A folder it cannot write: the index is kept in memory, search answers.
    shutil.rmtree(tmp_path / "g" / "stage1")
    (tmp_path / "g" / "stage1").write_text("not a folder")
    assert [h.id for h in Retriever.load(tiny_export, gallery=tmp_path / "g").search(photos[0], k=5, rerank=0)] == want
