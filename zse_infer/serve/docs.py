"""``/docs`` (Swagger UI) from the ``fastapi-offline`` package's files, so it works offline.
(No ``/redoc``: ReDoc's page loads its logo from a CDN whatever it is given.)"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request  # imported by app.py only, after the serve extra was checked

from ..errors import require

ASSETS = "/docs-assets"


def add_offline_docs(app) -> None:
    """Serve the docs page of ``app`` (made with ``docs_url=None, redoc_url=None``) from local assets."""
    offline = require("fastapi_offline", "serve", "zse serve's /docs page")
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount(ASSETS, StaticFiles(directory=Path(offline.__file__).parent / "static"), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request):
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        )
