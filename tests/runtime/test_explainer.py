import numpy as np
import pytest
from PIL import Image

from zse_infer import Retriever
from zse_infer.errors import InputError
from zse_infer.runtime.explain_pictures import scale_for
from zse_infer.runtime.explainer import Explainer, colormap
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
    side = 64 * scale_for(64, 320)  # 64 px inputs drawn at >= 320 px
    assert image.width == 2 * side + 24 + 2 * 12
    data = exp.to_dict()
    assert data["image"] == str(out) and len(data["matches"]) == anchors
    assert len(data["shown_matches"]) <= 8


def test_the_picture_shows_few_matches_on_strokes_and_on_the_object(retriever, golden_images, tmp_path):
    """Issue 10: lines ending on blank canvas. Shown matches sit on ink / content patches only,
    at most ``top``, no patch marked twice, strongest first; each is an anchor match's patch with
    a positive share in its cosine."""
    sketch = golden_images["sketch"][0]
    hit = retriever.search(sketch, k=1, rerank="all")[0]
    exp = retriever.explain(sketch, hit, out=tmp_path / "e.png", top=4)
    shown = exp.readable_matches()
    assert 1 <= len(shown) <= 4
    grid = exp.sketch_heat.shape[0]
    for m in shown:
        i, j = m.sketch_patch[0] * grid + m.sketch_patch[1], m.photo_patch[0] * grid + m.photo_patch[1]
        assert exp.sketch_ink[i] and exp.photo_content[j]
        assert m.sketch_share == pytest.approx(exp.sketch_relevance[m.sketch_anchor, i]) and m.sketch_share > 0
        assert m.photo_share == pytest.approx(exp.photo_relevance[m.sketch_anchor, j]) and m.photo_share > 0
    assert len({m.sketch_patch for m in shown}) == len(shown) == len({m.photo_patch for m in shown})
    sims = [m.similarity for m in shown]
    assert sims == sorted(sims, reverse=True)
    # nothing shown where there is neither ink nor content
    exp.sketch_ink = np.zeros_like(exp.sketch_ink)
    assert exp.readable_matches() == []


def test_the_picture_has_colour_scales_and_plain_captions(retriever, golden_images, tmp_path):
    sketch = golden_images["sketch"][0]
    out = tmp_path / "e.png"
    exp = retriever.explain(sketch, golden_images["photo"][0], out=out)
    pixels = np.asarray(Image.open(out).convert("RGB"))
    side = 64 * scale_for(64, 320)
    ramps = {"match": colormap(np.linspace(0.3, 1.0, side)), "attention": colormap(np.linspace(0, 1, side))}
    # the ramp inside its black frame
    found = {name for name, ramp in ramps.items() for row in pixels if np.array_equal(row[13 : 12 + side], ramp[1:])}
    assert found == set(ramps) or (found == {"attention"} and not exp.readable_matches())
    text = " ".join(exp.captions).lower()
    assert "match score" in text and "where the model looks" in text and "low" in text and "high" in text
    for internal in ("<-", "queries", "anchor", "token", "relevance", "kernel"):
        assert internal not in text, f"internal word {internal!r} in the captions"


def test_explainer_stands_alone(tiny_export, golden_images):
    """The explainer room needs only the manifest, the runners and two callables."""
    r = Retriever.load(tiny_export)
    explainer = Explainer(r.export_dir, r.manifest, r.runners, encode=r.encode, stored_tokens=lambda rows: None)
    exp = explainer.explain(golden_images["sketch"][0], golden_images["photo"][0], top=3)
    assert len(exp.readable_matches()) <= 3 and exp.photo_image.shape == (64, 64, 3)
    with pytest.raises(InputError, match="top"):
        explainer.explain(golden_images["sketch"][0], golden_images["photo"][0], top=0)


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


def test_colormap_endpoints():
    assert colormap(np.array([0.0]))[0].tolist() == [0, 0, 4]
    assert colormap(np.array([1.0]))[0].tolist() == [252, 253, 191]
