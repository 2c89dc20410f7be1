"""Gallery format 2 (Lance) and the token codecs, without a model."""

import multiprocessing as mp

import numpy as np
import pytest

from tests.support.gallery import SHAPE
from tests.support.gallery import low_rank_tokens as _tokens
from tests.support.gallery import tiny_batch as _batch
from zse_infer.errors import GalleryError, InputError
from zse_infer.runtime.gallery.codecs import Codec, canonical_name
from zse_infer.runtime.gallery.store import Gallery


@pytest.mark.parametrize(
    "name, bytes_, tol", [("float16", 288, 2e-3), ("int8", 180, 3e-2), ("pca4-sq8", 36, 3e-2), ("pq", None, None)]
)
def test_codec_round_trip(name, bytes_, tol):
    if name == "pq":
        assert canonical_name("pq") == "pca32-sq8"
        return
    codec = Codec(name, SHAPE)
    tok = _tokens(50)
    codec.train(tok[:20])
    rows = codec.encode(tok)
    assert rows.shape == (50, bytes_) and rows.dtype == np.uint8 and codec.nbytes == bytes_
    back = codec.decode(rows)
    rel = np.linalg.norm(back - tok) / np.linalg.norm(tok)
    assert rel < tol
    again = Codec.from_metadata(name, SHAPE, codec.tables_text())
    np.testing.assert_array_equal(again.decode(rows), back)


def test_unknown_codec_is_refused():
    with pytest.raises(InputError, match="codec: received 'zip'"):
        canonical_name("zip")


def test_snapshots_takes_and_replace(tmp_path):
    g = Gallery.create(tmp_path / "g", SHAPE, {"name": "tiny"}, codec="int8")
    assert Gallery.exists(tmp_path / "g") and len(g) == 0 and g.version == 1  # committed (empty) at once
    b1 = _batch("abc")
    g.append(b1)
    pinned = Gallery.open(tmp_path / "g")
    b2 = _batch("da", seed=1)
    g.append(b2, replace=True)
    assert sorted(g.ids) == ["a", "b", "c", "d"] and len(pinned) == 3
    snap = g.snapshot
    rows = snap.row_ids()
    got = snap.take(rows[::-1], ["id", "path"])
    assert got["id"] == snap.ids[::-1]
    a_row = rows[snap.ids.index("a")]
    np.testing.assert_allclose(snap.tokens([a_row])[0], b2.tokens[1], atol=0.05)
    assert Gallery.open(tmp_path / "g", version=pinned.version).ids == ["a", "b", "c"]


def _create_and_append(path, ids, seed, barrier):
    barrier.wait()
    g = Gallery.create(path, SHAPE, {"name": "tiny"}, codec="pca4-sq8", exist_ok=True)
    g.append(_batch(ids, seed))
    g.append(_batch([i + "2" for i in ids], seed + 10))


def test_two_processes_creating_one_gallery_lose_nothing(tmp_path):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_create_and_append, args=(tmp_path / "g", ids, s, barrier))
        for s, ids in enumerate(("abc", "xyz"))
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    g = Gallery.open(tmp_path / "g")
    assert sorted(g.ids) == sorted(["a", "b", "c", "x", "y", "z", "a2", "b2", "c2", "x2", "y2", "z2"])
    assert g.codec.tables is not None  # one codec: the winner's tables encoded every row


def test_dedupe_keeps_the_newest_row(tmp_path):
    g = Gallery.create(tmp_path / "g", SHAPE, {"name": "tiny"})
    g.append(_batch("ab"))
    g.append(_batch("b", seed=3))  # as two writers of one id would leave it
    assert sorted(g.ids) == ["a", "b", "b"]
    assert g.dedupe() == 1
    np.testing.assert_allclose(
        g.tokens([g.snapshot.row_ids()[g.ids.index("b")]])[0], _batch("b", seed=3).tokens[0], atol=2e-3
    )


def test_open_refuses_non_galleries(tmp_path):
    with pytest.raises(GalleryError, match="no gallery here"):
        Gallery.open(tmp_path)


def test_malformed_batch_is_the_callers_error_and_commits_nothing(tmp_path):
    g = Gallery.create(tmp_path / "g", SHAPE, {"name": "tiny"})
    batch = _batch("ab")
    batch.tokens = batch.tokens[:, :3]
    with pytest.raises(InputError, match=r"batch.tokens: received shape \(2, 3, 16\), expected \(2, 9, 16\)"):
        g.append(batch)
    assert len(Gallery.open(tmp_path / "g")) == 0 and g.version == 1
