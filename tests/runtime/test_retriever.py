import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.images import make_photo_files
from zse_infer import Retriever
from zse_infer.errors import BlankSketchError, GalleryError, ImageError, ImageNotFoundError, InputError, ZseError
from zse_infer.runtime.indexer import content_id

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def photos(tmp_path):
    return make_photo_files(tmp_path / "photos", 12)


@pytest.fixture
def sketch(golden_images):
    return golden_images["sketch"][0]


def _ranking(hits):
    return [(h.id, round(h.score, 6), h.stage) for h in hits]


def test_index_and_search_contract(tiny_export, photos, sketch, tmp_path):
    r = Retriever.load(tiny_export)
    report = r.index(photos, progress=False)
    assert report.added == 12 and len(r) == 12
    hits = r.search(sketch, k=5, rerank=8)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(h.stage == 2 and 0 < h.score < 1 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].id == hits[0].path == str(photos[hits[0].row].resolve())  # one commit: row ids 0..11
    stage1 = r.search(sketch, k=3, rerank=0)
    assert all(h.stage == 1 and -1 <= h.score <= 1 for h in stage1)
    mixed = r.search(sketch, k=6, rerank=2)
    assert [h.stage for h in mixed] == [2, 2, 1, 1, 1, 1]
    batch = r.search_batch([sketch, sketch], k=4, rerank="all")
    assert _ranking(batch[0]) == _ranking(batch[1]) == _ranking(r.search(sketch, k=4, rerank="all"))


def test_rerank_at_least_gallery_size_equals_exhaustive(tiny_export, photos, sketch):
    r = Retriever.load(tiny_export)
    r.index(photos, progress=False)
    exhaustive = r.search(sketch, k=12, rerank="all")
    assert _ranking(r.search(sketch, k=12, rerank=12)) == _ranking(exhaustive)
    assert _ranking(r.search(sketch, k=12, rerank=500)) == _ranking(exhaustive)


def test_in_memory_photos_get_ids_and_no_path(tiny_export, sketch):
    r = Retriever.load(tiny_export)
    arrays = [np.full((40, 40, 3), v, np.uint8) for v in (10, 120, 250)]
    r.index(arrays, progress=False)
    r.index([Image.fromarray(arrays[0])], ids=["pil"], progress=False)
    hits = r.search(sketch, k=4, rerank=0)
    assert sorted(h.id for h in hits) == sorted([content_id(a) for a in arrays] + ["pil"])
    assert all(h.id.startswith("#") and len(h.id) == 33 for h in hits if h.id != "pil")
    assert all(h.path is None for h in hits)


def test_saved_reloaded_extended_equals_single_pass(tiny_export, photos, sketch, tmp_path):
    single = Retriever.load(tiny_export)
    single.index(photos, progress=False)
    first = Retriever.load(tiny_export)
    first.index(photos[:5], progress=False)
    first.save(tmp_path / "gallery")
    second = Retriever.load(tiny_export, gallery=tmp_path / "gallery")
    assert len(second) == 5
    second.index(photos, progress=False)  # the first five are already stored: skipped
    assert len(second) == 12 and second.gallery.ids == single.gallery.ids
    for rerank in (0, 4, "all"):
        assert _ranking(second.search(sketch, k=12, rerank=rerank)) == _ranking(
            single.search(sketch, k=12, rerank=rerank)
        )
    third = Retriever.load(tiny_export, gallery=tmp_path / "gallery")
    assert _ranking(third.search(sketch, k=5)) == _ranking(single.search(sketch, k=5))


def _snapshot(folder: Path) -> dict:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"
    }


