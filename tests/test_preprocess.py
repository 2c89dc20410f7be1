import io

import numpy as np
import pytest
from PIL import Image

from zse_infer.config import PreprocessConfig
from zse_infer.errors import BlankSketchError, ConfigError, ImageError, ImageNotFoundError, InputError, ZseError
from zse_infer.preprocess import load_photo, load_sketch


def test_sketch_pixels_match_official(golden, golden_images):
    for i, path in enumerate(golden_images["sketch"]):
        assert np.abs(load_sketch(path) - golden["sketch_pixels"][i]).max() <= 1e-6


def test_photo_pixels_match_official(golden, golden_images):
    for i, path in enumerate(golden_images["photo"]):
        assert np.abs(load_photo(path) - golden["photo_pixels"][i]).max() <= 1e-6


@pytest.mark.parametrize("loader, kind", [(load_sketch, "sketch"), (load_photo, "photo")])
def test_in_memory_sources_match_path(loader, kind, golden_images):
    path = golden_images[kind][1]  # a PNG: lossless, so every decoder agrees
    expected = loader(path)
    data = path.read_bytes()
    assert np.array_equal(loader(data), expected)
    assert np.array_equal(loader(io.BytesIO(data)), expected)
    assert np.array_equal(loader(str(path)), expected)
    pil = Image.open(path)
    assert np.abs(loader(pil) - expected).max() <= 1e-6
    assert np.abs(loader(np.asarray(pil)) - expected).max() <= 1e-6


def test_output_is_float32_chw(golden_images):
    x = load_sketch(golden_images["sketch"][0])
    assert x.dtype == np.float32 and x.shape == (3, 224, 224)
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_other_sizes_follow_config(golden_images):
    cfg = PreprocessConfig(kind="sketch", size=64)
    assert load_sketch(golden_images["sketch"][0], cfg).shape == (3, 64, 64)
    assert load_photo(golden_images["photo"][0], PreprocessConfig(kind="photo", size=112)).shape == (3, 112, 112)


def test_tall_and_wide_sketches_are_padded_to_square():
    for shape in [(300, 60), (60, 300)]:
        img = np.full((*shape, 3), 255, np.uint8)
        img[20:-20, 20:-20] = 0
        x = load_sketch(img)
        assert x.shape == (3, 224, 224)
        assert x.max() == 1.0  # padded with the image's maximum (white)


def test_missing_file(tmp_path):
    with pytest.raises(ImageNotFoundError, match=r"nope\.png"):
        load_sketch(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError):  # also a built-in FileNotFoundError
        load_photo(tmp_path / "nope.jpg")


def test_zero_byte_file(tmp_path):
    f = tmp_path / "empty.png"
    f.write_bytes(b"")
    for loader in (load_sketch, load_photo):
        with pytest.raises(ImageError, match=r"empty\.png.*0 bytes"):
            loader(f)


def test_not_an_image(tmp_path):
    f = tmp_path / "notes.jpg"
    f.write_text("this is not an image")
    for loader in (load_sketch, load_photo):
        with pytest.raises(ImageError, match=r"notes\.jpg"):
            loader(f)


def test_text_file_named_png_names_the_file_and_what_was_expected(tmp_path):
    f = tmp_path / "drawing.png"
    f.write_text("hello, not a picture")
    for loader in (load_sketch, load_photo):
        with pytest.raises(ImageError) as err:
            loader(f)
        message = str(err.value)
        assert str(f) in message and "BytesIO" not in message
        assert (
            "received text" in message and "'hello, not a picture'" in message and "expected an image file" in message
        )
    with pytest.raises(ImageError, match="binary data") as err:
        load_photo(bytes(range(200, 250)))
    assert "BytesIO" not in str(err.value)


def test_truncated_image(tmp_path, golden_images):
    data = golden_images["photo"][0].read_bytes()
    f = tmp_path / "cut.jpg"
    f.write_bytes(data[: len(data) // 2])
    for loader in (load_sketch, load_photo):
        with pytest.raises(ImageError, match=r"cut\.jpg"):
            loader(f)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="directory"):
        load_photo(tmp_path)


def test_blank_sketch(tmp_path):
    f = tmp_path / "blank.png"
    Image.new("RGB", (50, 40), "white").save(f)
    with pytest.raises(BlankSketchError, match=r"blank\.png.*no ink"):
        load_sketch(f)
    # a blank *photo* is a valid photo
    assert load_photo(f).shape == (3, 224, 224)


def test_bad_arrays_and_types():
    with pytest.raises(InputError, match="float32"):
        load_sketch(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InputError, match=r"\(10, 10, 2\)"):
        load_photo(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(InputError, match="int"):
        load_photo(12)


def test_config_kind_is_checked(golden_images):
    with pytest.raises(ConfigError, match="photo"):
        load_sketch(golden_images["sketch"][0], PreprocessConfig(kind="photo"))


def test_errors_share_one_base():
    assert issubclass(BlankSketchError, ZseError)
