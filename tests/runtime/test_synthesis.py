"""Synthesis must show a picture: the drawing filled with photo *content*, at a size a person can see."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zse_infer import Retriever
from zse_infer.errors import InputError
from zse_infer.runtime.explain_pictures import source_caption, synthesis_caption
from zse_infer.runtime.synthesis import (
    background_colour,
    components,
    content_mask,
    fill_enclosed,
    ink_mask,
    patch_grid,
    synthesize_patches,
)

PICTURES = Path(__file__).resolve().parents[1] / "data" / "demo_pictures"  # emoji and line icons (see its README)


def _outline_sketch(size=64, box=(12, 12, 52, 52), width=3) -> np.ndarray:
    sketch = np.full((size, size, 3), 255, np.uint8)
    x0, y0, x1, y1 = box
    sketch[y0 : y0 + width, x0:x1] = sketch[y1 - width : y1, x0:x1] = 0
    sketch[y0:y1, x0 : x0 + width] = sketch[y0:y1, x1 - width : x1] = 0
    return sketch


def _object_photo(size=64, colour=(200, 30, 30), box=(16, 20, 48, 44), seed=0) -> np.ndarray:
    """A textured coloured object on a white background (like the demo's emoji photos)."""
    rng = np.random.default_rng(seed)
    photo = np.full((size, size, 3), 255, np.uint8)
    x0, y0, x1, y1 = box
    texture = rng.integers(-40, 40, (y1 - y0, x1 - x0, 3))
    photo[y0:y1, x0:x1] = np.clip(np.array(colour) + texture, 0, 255)
    return photo


def assert_looks_like_a_picture(image: np.ndarray) -> None:
    """Not near-uniform: spread-out pixel values and many distinct colours."""
    assert image.std() > 30, f"pixel std {image.std():.1f}: near-uniform"
    colours = len(np.unique(image.reshape(-1, image.shape[-1]), axis=0))
    assert colours > 50, f"only {colours} distinct colours"


def assert_patches_come_from_photos(result, sketch: np.ndarray, photos, grid: int) -> None:
    """Every replaced patch equals the named patch of the named photo, and that patch has content;
    every kept patch is the sketch's own."""
    got, own = patch_grid(result.image, grid), patch_grid(sketch, grid)
    for i, (k, j, replaced) in enumerate(result.source):
        if replaced:
            assert np.array_equal(got[i], patch_grid(photos[k], grid)[j])
            assert result.photo_content[k][j], f"patch {i} took background patch {j} of photo {k}"
        else:
            assert np.array_equal(got[i], own[i])


def test_masks():
    sketch = _outline_sketch()
    ink = ink_mask(sketch, 8, 300)
    drawing = fill_enclosed(ink, 8)
    assert ink.reshape(8, 8)[1, 1:7].all() and not ink.reshape(8, 8)[3, 3]
    assert drawing.reshape(8, 8)[1:7, 1:7].all() and not drawing.reshape(8, 8)[0].any()
    photo = _object_photo()
    assert background_colour(photo).tolist() == [255, 255, 255]
    content = content_mask(photo, 8).reshape(8, 8)
    assert content[3, 3] and not content[0, 0] and not content[7, 7]
    labels = components(np.array([1, 0, 0, 0, 0, 0, 0, 0, 1], bool), 3)
    assert labels.tolist() == [0, -1, -1, -1, -1, -1, -1, -1, 1]


def test_background_is_the_most_common_border_colour():
    """An object of two colours touching three sides of the frame (as the demo's banknote emoji
    do) covers 60% of the border: the per-channel median of the border would be a green."""
    photo = np.full((64, 64, 3), 255, np.uint8)
    photo[20:, :32] = (40, 160, 40)
    photo[20:, 32:] = (40, 100, 40)
    assert np.median(np.concatenate([photo[0], photo[-1], photo[:, 0], photo[:, -1]]), axis=0).tolist() != [255] * 3
    assert background_colour(photo).tolist() == [255, 255, 255]


def test_synthesis_fills_the_drawing_with_photo_content():
    sketch = _outline_sketch()
    photos = [_object_photo(), _object_photo(colour=(30, 30, 200), seed=1)]
    rng = np.random.default_rng(0)
    evidence = [rng.normal(size=(64, 64)) for _ in photos]
    result = synthesize_patches(sketch, photos, evidence)
    assert result.replaced == 36  # the 6x6 outlined square: strokes and what they enclose
    assert_patches_come_from_photos(result, sketch, photos, 8)
    assert_looks_like_a_picture(result.image[8:56, 8:56])
    # one connected drawing -> one photo, not a patchwork
    assert len({int(k) for k, _, r in result.source if r}) == 1
    ink_only = synthesize_patches(sketch, photos, evidence, ink_only=True)
    assert ink_only.replaced == 20 and (ink_only.image[28:36, 28:36] == 255).all()


def test_prior_keeps_parts_in_place_and_evidence_chooses_nearby():
    """Flat evidence: the top-left corner of the drawing takes a patch from the object's top-left.
    Strong evidence for one patch wins only when it lies near."""
    sketch = _outline_sketch()
    photo = _object_photo(box=(8, 8, 56, 56))
    flat = [np.zeros((64, 64))]
    result = synthesize_patches(sketch, [photo], flat)
    corner = result.source[1 * 8 + 1, 1]
    assert divmod(int(corner), 8) == (1, 1)
    evidence = np.zeros((64, 64))
    evidence[9, 1 * 8 + 2] = 10.0  # the next patch: (1, 2)
    evidence[9, 6 * 8 + 6] = 10.0  # far corner: prior wins
    chosen = synthesize_patches(sketch, [photo], [evidence]).source[9, 1]
    assert divmod(int(chosen), 8) == (1, 2)


def test_synthesis_rejects_bad_arguments():
    sketch = _outline_sketch()
    with pytest.raises(InputError, match="one map per photo"):
        synthesize_patches(sketch, [_object_photo()], [])
    with pytest.raises(InputError, match="prior_width"):
        synthesize_patches(sketch, [_object_photo()], [np.zeros((64, 64))], prior_width=0)


@pytest.fixture
def demo_retriever(tiny_export):
    """The tiny model over the demo's real pictures: emoji photos and line-icon sketches."""
    r = Retriever.load(tiny_export)
    r.index(
        sorted(PICTURES.glob("noto__banknote__*.png")) + sorted(PICTURES.glob("noto__rocket__*.png")), progress=False
    )
    return r


@pytest.mark.parametrize("ink_only", [False, True])
def test_retriever_synthesis_is_a_picture_of_the_photos(demo_retriever, tmp_path, ink_only):
    sketch = PICTURES / "lucide__banknote__banknote__w1p25.png"
    hits = demo_retriever.search(str(sketch), k=3, rerank="all")
    out = tmp_path / "synthesis.png"
    result = demo_retriever.synthesize(str(sketch), hits, out=out, ink_only=ink_only)
    picture = Image.open(out)
    assert picture.width >= 2 * 448 and picture.height >= 448  # sketch and synthesis, each >= 448 px
    grid = 8  # tiny model: 64 px, 8x8 patches
    sketch_image = demo_retriever._explainer_room()._sketch(str(sketch))[1]
    photos = [demo_retriever._explainer_room().photo(h)[1] for h in hits]
    assert_patches_come_from_photos(result, sketch_image, photos, grid)
    assert result.replaced >= 10
    replaced = (
        np.repeat(result.source[:, 2].astype(bool), 64).reshape(grid, grid, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)
    )
    assert_looks_like_a_picture(result.image[replaced])
    # the synthesis is drawn at >= 448 px in the picture (its top-left corner block at the zoom)
    zoom = np.asarray(picture.convert("RGB"))
    scale = -(-448 // 64)
    x0, y0 = 12 + 64 * scale + 24, 40
    assert np.array_equal(zoom[y0 : y0 + 64 * scale : scale, x0 : x0 + 64 * scale : scale], result.image)
    assert result.image_path == str(out) and len(result.names) == 3
    # every count written on the picture is the synthesis's own
    text = " ".join(result.captions)
    assert f"{result.replaced} of the {grid * grid} squares" in text
    for k in range(3):
        assert source_caption(result.taken_from(k), len(result.used_patches(k))) in text


def test_source_captions_say_what_the_outlines_mean():
    """Issue 20: "103 patches from 58 outlined" read as a contradiction. Counted in plain words."""
    assert (
        source_caption(103, 58)
        == "its 58 outlined squares fill 103 squares of the drawing; some are used more than once"
    )
    assert source_caption(5, 5) == "its 5 outlined squares fill 5 squares of the drawing, each once"
    assert source_caption(0, 0).startswith("not used")
    assert synthesis_caption(103, 196, 1, 1) == "the drawing: 103 of the 196 squares, taken from the photo"
    assert synthesis_caption(40, 64, 3, 2).endswith("taken from 2 of the 3 photos")


def test_single_hit_or_photo_is_accepted(demo_retriever):
    sketch = str(PICTURES / "lucide__rocket__rocket__w1p25.png")
    hit = demo_retriever.search(sketch, k=1)[0]
    assert demo_retriever.synthesize(sketch, hit).replaced > 0
    assert demo_retriever.synthesize(sketch, str(PICTURES / "noto__rocket__1f680.png")).names == [
        "noto__rocket__1f680.png"
    ]
    with pytest.raises(InputError, match="at least one"):
        demo_retriever.synthesize(sketch, [])