@pytest.mark.parametrize("kind", ["missing", "zero", "truncated", "text", "corrupt"])
def test_bad_photo_raises_naming_it_and_keeps_earlier_batches(tiny_export, photos, tmp_path, kind):
    gallery = tmp_path / "gallery"
    r = Retriever.load(tiny_export, gallery=gallery, create=True)
    r.index(photos[:3], progress=False)
    bad = tmp_path / f"bad_{kind}.png"
    if kind == "zero":
        bad.write_bytes(b"")
    elif kind == "truncated":
        bad.write_bytes(photos[0].read_bytes()[:100])
    elif kind == "text":
        bad.write_text("not an image")
    elif kind == "corrupt":
        data = bytearray(photos[0].read_bytes())
        data[40:80] = b"\xff" * 40
        bad.write_bytes(bytes(data))
    with pytest.raises(ZseError, match=bad.name):
        r.index([*photos[3:8], bad, *photos[8:]], progress=False, commit_size=2)
    # Batches committed before the bad photo stay (3,4 and 5,6); 7 shared the bad one's batch.
    assert sorted(Retriever.load(tiny_export, gallery=gallery).gallery.ids) == sorted(str(p) for p in photos[:7])
    report = r.index(photos, progress=False)
    assert report.skipped_existing == 7 and report.added == 5 and len(r) == 12


def test_skip_mode_reports_bad_photos(tiny_export, photos, tmp_path):
    r = Retriever.load(tiny_export)
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    report = r.index([photos[0], bad, tmp_path / "missing.png", photos[1]], on_error="skip", progress=False)
    assert report.added == 2 and len(report.failed) == 2
    assert "bad.jpg" in report.failed[0][1] and "missing.png" in report.failed[1][1]


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda d: d / "missing.png", ImageNotFoundError),
        (lambda d: [(d / "zero.png").write_bytes(b""), d / "zero.png"][1], ImageError),
        (lambda d: [(d / "text.png").write_text("x"), d / "text.png"][1], ImageError),
        (lambda d: Image.new("RGB", (30, 30), "white").save(d / "blank.png") or d / "blank.png", BlankSketchError),
    ],
)
def test_bad_sketch_raises_naming_it(tiny_export, photos, tmp_path, make, error):
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    r.index(photos[:2], progress=False)
    before = _snapshot(tmp_path / "g")
    path = make(tmp_path)
    with pytest.raises(error, match=path.name):
        r.search(path)
    assert _snapshot(tmp_path / "g") == before


def test_argument_errors(tiny_export, photos, sketch):
    r = Retriever.load(tiny_export)
    with pytest.raises(GalleryError, match="empty"):
        r.search(sketch)
    r.index(photos[:2], progress=False)
    with pytest.raises(InputError, match="rerank"):
        r.search(sketch, rerank=-1)
    with pytest.raises(InputError, match="k:"):
        r.search(sketch, k=0)
    with pytest.raises(InputError, match="on_error"):
        r.index(photos, on_error="ignore")
    with pytest.raises(InputError, match="duplicates"):
        r.index(photos[:2], ids=["a", "a"])
    with pytest.raises(InputError, match="2 ids for 3 photos"):
        r.index(photos[:3], ids=["a", "b"])


def test_gallery_from_another_model_is_refused_in_plain_words(tiny_export, photos, tmp_path):
    import lance

    from zse_infer.runtime.gallery.store import DATASET, META_KEY

    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    r.index(photos[:1], progress=False)
    ds = lance.dataset(str(tmp_path / "g" / DATASET))
    meta = json.loads(ds.schema.metadata[META_KEY])
    meta["model"] = {"name": "zse_vit_b16", "checkpoint_sha256": "1a2b3c4d" + "0" * 56}
    ds.update_schema_metadata({META_KEY.decode(): json.dumps(meta)})
    with pytest.raises(GalleryError, match="Re-index") as err:
        Retriever.load(tiny_export, gallery=tmp_path / "g")
    assert "built with model zse_vit_b16 (checkpoint 1a2b3c4d...)" in str(err.value) and "{" not in str(err.value)


CHILD = textwrap.dedent(
    """
    import sys, time
    from zse_infer import Retriever
    export, gallery, listing = sys.argv[1:4]
    r = Retriever.load(export, gallery=gallery, create=True)
    run = r.runners.encoder.run
    def slow_run(inputs):
        time.sleep(0.15)  # make the run long enough to be killed midway
        return run(inputs)
    r.runners.encoder.run = slow_run
    r.index(open(listing).read().split(), batch_size=2, commit_size=4, progress=False)
    """
)


