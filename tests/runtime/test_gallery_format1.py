import json

import numpy as np
import pytest

from zse_infer.errors import GalleryError, IntegrityError
from zse_infer.runtime.gallery.format1 import Gallery

SHAPE = (5, 8)


def _tokens(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)


def test_write_commit_reopen(tmp_path):
    g = Gallery.create(tmp_path / "g", SHAPE, {"name": "tiny"})
    t = _tokens(3)
    shard = g.write_shard(t, ["a", "b", "c"], ["/a.png", None, "/c.png"])
    assert len(Gallery.open(tmp_path / "g")) == 0  # not visible before commit
    g.commit([shard])
    h = Gallery.open(tmp_path / "g")
    assert h.ids == ["a", "b", "c"] and h.paths == ["/a.png", None, "/c.png"]
    assert isinstance(h.shards[0].tokens, np.memmap)
    assert np.allclose(h.tokens([2, 0]), t[[2, 0]], atol=1e-2)
    ret = h.ret_matrix()
    assert np.allclose(np.linalg.norm(ret, axis=1), 1, atol=1e-6)
    h.verify()


def test_rows_across_shards_keep_order(tmp_path):
    g = Gallery.create(tmp_path / "g", SHAPE, {})
    a, b = _tokens(2, 1), _tokens(3, 2)
    g.commit([g.write_shard(a, ["a0", "a1"], [None, None])])
    g.commit([g.write_shard(b, ["b0", "b1", "b2"], [None] * 3)])
    both = np.concatenate([a, b]).astype(np.float16).astype(np.float32)
    rows = [4, 0, 3, 1]
    assert np.array_equal(g.tokens(rows), both[rows])
    assert g.row_info(3) == ("b1", None)


def test_uncommitted_and_orphan_shards_are_cleaned(tmp_path):
    g = Gallery.create(tmp_path / "g", SHAPE, {})
    orphan = g.write_shard(_tokens(1), ["x"], [None])
    kept = g.write_shard(_tokens(1), ["y"], [None])
    g.commit([kept])
    names = {p.name.split(".")[0] for p in (tmp_path / "g" / "shards").iterdir()}
    assert names == {kept.name} and orphan.name not in names


def test_pending_shards_survive_for_resume(tmp_path):
    g = Gallery.create(tmp_path / "g", SHAPE, {})
    s = g.write_shard(_tokens(2), ["p", "q"], [None, None])
    g.write_pending([s])
    reopened = Gallery.open(tmp_path / "g")
    assert len(reopened) == 0
    assert [x.ids for x in reopened.read_pending()] == [["p", "q"]]


def test_save_elsewhere_and_replace(tmp_path):
    g = Gallery.create(None, SHAPE, {"name": "tiny"})
    assert g.temporary
    g.commit([g.write_shard(_tokens(2), ["a", "b"], [None, None])])
    saved = g.save(tmp_path / "out")
    assert Gallery.open(tmp_path / "out").ids == ["a", "b"]
    g.commit([g.write_shard(_tokens(1), ["c"], [None])])
    g.save(tmp_path / "out")
    assert Gallery.open(tmp_path / "out").ids == ["a", "b", "c"]
    assert saved.root == tmp_path / "out"


def test_refuses_foreign_folders(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    g = Gallery.create(None, SHAPE, {})
    with pytest.raises(GalleryError, match="not empty"):
        g.save(tmp_path / "junk")
    with pytest.raises(GalleryError, match="no gallery.json"):
        Gallery.open(tmp_path / "junk")


def test_corruption_is_reported(tmp_path):
    g = Gallery.create(tmp_path / "g", SHAPE, {})
    s = g.write_shard(_tokens(2), ["a", "b"], [None, None])
    g.commit([s])
    record = tmp_path / "g" / "gallery.json"
    data = json.loads(record.read_text())
    data["version"] = 99
    record.write_text(json.dumps(data))
    with pytest.raises(GalleryError, match="version 99"):
        Gallery.open(tmp_path / "g")
    data["version"] = 1
    record.write_text(json.dumps(data))
    tokens = tmp_path / "g" / "shards" / f"{s.name}.tokens.npy"
    raw = tokens.read_bytes()
    tokens.write_bytes(raw[:-10])  # truncated
    with pytest.raises(GalleryError, match=s.name):
        Gallery.open(tmp_path / "g")
    tokens.write_bytes(raw[:-2] + b"\x01\x02")  # same size, other bytes
    with pytest.raises(IntegrityError, match="tokens.npy"):
        Gallery.open(tmp_path / "g").verify()


def test_one_writer_at_a_time(tmp_path):
    g = Gallery.create(tmp_path / "g", SHAPE, {})
    other = Gallery.open(tmp_path / "g")
    with g.writing():
        with pytest.raises(GalleryError, match="another process"):
            with other.writing():
                pass
