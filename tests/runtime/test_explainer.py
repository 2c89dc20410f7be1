import numpy as np
import pytest
from PIL import Image

from zse_infer import Retriever
from zse_infer.errors import InputError
from zse_infer.runtime.explainer import colormap, synthesize_patches
from zse_infer.testing.images import make_photo_files


@pytest.fixture
def retriever(tiny_export, tmp_path):
    r = Retriever.load(tiny_export)
    r.index(make_photo_files(tmp_path / "photos", 4, size=64), progress=False)
    return r


def test_explanation_is_consistent_with_the_anchor_kernel(retriever, golden_images, tmp_path):
    sketch = golden_images["sketch"][0]
    hit = retriever.search(sketch, k=1, rerank="all")[0]
    out = tmp_path / "explain.png"
    exp = retriever.explain(sketch, hit, out=out, top=8)
    # the explain graph's score is the relation score the search reported
    assert exp.score == pytest.approx(hit.score, abs=1e-5)
    anchors = exp.kernel.shape[0]
    assert len(exp.matches) == anchors == 16  # tiny: 8x8 token grid -> 4x4 anchors
    for m in exp.matches:
        assert m.photo_anchor == int(np.argmax(exp.kernel[m.sketch_anchor]))
        assert m.similarity == pytest.approx(exp.kernel[m.sketch_anchor, m.photo_anchor])
        grid = exp.sketch_heat.shape[0]
        assert m.sketch_share == pytest.approx(exp.sketch_relevance[m.sketch_anchor].max())
        assert 0 <= m.sketch_patch[0] < grid and 0 <= m.photo_patch[1] < grid
    sims = [m.similarity for m in exp.matches]
    assert sims == sorted(sims, reverse=True)
    assert exp.sketch_heat.sum() == pytest.approx(1, abs=1e-5) and exp.photo_heat.sum() == pytest.approx(1, abs=1e-5)
    image = Image.open(out)
    assert image.size == (2 * 128 + 24, 2 * 128 + 24 + 28)  # 64 px inputs drawn at scale 2
    data = exp.to_dict()
    assert data["image"] == str(out) and len(data["matches"]) == anchors


def test_relevance_sums_to_the_kernel_entry(retriever, golden_images):
    """The patch shares plus the conv-bias term give back each matched cosine exactly."""
    sketch = retriever.encode([golden_images["sketch"][1]], "sketch")
    photo = retriever.gallery.tokens([0])
    out = retriever._explain_outputs(sketch, photo)
    k, best = out["kernel"][0], out["best_photo_anchor"][0]
    matched = k[np.arange(len(best)), best]
    assert np.allclose(out["sketch_relevance"][0].sum(-1) + out["bias_relevance"][0, :, 0], matched, atol=1e-5)
    assert np.allclose(out["photo_relevance"][0].sum(-1) + out["bias_relevance"][0, :, 1], matched, atol=1e-5)


def test_explain_from_a_photo_file(retriever, golden_images):
    exp = retriever.explain(golden_images["sketch"][0], golden_images["photo"][0])
    assert exp.photo_image.shape == (64, 64, 3) and exp.image_path is None


def test_in_memory_hit_needs_the_image(tiny_export, golden_images):
    r = Retriever.load(tiny_export)
    r.index([np.full((32, 32, 3), 100, np.uint8)], progress=False)
    hit = r.search(golden_images["sketch"][0], k=1)[0]
    with pytest.raises(InputError, match="has no path"):
        r.explain(golden_images["sketch"][0], hit)


def test_synthesis_pastes_the_matched_photo_patches(retriever, golden_images, tmp_path):
    sketch = golden_images["sketch"][2]
    hits = retriever.search(sketch, k=2)
    out = tmp_path / "synth.png"
    result = retriever.synthesize(sketch, hits, out=out)
    assert Image.open(out).size == (64, 64)
    grid, cell = 8, 8
    photos = [retriever._photo_tokens_and_image(h)[1] for h in hits]
    for i, (k, j, replaced) in enumerate(result.source):
        assert replaced == 1
        r, c = divmod(i, grid)
        pr, pc = divmod(int(j), grid)
        assert np.array_equal(
            result.image[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell],
            photos[int(k)][pr * cell : (pr + 1) * cell, pc * cell : (pc + 1) * cell],
        )


def test_synthesis_choice_follows_attention():
    """Hand-made attention: patch 0 attends most to photo 1's patch 3, the rest to photo 0's patch 0."""
    n = 4
    sketch = np.zeros((4, 4, 3), np.uint8)
    photos = [np.full((4, 4, 3), 10, np.uint8), np.arange(48, dtype=np.uint8).reshape(4, 4, 3)]
    att = [np.full((n + 1, n + 1), 0.1), np.full((n + 1, n + 1), 0.05)]
    att[0][1:, 1] = 0.5
    att[1][1, 4] = 0.9
    result = synthesize_patches(sketch, photos, att)
    assert result.source[:, :2].tolist() == [[1, 3], [0, 0], [0, 0], [0, 0]]
    assert np.array_equal(result.image[0:2, 0:2], photos[1][2:4, 2:4])
    assert np.array_equal(result.image[2:4, 2:4], photos[0][0:2, 0:2])
    ink_only = synthesize_patches(np.full((4, 4, 3), 255, np.uint8), photos, att, ink_threshold=300)
    assert ink_only.source[:, 2].tolist() == [0, 0, 0, 0] and (ink_only.image == 255).all()


def test_colormap_endpoints():
    assert colormap(np.array([0.0]))[0].tolist() == [0, 0, 4]
    assert colormap(np.array([1.0]))[0].tolist() == [252, 253, 191]
