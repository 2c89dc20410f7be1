"""`zse explain` / `zse synthesize`: the messages say what the pictures show."""

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from zse_infer.cli.main import main

PICTURES = Path(__file__).resolve().parents[1] / "data" / "demo_pictures"  # emoji and line icons (see its README)
SKETCH = str(PICTURES / "lucide__banknote__banknote__w1p25.png")
PHOTOS = [str(PICTURES / "noto__banknote__1f4b5.png"), str(PICTURES / "noto__rocket__1f680.png")]


def test_synthesize_names_the_photos_it_used(tiny_export, tmp_path):
    out = tmp_path / "s.png"
    result = CliRunner().invoke(main, ["synthesize", str(tiny_export), SKETCH, *PHOTOS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith(f"{out}: ") and "sketch patches (drawing patches) redrawn from" in line
    assert "of 2 photo(s): noto__" in line and "196" not in line  # tiny model: 64 patches
    assert Image.open(out).width >= 2 * 448
    ink = CliRunner().invoke(main, ["synthesize", str(tiny_export), SKETCH, PHOTOS[0], "--ink-only", "--out", str(out)])
    assert ink.exit_code == 0 and "(stroke patches)" in ink.output and "of 1 photo(s)" in ink.output


def test_explain_says_what_is_numbered(tiny_export, tmp_path):
    out, js = tmp_path / "e.png", tmp_path / "e.json"
    result = CliRunner().invoke(
        main, ["explain", str(tiny_export), SKETCH, PHOTOS[0], "--out", str(out), "--top", "3", "--json", str(js)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out}: relation score ") and "(0 = unrelated, 1 = sure)" in result.output
    shown = json.loads(js.read_text())["shown_matches"]
    assert len(shown) <= 3
    if shown:
        assert f"{len(shown)} matched parts numbered in the picture" in result.output
    else:
        assert "no match falls on a stroke" in result.output
