"""``zse serve``: one loaded model behind an HTTP API, with dynamic batching and a sketch pad page.

FastAPI and uvicorn come with the ``serve`` extra; they are imported only by
:mod:`.app` and :mod:`.server`, so importing this package costs nothing.

Concurrency model: the :class:`~zse_infer.runtime.retriever.Retriever` is
confined to ONE model thread (a single-worker executor). Every call into it
(batched searches, explanations, indexing, deletes) runs there, one at a time,
so the server never calls it from two threads at once. The event loop only
parses requests and awaits futures; image decoding runs in a separate
thread pool.

Limits and defaults against hostile or careless clients: docs/serve-security.md.
"""

from .settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "run"]


def create_app(retriever, settings: ServeSettings | None = None):
    """The ASGI app serving ``retriever`` (see :func:`zse_infer.serve.app.create_app`)."""
    from .app import create_app as _create

    return _create(retriever, settings or ServeSettings())


def run(retriever, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve ``retriever`` with uvicorn, every limit in place (:mod:`.server`), until interrupted."""
    from .server import run as _run

    _run(retriever, settings, host=host, port=port, log_level=log_level)
