"""Stage 2 on a gallery with stored projections reads each candidate chunk in ONE sorted take (tokens and
projections together) and scores like the computed path; codec 'none' galleries still use their projections."""

import numpy as np

from tests.support.images import make_photo_files
from zse_infer import Retriever
from zse_infer.runtime.gallery.snapshot import Snapshot


def _count_takes(monkeypatch):
    calls = []
    real = Snapshot.take

    def counting(self, rowids, columns):
        calls.append(tuple(columns))
        return real(self, rowids, columns)

    monkeypatch.setattr(Snapshot, "take", counting)
    return calls


def test_stored_projections_are_read_with_the_tokens_in_one_take(tiny_export, tmp_path, golden_images, monkeypatch):
    photos = make_photo_files(tmp_path / "photos", 7, size=64)
    sketch = golden_images["sketch"][0]
    computed = Retriever.load(tiny_export, relation="fast")
    computed.index(photos, progress=False)
    stored = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True, relation="fast", projections=True)
    stored.index(photos, progress=False)
    want = computed.search(sketch, k=7, rerank="all")
    calls = _count_takes(monkeypatch)
    got = stored.search(sketch, k=7, rerank="all")
    assert [h.id for h in got] == [h.id for h in want]
    assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
    reads = [c for c in calls if "proj" in c or "tokens" in c]
    assert reads == [("tokens", "proj")], calls  # was two takes: tokens, then projections


def test_codec_none_gallery_uses_its_stored_projections(tiny_export, tmp_path, golden_images, monkeypatch):
    photos = make_photo_files(tmp_path / "photos", 4, size=64)
    r = Retriever.load(
        tiny_export, gallery=tmp_path / "g", create=True, codec="none", relation="fast", projections=True
    )
    r.index(photos, progress=False)
    calls = _count_takes(monkeypatch)
    hits = r.search(golden_images["sketch"][0], k=4, rerank="all")
    assert len(hits) == 4 and ("proj",) in calls
