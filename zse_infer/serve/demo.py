"""``zse-demo --serve``: after the demo run, its gallery in the sketch pad page."""

from __future__ import annotations

import logging
import threading
import webbrowser

from .settings import ServeSettings, auto_max_batch

_log = logging.getLogger(__name__)


def serve_demo(retriever, host: str = "127.0.0.1", port: int = 8000, try_drawing: tuple[str, ...] = ()) -> None:
    """Serve the demo's gallery, naming ``try_drawing`` on the page, and open it in a browser if there is one."""
    from . import run

    url = f"http://{host}:{port}/"
    _log.warning("serving the demo gallery (%d photos) on %s; Ctrl+C stops", len(retriever), url)
    threading.Timer(1.5, webbrowser.open, args=(url,)).start()  # once uvicorn listens; a no-op without a browser
    settings = ServeSettings(title="zse-infer demo", max_batch=auto_max_batch(retriever), try_drawing=try_drawing)
    run(retriever, settings, host=host, port=port)
