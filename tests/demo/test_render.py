"""Rendering helpers: file naming, stroke variation, Noto sprite splitting (no network, no cache)."""

import pytest

from zse_infer.demo import render
from zse_infer.demo.concepts import Concept
from zse_infer.demo.fetch import package_dir
from zse_infer.demo.sources import SOURCES
from zse_infer.errors import InputError

ICON = '<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><path d="M4 4h16v16H4z"/></svg>'


def test_stroke_width_is_replaced_once():
    assert 'stroke-width="1.25"' in render._set_stroke(ICON, 1.25)
    with pytest.raises(InputError):
        render._set_stroke("<svg/>", 1.0)


def test_code_point_spellings():
    assert render._code_point_names("2708") == ["2708", "2708-FE0F"]
    assert render._code_point_names("2764-FE0F") == ["2764-FE0F", "2764"]


def _fake_cache(tmp_path):
    """The package layout the renderer reads, with one cat in each source."""
    cat_svg = ICON.replace('stroke-width="2"', 'stroke-width="2" id="x"')
    (package_dir(tmp_path, SOURCES["twemoji"])).mkdir(parents=True)
    (package_dir(tmp_path, SOURCES["twemoji"]) / "1f431.svg").write_text(ICON)
    sprite = package_dir(tmp_path, SOURCES["noto"]) / "sprites"
    sprite.mkdir(parents=True)
    sprite.joinpath("all.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><svg id="1F431" viewBox="0 0 128 128"><circle cx="64" cy="64" r="40"/></svg>'
        '<svg id="1F436" viewBox="0 0 128 128"><rect width="9" height="9"/></svg></svg>'
    )
    tabler = package_dir(tmp_path, SOURCES["tabler"]) / "icons" / "outline"
    tabler.mkdir(parents=True)
    (tabler / "cat.svg").write_text(cat_svg)
    return tmp_path


def test_drawings_of_a_concept(tmp_path):
    cache = _fake_cache(tmp_path)
    cat = Concept("cat", ("cat face",), ("1F431",), "Animals & Nature", "animal-mammal", {"tabler": ("cat",)})
    found = list(render.drawings(cache, cat, ("twemoji", "noto", "tabler", "lucide")))
    assert [(d.source, d.variant) for d in found] == [
        ("twemoji", ""), ("noto", ""), ("tabler", "w1"), ("tabler", "w1p25"), ("tabler", "w1p5")
    ]
    noto = found[1]
    assert 'id="1F431"' in noto.svg and "rect" not in noto.svg  # one sprite element, not its neighbour
    assert found[2].relpath == "tabler/cat__cat__w1.png"
    assert found[0].modality == "photo" and found[2].modality == "sketch"


def test_rasterise_gives_white_background_png():
    pytest.importorskip("resvg_py")
    rgb = render.rasterise_rgb(ICON.replace("currentColor", "#000000"), 32)
    assert rgb.shape == (32, 32, 3)
    assert rgb[16, 16].tolist() == [255, 255, 255] and rgb.min() < 128
