"""The page names what the gallery holds ("Try drawing: ...") when the server is told, escaped as text."""

from __future__ import annotations

import pytest

from .conftest import httpx, running_server


def _page(tiny_export, serve_gallery, **settings) -> str:
    from zse_infer.runtime.retriever import Retriever

    with running_server(Retriever.load(tiny_export, gallery=serve_gallery), **settings) as (base, _):
        response = httpx.get(base + "/", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    return response.text


def test_page_names_the_gallery_concepts(tiny_export, serve_gallery):
    page = _page(tiny_export, serve_gallery, try_drawing=("apple", "bicycle", "<img src=x onerror=alert(1)>"))
    assert '<p id="try" class="hint">Try drawing: apple, bicycle, &lt;img src=x onerror=alert(1)&gt;.</p>' in page
    assert "<img src=x" not in page  # a concept name is text, never markup


def test_page_without_names_keeps_the_hint_hidden(tiny_export, serve_gallery):
    page = _page(tiny_export, serve_gallery)
    assert '<p id="try" class="hint" hidden></p>' in page and "Try drawing" not in page


def test_a_bare_string_is_refused():
    from zse_infer.errors import InputError
    from zse_infer.serve import ServeSettings

    with pytest.raises(InputError, match="try_drawing: received 'cat'"):
        ServeSettings(try_drawing="cat")
