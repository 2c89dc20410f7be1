"""The one parser of gallery locations: a local folder, a ``file://`` URI on this host, or object storage (Lance, with
``storage_options``; docs/cluster.md). Other schemes are refused: a URI must never become a local folder ``s3:``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from ...errors import GalleryError, InputError

# A URI scheme (RFC 3986) of two or more characters (one is a Windows drive, 'C:/') then ':/', not '://':
# pathlib (and so click's Path type) collapses 's3://bucket' into 's3:/bucket'.
URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):/+")

#: object-storage schemes Lance opens (pylance 14): the gallery's data lives there
OBJECT_SCHEMES = ("s3", "s3+ddb", "gs", "az")


@dataclass(frozen=True)
class GalleryLocation:
    """``uri``: what Lance opens (an absolute local path or ``scheme://bucket/prefix``, no trailing slash); ``local``:
    the folder of a local gallery (None on object storage); ``storage_options``: the caller's, for the object store."""

    uri: str
    local: Path | None
    storage_options: dict[str, str] = field(default_factory=dict, compare=False)

    def join(self, *parts: str) -> str:
        """The URI (or local path) of ``parts`` below the gallery."""
        if self.local is not None:
            return str(self.local.joinpath(*parts))
        base, _, query = self.uri.partition("?")  # s3+ddb://bucket/g?ddbTableName=...: the query stays last
        return "/".join([base, *parts]) + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.uri


def storage_options_from_pairs(pairs: list[str] | tuple[str, ...], what: str = "--storage-option") -> dict[str, str]:
    """``["KEY=VALUE", ...]`` (the CLI's repeatable option) as a mapping; InputError naming the bad pair."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{what}: received {pair!r}, expected KEY=VALUE (e.g. aws_endpoint=http://127.0.0.1:9000)")
        options[key.strip()] = value
    return options


def gallery_location(
    location: str | os.PathLike | GalleryLocation, storage_options: Mapping[str, str] | None = None
) -> GalleryLocation:
    """Parse ``location`` (GalleryError: a scheme unfit for galleries); ``storage_options`` replace a parsed one's."""
    if isinstance(location, GalleryLocation):
        if storage_options is None:
            return location
        return GalleryLocation(location.uri, location.local, {str(k): str(v) for k, v in storage_options.items()})
    options = {str(k): str(v) for k, v in (storage_options or {}).items()}
    text = os.fsdecode(os.fspath(location))
    match = URI_SCHEME.match(text)
    if match is None:
        return GalleryLocation(str(Path(text).absolute()), Path(text).absolute(), options)
    scheme = match.group(1).lower()
    if scheme == "file":
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise GalleryError(f"{text}: a file:// URI on another host ({parsed.netloc}); give a local folder")
        local = Path(unquote(parsed.path)).absolute()
        return GalleryLocation(str(local), local, options)
    if scheme not in OBJECT_SCHEMES:
        raise GalleryError(
            f"{text}: received a {scheme}:// URI, expected a local folder or one of "
            + ", ".join(f"{s}://" for s in OBJECT_SCHEMES)
            + " (nothing was created)"
        )
    path, _, query = text[match.end() :].partition("?")  # 's3:/b/g' (collapsed by pathlib) and 's3://b/g' alike
    path = path.strip("/")
    if not path:
        raise GalleryError(f"{text}: names no bucket; expected {scheme}://BUCKET/PREFIX")
    return GalleryLocation(f"{scheme}://{path}" + (f"?{query}" if query else ""), None, options)


def gallery_root(location: str | os.PathLike | GalleryLocation) -> Path:
    """The absolute local folder of a gallery location; GalleryError for one on object storage."""
    parsed = gallery_location(location)
    if parsed.local is None:
        raise GalleryError(f"{parsed.uri}: received an object-storage URI, expected a local folder for this operation")
    return parsed.local
