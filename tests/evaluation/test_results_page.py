"""Results page and PNG: a title, a legend that matches what is drawn, every label whole."""

import numpy as np
import pytest
from PIL import Image

from zse_infer.evaluation.results_page import CORRECT, THUMB, WRONG, QueryResult, write_results_grid, write_results_page
from zse_infer.runtime.explain_pictures import font as explain_font
from zse_infer.runtime.explain_pictures import wrap_text
from zse_infer.runtime.retriever import Hit

LONG = "car (automobile/taxi/police car)"


def _results(tmp_path, labelled=True):
    paths = []
    for i, colour in enumerate(((200, 30, 30), (30, 30, 200), (30, 160, 30))):
        p = tmp_path / f"photo{i}.png"
        Image.new("RGB", (64, 64), colour).save(p)
        paths.append(str(p))
    sketch = tmp_path / "sketch.png"
    Image.new("RGB", (64, 64), "white").save(sketch)
    hits = [
        Hit(id=p, path=p, score=0.9 - 0.1 * i, rank=i + 1, stage=2 if i < 2 else 1, row=i) for i, p in enumerate(paths)
    ]
    labels = {paths[0]: LONG, paths[1]: "tiger", paths[2]: "a-very-long-single-word-label-without-any-spaces-at-all"}
    return [QueryResult(str(sketch), hits, LONG if labelled else None)], labels


@pytest.mark.parametrize("text", [LONG, "tiger", "a-very-long-single-word-label-without-any-spaces-at-all", ""])
def test_wrap_keeps_every_character_within_the_width(text):
    font = explain_font(12)
    lines = wrap_text(text, font, THUMB)
    assert all(font.getlength(line) <= THUMB for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_page_legend_matches_the_frames(tmp_path):
    results, labels = _results(tmp_path)
    page = write_results_page(tmp_path / "r.html", results, labels, title="T1", subtitle="S1").read_text()
    assert "<h1>T1</h1>" in page and "S1" in page and "green frame" in page and "red frame" in page
    assert 'hit correct"' in page and 'hit wrong"' in page and LONG in page
    unlabelled = write_results_page(tmp_path / "u.html", *_results(tmp_path, labelled=False)).read_text()
    assert "green frame" not in unlabelled and "red frame" not in unlabelled and "no frames" in unlabelled
    assert 'hit correct"' not in unlabelled and 'hit wrong"' not in unlabelled


def test_grid_has_title_legend_and_frames_only_where_drawn(tmp_path):
    results, labels = _results(tmp_path)
    png = np.asarray(Image.open(write_results_grid(tmp_path / "r.png", results, labels, title="Title")).convert("RGB"))
    top_rows = png[:30]
    assert (top_rows < 100).all(axis=2).any(), "no dark title text at the top"
    colours = {tuple(c) for c in png.reshape(-1, 3)}
    assert CORRECT in colours and WRONG in colours  # frames (and their legend swatches) drawn
    plain = np.asarray(
        Image.open(write_results_grid(tmp_path / "u.png", *_results(tmp_path, labelled=False))).convert("RGB")
    )
    plain_colours = {tuple(c) for c in plain.reshape(-1, 3)}
    assert CORRECT not in plain_colours and WRONG not in plain_colours


def test_page_fits_1280_px_at_k_10(tmp_path):
    """Issue 20: ``zse search --page --k 10`` was wider than a 1280 px window (fixed 112 px table
    cells). Measured in Chromium: the page never scrolls sideways, at 1280 px and on a phone."""
    import os
    import shutil

    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (dev extra)")
    chromium = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and os.path.exists(p)), None)
    driver_path = next(
        (p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver") or "") if p and os.path.exists(p)), None
    )
    if not chromium or not driver_path:
        pytest.skip("no Chromium here: apt-get install -y chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    results, labels = _results(tmp_path)
    hits = [
        Hit(id=f"{h.id}#{i}", path=h.path, score=h.score, rank=i + 1, stage=2, row=i)
        for i, h in enumerate(results[0].hits * 4)
    ][:10]
    page = write_results_page(
        tmp_path / "k10.html",
        [QueryResult(results[0].sketch, hits, LONG)] * 3,
        labels,
        subtitle="a long subtitle " * 40,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        for width in (1280, 400):
            driver.set_window_size(width, 900)
            driver.get(page.as_uri())
            inner, scroll = driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth]")
            assert scroll <= inner, f"{width} px window: the page is {scroll} px wide"
    finally:
        driver.quit()


def test_thumbnails_take_every_bytes_like_source(tmp_path):
    from zse_infer.evaluation.results_page import _thumbnail

    buffer = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer)
    data = buffer.read_bytes()
    # a memoryview was once handed to Path() (TypeError)
    for source in (data, bytearray(data), memoryview(data), str(buffer)):
        assert _thumbnail(source, 64).size == (64, 64)