def _stored(gallery: Path) -> int:
    import lance

    from zse_infer.runtime.gallery.store import DATASET

    try:
        return lance.dataset(str(gallery / DATASET)).count_rows()
    except Exception:  # noqa: BLE001 - not created yet
        return 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_stopped_indexing_keeps_committed_batches_and_resumes(tiny_export, tmp_path, sig):
    photos = make_photo_files(tmp_path / "photos", 40)
    gallery = tmp_path / "gallery"
    base = Retriever.load(tiny_export, gallery=gallery, create=True)
    base.index(photos[:4], progress=False)  # a committed gallery before the stopped run
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(map(str, photos)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tiny_export), str(gallery), str(listing)], env=env, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None and _stored(gallery) < 12:
        time.sleep(0.02)
    assert child.poll() is None, "the indexing child finished before it could be stopped"
    child.send_signal(sig)
    child.wait()

    after = Retriever.load(tiny_export, gallery=gallery)
    stored = after.gallery.ids
    assert len(stored) >= 12 and len(stored) % 4 == 0 and len(set(stored)) == len(stored)  # whole batches only
    assert set(stored) >= {str(p) for p in photos[:4]}

    encoded = []
    run = after.runners.encoder.run
    after.runners.encoder.run = lambda inputs: encoded.append(len(inputs["image"])) or run(inputs)
    report = after.index(photos, progress=False)
    assert report.skipped_existing == len(stored) and sum(encoded) == 40 - len(stored)  # nothing encoded twice
    final = Retriever.load(tiny_export, gallery=gallery)
    assert sorted(final.gallery.ids) == sorted(str(p) for p in photos)

    fresh = Retriever.load(tiny_export)
    fresh.index(photos, progress=False)
    sketch = photos[7]
    hits_a = final.search(sketch, k=40, rerank="all")
    hits_b = fresh.search(sketch, k=40, rerank="all")
    assert [(h.id, round(h.score, 6)) for h in hits_a] == [(h.id, round(h.score, 6)) for h in hits_b]


def test_retriever_works_without_torch(tiny_export, tmp_path, golden_images):
    """`import zse_infer; zse_infer.Retriever` and a full index/search never import torch."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now fails, as where torch is not installed
        import zse_infer
        zse_infer.Retriever
        from zse_infer import Retriever
        r = Retriever.load({str(tiny_export)!r}, gallery={str(tmp_path / "g")!r}, create=True)
        r.index([{str(golden_images["photo"][0])!r}], progress=False)
        hits = r.search({str(golden_images["sketch"][0])!r}, k=1)
        assert hits[0].rank == 1
        assert sys.modules["torch"] is None
        print("ok", r.backend)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    assert "ok onnxruntime-cpu" in out.stdout


def test_fast_relation_graphs_and_stored_projections_match_the_compat_graph(tiny_export, photos, sketch, tmp_path):
    compat = Retriever.load(tiny_export, relation="compat")
    compat.index(photos, progress=False)
    fast = Retriever.load(tiny_export, relation="fast")
    fast.index(photos, progress=False)
    cached = Retriever.load(tiny_export, gallery=tmp_path / "proj", create=True, relation="fast", projections=True)
    cached.index(photos, progress=False)
    assert cached.gallery.projections and "proj" in cached.gallery.snapshot.ds.schema.names
    want = compat.search(sketch, k=12, rerank="all")
    for r in (fast, cached, Retriever.load(tiny_export, gallery=tmp_path / "proj")):
        got = r.search(sketch, k=12, rerank="all")
        assert [h.id for h in got] == [h.id for h in want]
        assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)


def test_fast_relation_needs_onnxruntime(tiny_export):
    r = Retriever.load(tiny_export, backend="torch", checkpoint=tiny_export.parent / "tiny.pth", relation="fast")
    r.index([np.full((32, 32, 3), 9, np.uint8)], progress=False)
    with pytest.raises(InputError, match="relation='fast'"):
        r.search(np.full((32, 32, 3), 0, np.uint8), rerank=1)
    with pytest.raises(InputError, match="relation"):
        Retriever.load(tiny_export, relation="quick")
