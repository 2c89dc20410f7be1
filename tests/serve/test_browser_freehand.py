"""The sketch pad drawn by people: Quick, Draw! drawings of the unseen concepts in the bundled demo
gallery, replayed as real pointer events on the pad's canvas in headless Chromium, searched with the
bundled model. The right concept must be among the first 12 results for at least :data:`SHARE` of them.

The drawings (Google's Quick, Draw!, CC BY 4.0) are read from the shared folder beside the checkout
(``../shared/quickdraw``, as ``tools.quickdraw`` reads them; never copied into the repository); the
test skips, saying why, where they or Chromium are absent. The model is the bundled one as
``zse-demo`` runs it without torch: its shipped ONNX graphs (``zse_infer/assets/demo/export``).
The recorded drawings carry no timestamps, so each is replayed at a quick hand's speed
(:data:`SPEED` canvas pixels a second). Each drawing is placed on the canvas as
:func:`zse_infer.strokes.fit_strokes` places it, and the canvas the page uploads is checked against
:func:`zse_infer.strokes.strokes_to_rgb` (what training and evaluation show the model), so the pad and
the evaluation cannot drift apart. Screenshots (one per concept) and ``summary.json`` (each
drawing's concept, whether it was found, its first 12 results) go to $ZSE_SCREENSHOT_DIR when set,
else the test's temporary folder.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from .conftest import running_server
from .test_browser import browser  # noqa: F401 - the same headless Chromium fixture

pytestmark = pytest.mark.slow  # replays 20 drawings stroke by stroke (about a minute)

# Of the replayed drawings, this share must have their concept in the first 12 results. Measured with
# the bundled model at its recorded depth and blend: 0.65 (13 of 20; docs/freehand.md); the bar leaves a
# margin of 4 drawings and is still 2.5 times what a random ranking finds (3 photos among 189: 0.18).
SHARE = 0.45
PER_CONCEPT = 4  # drawings replayed per concept (seeded choice)
SPEED = 1200.0  # canvas pixels a second: a quick hand (Quick, Draw! gives 20 s a drawing), keeps the test near a minute
K = 12


@pytest.fixture(scope="module")
def drawings():
    """(concept, drawing) for PER_CONCEPT Quick, Draw! drawings of each unseen concept in the bundled gallery."""
    from tools import quickdraw

    if not (quickdraw.DRAWINGS.is_file() and (quickdraw.SHARED / "demo-data" / "reserved.json").is_file()):
        pytest.skip(f"{quickdraw.QUICKDRAW} or the reserved list absent: the shared data sits beside the checkout")
    from zse_infer.demo.assets import load_demo_assets

    in_gallery = {g.label for g in load_demo_assets().gallery}
    used = [
        (d, c)
        for d, c, side in quickdraw.labelled(quickdraw.load_drawings(), quickdraw.mapping())
        if side == "unseen" and c in in_gallery
    ]
    rng = np.random.default_rng(0)
    out = []
    for concept in sorted({c for _, c in used}):
        mine = [d for d, c in used if c == concept]
        out += [
            (concept, mine[i]) for i in sorted(rng.choice(len(mine), size=min(PER_CONCEPT, len(mine)), replace=False))
        ]
    assert len({c for c, _ in out}) >= 3, "fewer than 3 unseen demo concepts have Quick, Draw! drawings"
    return out


@pytest.fixture(scope="module")
def demo_server(drawings, tmp_path_factory):
    """The bundled model (the demo's shipped fp32 graphs) over the bundled gallery, the page naming its concepts."""
    from zse_infer.demo.assets import load_demo_assets
    from zse_infer.demo.cli import _copy_shipped
    from zse_infer.runtime.retriever import Retriever

    root = tmp_path_factory.mktemp("freehand")
    assets = load_demo_assets()
    export = _copy_shipped(assets, root / "export")
    retriever = Retriever.load(export, gallery=root / "gallery", create=True)
    # Ids that are not paths: the server shows them as they are (a path id would be made opaque, issue 18).
    retriever.index([str(g.path) for g in assets.gallery], ids=[g.path.name for g in assets.gallery], progress=False)
    labels = {g.path.name: g.label for g in assets.gallery}
    names = tuple(sorted(set(labels.values())))
    with running_server(retriever, try_drawing=names) as (base, _):
        yield base, labels, names


def _replay(driver, canvas, points: list[np.ndarray]) -> None:
    """Each stroke as pointer down, moves at SPEED, up: real pointer events through WebDriver."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.interaction import POINTER_MOUSE
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    scale = canvas.size["width"] / driver.execute_script("return pad.width")  # CSS px per canvas px
    half = driver.execute_script("return pad.width") / 2
    pointer = PointerInput(POINTER_MOUSE, "mouse")
    actions = ActionBuilder(driver, mouse=pointer, duration=0)

    def at(p):  # offsets from the canvas centre, in CSS pixels
        return round((p[0] - half) * scale), round((p[1] - half) * scale)

    for stroke in points:
        x, y = at(stroke[0])
        pointer.create_pointer_move(duration=0, x=x, y=y, origin=canvas)
        pointer.create_pointer_down(button=0)
        for a, b in itertools.pairwise(stroke):
            ms = int(1000 * math.dist(a, b) / SPEED)
            x, y = at(b)
            pointer.create_pointer_move(duration=ms, x=x, y=y, origin=canvas)
        pointer.create_pointer_up(button=0)
    actions.perform()


def _uploaded_canvas(driver) -> np.ndarray:
    """The canvas as the page uploads it (PNG), decoded to RGB."""
    import io

    from PIL import Image

    data = driver.execute_script("return pad.toDataURL('image/png')").split(",", 1)[1]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_people_s_drawings_find_their_concept_on_the_pad(browser, demo_server, drawings, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from zse_infer.config import get_config
    from zse_infer.preprocess import sketch_to_rgb
    from zse_infer.strokes import fit_strokes, strokes_to_rgb

    base, labels, names = demo_server
    shots = Path(os.environ.get("ZSE_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    pre = get_config("zse_demo").preprocess["sketch"]
    browser.get(base + "/")
    hint = browser.find_element(By.ID, "try")
    assert hint.is_displayed() and all(n in hint.text for n in names), hint.text  # the page says what the gallery holds
    browser.find_element(By.ID, "live").click()  # off: one search per drawing, by the button
    canvas = browser.find_element(By.ID, "pad")
    wait = WebDriverWait(browser, 60)
    found, agreement, shown, summary = [], [], set(), []
    for concept, drawing in drawings:
        browser.find_element(By.ID, "clear").click()
        points = fit_strokes(drawing.strokes)
        _replay(browser, canvas, points)
        assert browser.execute_script("return strokes.length") == len(points)
        # What the page uploads, preprocessed by the server's rules, against what the model trained on.
        on_pad = sketch_to_rgb(_uploaded_canvas(browser), pre)[..., 0] < 128
        drawn = strokes_to_rgb(drawing.strokes, pre)[..., 0] < 128
        agreement.append((on_pad & drawn).sum() / max(1, (on_pad | drawn).sum()))
        browser.execute_script("document.getElementById('grid').replaceChildren()")
        browser.find_element(By.ID, "search").click()
        wait.until(
            lambda d: d.execute_script(
                "const imgs = [...document.querySelectorAll('#grid .hit img')];"
                "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"
            )
        )
        ids = [h.get_attribute("data-id") for h in browser.find_elements(By.CSS_SELECTOR, "#grid .hit")]
        assert len(ids) == K
        found.append(concept in {labels[i] for i in ids})
        summary.append(
            {"concept": concept, "key_id": drawing.key_id, "found": found[-1], "results": [labels[i] for i in ids]}
        )
        if concept not in shown:  # one screenshot per concept
            shown.add(concept)
            browser.save_screenshot(
                str(shots / f"freehand_{concept.replace(' ', '_')}_{'found' if found[-1] else 'missed'}.png")
            )
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    # Thin anti-aliased lines drawn by two renderers (Chromium, OpenCV) never match pixel for pixel: the
    # ink overlaps by more than a half where the strokes are the same, by far less where they are not.
    assert np.median(agreement) > 0.5, agreement
    share = float(np.mean(found))
    (shots / "summary.json").write_text(json.dumps({"share": share, "drawings": summary}, indent=1))
    per_concept = {c: sum(f for (cc, _), f in zip(drawings, found, strict=False) if cc == c) for c in sorted(shown)}
    assert share >= SHARE, f"{share:.2f} of {len(found)} drawings found their concept in the first {K}: {per_concept}"
