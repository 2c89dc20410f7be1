"""The sketch pad and the API docs in headless Chromium, offline (every host name but 127.0.0.1
fails to resolve, so anything fetched from a CDN would be missing): draw strokes with pointer
events, search, see result photos, open an explanation; render /docs (Swagger UI).
Saves screenshots (to $ZSE_SCREENSHOT_DIR when set, else the test's tmp folder).

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; skips, saying which
is missing, only where they cannot be found.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (dev extra)")

CHROMIUM = next(
    (
        p
        for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
        if p and os.path.exists(p)
    ),
    None,
)
DRIVER = next(
    (p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver") or "") if p and os.path.exists(p)), None
)


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM or not DRIVER:
        pytest.skip("no Chromium here: apt-get install -y chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,900",
        # offline: no name resolves but the server's address, so nothing can come from a CDN
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _draw(driver, canvas, strokes, kind):
    """Each stroke as pointer down, moves, up, through the WebDriver actions API (real pointer events)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    size = canvas.size
    pointer = PointerInput(kind, f"{kind}-1")
    actions = ActionBuilder(driver, mouse=pointer)
    for stroke in strokes:
        (x0, y0), rest = stroke[0], stroke[1:]
        # coordinates relative to the canvas centre, from fractions of its size
        at = lambda fx, fy: (int((fx - 0.5) * size["width"]), int((fy - 0.5) * size["height"]))  # noqa: E731
        actions.pointer_action.move_to(canvas, *at(x0, y0)).pointer_down()
        for fx, fy in rest:
            actions.pointer_action.move_to(canvas, *at(fx, fy))
        actions.pointer_action.pointer_up()
    actions.perform()


def test_draw_search_and_explain_in_chromium(browser, server, tmp_path):
    from selenium.webdriver.common.actions.interaction import POINTER_MOUSE, POINTER_PEN, POINTER_TOUCH
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("ZSE_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    browser.get(server + "/")
    canvas = browser.find_element(By.ID, "pad")
    browser.find_element(By.ID, "live").click()  # off: search once, by the button
    circle = [(0.5 + 0.3 * math.cos(t / 12 * math.tau), 0.5 + 0.3 * math.sin(t / 12 * math.tau)) for t in range(13)]
    _draw(browser, canvas, [circle], POINTER_MOUSE)
    _draw(browser, canvas, [[(0.3, 0.3), (0.7, 0.7)]], POINTER_PEN)
    _draw(browser, canvas, [[(0.7, 0.3), (0.3, 0.7)]], POINTER_TOUCH)
    strokes = browser.execute_script("return strokes.length")
    assert strokes == 3, f"pointer events drew {strokes} strokes, expected 3 (mouse, pen, touch)"
    ink = browser.execute_script(
        "const d = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++; return n;"
    )
    assert ink > 500, "the strokes left no ink on the canvas"
    browser.find_element(By.ID, "undo").click()
    assert browser.execute_script("return strokes.length") == 2
    browser.find_element(By.ID, "search").click()
    wait = WebDriverWait(browser, 60)
    wait.until(
        lambda d: d.execute_script(
            "const imgs = [...document.querySelectorAll('#grid .hit img')];"
            "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"
        )
    )
    hits = browser.find_elements(By.CSS_SELECTOR, "#grid .hit")
    assert len(hits) == 9  # k=12 over a 9-photo gallery
    assert "results in" in browser.find_element(By.ID, "status").text
    browser.save_screenshot(str(shots / "sketch_pad_results.png"))
    hits[0].click()
    wait.until(EC.visibility_of_element_located((By.ID, "explain-img")))
    wait.until(
        lambda d: d.execute_script(
            "const i = document.getElementById('explain-img'); return i.complete && i.naturalWidth > 0;"
        )
    )
    assert "relation score" in browser.find_element(By.ID, "explain-title").text
    # the words under the picture say what it shows: numbered markers, not lines (issue 20)
    hint = browser.find_element(By.ID, "explain-hint").text
    assert "same number" in hint and "line" not in hint, hint
    assert "numbered markers" in browser.find_element(By.ID, "explain-img").get_attribute("alt")
    browser.save_screenshot(str(shots / "sketch_pad_explanation.png"))
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def _shots(tmp_path) -> Path:
    shots = Path(os.environ.get("ZSE_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def test_api_docs_render_offline(browser, server, tmp_path):
    """/docs loaded Swagger UI from a CDN and was blank offline (issue 18, item 17)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/docs")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock-summary")) >= 6)
    text = browser.find_element(By.CSS_SELECTOR, ".swagger-ui").text
    for needle in ("/v1/search", "/v1/explain", "/v1/photos", "The k best gallery photos for a sketch"):
        assert needle in text, needle
    assert browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text.startswith("zse-infer")
    browser.save_screenshot(str(_shots(tmp_path) / "api_docs.png"))
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
