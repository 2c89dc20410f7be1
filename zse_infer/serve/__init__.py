"""``zse serve`` (docs/serve.md); FastAPI and uvicorn (the ``serve`` extra) are imported only by .app and .server."""

from .settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "run"]


def create_app(retriever, settings: ServeSettings | None = None):
    """The ASGI app serving ``retriever`` (see :func:`zse_infer.serve.app.create_app`)."""
    from .app import create_app as _create

    return _create(retriever, settings or ServeSettings())


def run(retriever, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve ``retriever`` with uvicorn, every limit in place (:mod:`.server`), until interrupted."""
    from .server import build_server

    build_server(retriever, settings, host, port, log_level)[0].run()
