"""Where a gallery lives: the one parser of gallery locations.

Every entry point that takes a gallery (``Gallery.create/open/exists``, ``Retriever.load``,
the CLI through them) turns the caller's value into a location here, so the rules are in one
place. Today a gallery is a local folder; ``file://`` URIs name one too. Any other URI scheme
(``s3://``, ``gs://``, ``az://``, ``http://``...) is refused with a :class:`GalleryError`:
object storage is not supported yet, and a URI must never become a local folder named
``s3:`` in the working directory. Object storage, when it comes, is added here (a location
then carries the URI Lance opens and where the store keeps its side files and locks).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from ...errors import GalleryError

# A URI scheme (RFC 3986) of two or more characters followed by ':/'. One letter is a
# Windows drive ('C:/'), not a scheme. ':/' rather than '://' because pathlib collapses
# 's3://bucket' into 's3:/bucket' (click's Path type does it to command-line arguments).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):/")


def gallery_root(location: str | os.PathLike) -> Path:
    """The absolute local folder of a gallery location; GalleryError for URIs it cannot serve."""
    text = os.fspath(location)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    match = _SCHEME.match(text)
    if match is None:
        return Path(text).absolute()
    scheme = match.group(1).lower()
    if scheme == "file":
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise GalleryError(f"{text}: a file:// URI on another host ({parsed.netloc}); give a local folder")
        return Path(unquote(parsed.path)).absolute()
    raise GalleryError(
        f"{text}: received a {scheme}:// URI, expected a local folder: galleries on object storage are not "
        "supported yet (nothing was created)"
    )
