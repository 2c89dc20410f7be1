"""On the bundled demo model (exported once, ~30 s): synthesis carries the matched photo's
content, and the explanation marks only strokes and object parts."""

from pathlib import Path

import numpy as np
import pytest

from zse_infer import Retriever
from zse_infer.runtime.synthesis import content_mask, patch_grid

from .test_synthesis import assert_looks_like_a_picture, assert_patches_come_from_photos

DEMO = Path(__file__).resolve().parents[2] / "zse_infer" / "assets" / "demo"
PICTURES = Path(__file__).resolve().parents[1] / "data" / "demo_pictures"  # emoji and line icons (see its README)
CASES = [
    ("lucide__banknote__banknote__w1p25.png", "noto__banknote__1f4b5.png"),
    ("lucide__rocket__rocket__w1p25.png", "noto__rocket__1f680.png"),
    ("phosphor__bell__bell__light.png", "noto__bell__1f514.png"),
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    pytest.importorskip("torch")
    from zse_infer.exporting import export_model

    out = tmp_path_factory.mktemp("demo") / "export"
    export_model(DEMO / "zse_demo.safetensors", out, config="zse_demo", recipe="zse_demo")
    return Retriever.load(out)


@pytest.mark.parametrize("sketch, photo", CASES)
def test_synthesis_is_the_photo_content_in_the_sketch_shape(demo, tmp_path, sketch, photo):
    sketch, photo = str(PICTURES / sketch), str(PICTURES / photo)
    result = demo.synthesize(sketch, [photo], out=tmp_path / "s.png")
    grid = demo.manifest.model.encoder.grid_size
    sketch_image = demo._explainer_room()._sketch(sketch)[1]
    photo_image = demo._explainer_room().photo(photo)[1]
    assert_patches_come_from_photos(result, sketch_image, [photo_image], grid)
    replaced = result.source[:, 2] == 1
    assert replaced.sum() >= 60  # the drawing, strokes and inside (demo: 14x14 patches)
    drawn = patch_grid(result.image, grid)[replaced].reshape(-1, 3)
    assert_looks_like_a_picture(drawn)
    # it carries the photo's content: its colours, on average, are the object's
    content = patch_grid(photo_image, grid)[content_mask(photo_image, grid)].reshape(-1, 3)
    assert np.abs(drawn.mean(axis=0) - content.mean(axis=0)).max() < 40
    assert not (drawn.min(axis=1) > 235).mean() > 0.2  # little blank paper pasted in


def test_explanation_marks_strokes_and_object(demo):
    sketch, photo = (str(PICTURES / CASES[0][0]), str(PICTURES / CASES[0][1]))
    exp = demo.explain(sketch, photo)
    shown = exp.readable_matches()
    grid = exp.sketch_heat.shape[0]
    assert 3 <= len(shown) <= 6
    assert all(exp.sketch_ink[m.sketch_patch[0] * grid + m.sketch_patch[1]] for m in shown)
    assert all(exp.photo_content[m.photo_patch[0] * grid + m.photo_patch[1]] for m in shown)
