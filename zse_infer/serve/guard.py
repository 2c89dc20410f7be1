"""Who may ask: the Host a request names (DNS rebinding), and where a browser's write comes from
(cross-origin form posts). Why and how: docs/serve-security.md."""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import ServeError, forbidden, json_response
from .settings import ServeSettings

#: what Sec-Fetch-Site says for a request from the server's own pages, or typed by the user
_OWN = ("same-origin", "none")


def _host_name(host: str) -> str:
    """'example.com:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class HostCheck:
    """ASGI middleware: 400 for a Host header outside ``allowed_hosts`` (names, without ports)."""

    def __init__(self, app, allowed_hosts: tuple[str, ...]):
        self.app = app
        self.allowed = {_host_name(h) for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if _host_name(host) not in self.allowed:
                message = (
                    f"Host: received {host[:100]!r}, expected one of {sorted(self.allowed)} "
                    "(start the server with --allowed-host NAME to answer another name)"
                )
                return await json_response(ServeError(400, "invalid_host", message))(scope, receive, send)
        await self.app(scope, receive, send)


def check_write_origin(headers, settings: ServeSettings) -> None:
    """Refuse (403) a write a browser sends from another origin, unless a token is required."""
    if settings.token is not None:
        return
    origin = headers.get("origin")
    if origin is not None and origin in settings.cors:
        return
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in _OWN:
        refused = f"Sec-Fetch-Site: {site[:40]}"
    elif origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        refused = f"Origin: {origin[:100]}"
    else:
        return
    raise forbidden(
        f"cross-origin write refused ({refused}): writes come from this server's own pages, "
        "from an origin named with --cors, or with --token"
    )
