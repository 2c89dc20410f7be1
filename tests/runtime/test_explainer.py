import numpy as np
import pytest
from PIL import Image

from tests.support.images import make_photo_files
from zse_infer import Retriever
from zse_infer.errors import InputError
from zse_infer.runtime.explain_pictures import (
    attention_caption,
    conspicuous_square,
    match_caption,
    render_explanation,
    scale_for,
)
from zse_infer.runtime.explainer import Explainer, colormap


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


def test_the_picture_has_an_attention_scale_and_plain_captions(retriever, golden_images, tmp_path):
    sketch = golden_images["sketch"][0]
    out = tmp_path / "e.png"
    exp = retriever.explain(sketch, golden_images["photo"][0], out=out)
    pixels = np.asarray(Image.open(out).convert("RGB"))
    side = 64 * scale_for(64, 320)
    ramp = colormap(np.linspace(0, 1, side))
    assert any(np.array_equal(row[13 : 12 + side], ramp[1:]) for row in pixels)  # the ramp inside its black frame
    text = " ".join(exp.captions).lower()
    assert "relation score" in text and "where the model looks" in text and "low" in text and "high" in text
    for internal in ("<-", "queries", "anchor", "token", "relevance", "kernel", "cosine", "feature"):
        assert internal not in text, f"internal word {internal!r} in the captions"


def test_match_caption_says_how_alike_in_words():
    """Issue 20: a colour scale 0.41-0.45 labelled "feature cosine" made six near-equal matches look
    very different. The caption now says in words how alike they are."""
    close = match_caption([0.449, 0.44, 0.44, 0.42, 0.415, 0.407])
    assert "about equally alike (0.45 to 0.41" in close and "1 means the same" in close
    spread = match_caption([0.9, 0.7, 0.5])
    assert "falls from 0.90 (1) to 0.50 (3)" in spread and "equally" not in spread
    assert "most alike (0.62" in match_caption([0.62])
    assert "no match" in match_caption([]).lower()


def _alembic_like_heat(grid: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """The demo's alembic explanation, measured: the object covers 40% of the photo and draws 49% of
    the attention; one background square alone draws 36%; the rest is spread over the background."""
    content = np.zeros(grid * grid, bool)
    content[np.arange(grid * grid) % grid < int(0.4 * grid * grid) // grid] = True  # left columns: the object
    heat = np.zeros(grid * grid)
    heat[content] = 0.49 / content.sum()
    background = np.flatnonzero(~content)
    heat[background] = 0.15 / (len(background) - 1)
    heat[background[-1]] = 0.36
    return heat.reshape(grid, grid), content


def test_attention_caption_states_the_shares_it_draws():
    """Issue 20: "(most of it on blank background here)" under a heat map whose bright parts sit on
    the object. The caption now gives the shares the picture shows and names the one square that
    alone draws a large share (outlined in the picture), wherever it is."""
    heat, content = _alembic_like_heat()
    text = attention_caption(
        heat, content, "squares showing the object", "on the object", "on blank background", "photo"
    )
    assert text.startswith(
        f"{heat.reshape(-1)[content].sum():.0%} of it falls on squares showing the object "
        f"({content.mean():.0%} of the photo)"
    )
    assert "the outlined square alone draws 36%, on blank background" in text
    assert conspicuous_square(heat) == int(np.argmax(heat))
    spread = np.where(content, 0.9 / content.sum(), 0.1 / (~content).sum()).reshape(heat.shape)
    text = attention_caption(
        spread, content, "squares showing the object", "on the object", "on blank background", "photo"
    )
    assert text.startswith("90% of it falls on squares showing the object") and "background" not in text
    assert conspicuous_square(spread) is None


def test_the_picture_outlines_the_square_its_caption_names(retriever, golden_images, tmp_path):
    exp = retriever.explain(golden_images["sketch"][0], golden_images["photo"][0])
    grid = exp.photo_heat.shape[0]
    exp.photo_heat, exp.photo_content = _alembic_like_heat(grid)
    render_explanation(exp, tmp_path / "e.png")
    text = " ".join(exp.captions)
    assert "blank background here" not in text and "outlined square alone draws 36%, on blank background" in text
    # the outline: on the photo's heat map (right column), white just left and right of the named
    # square's column, for a square's height, where the canvas between them is not white
    pixels = np.asarray(Image.open(tmp_path / "e.png").convert("RGB"))
    side = 64 * scale_for(64, 320)
    cell = side / grid
    c = conspicuous_square(exp.photo_heat) % grid
    left, right, middle = (
        int(12 + side + 24 + c * cell) - 2,
        int(12 + side + 24 + (c + 1) * cell) + 1,
        int(12 + side + 24 + (c + 0.5) * cell),
    )
    white = (pixels == 255).all(axis=2)
    outlined = white[:, left] & white[:, right] & ~white[:, middle]
    assert outlined.sum() >= cell - 2, "no outline around the square the caption names"


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
    out = retriever._explainer_room().outputs(sketch, photo)
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
