"""Gallery ids -> stored photo files, for GET /v1/photos/{id}.

The server answers only ids it finds here and serves the path the gallery
stored at indexing time; nothing in the request becomes a path. The table is
rebuilt on the model thread after every write, and swapped in whole, so the
event loop reads it without locks.
"""

from __future__ import annotations

import os
from pathlib import Path


def stored_paths(retriever) -> dict[str, str | None]:
    """``{id: path or None}`` of every photo in the retriever's gallery (its current snapshot)."""
    gallery = retriever.gallery
    return dict(zip(gallery.ids, gallery.paths))


class PhotoTable:
    def __init__(self):
        self._paths: dict[str, str | None] = {}

    def refresh(self, retriever) -> None:
        self._paths = stored_paths(retriever)

    def __contains__(self, photo_id: str) -> bool:
        return photo_id in self._paths

    def path(self, photo_id: str) -> str | None:
        return self._paths.get(photo_id)

    def __len__(self) -> int:
        return len(self._paths)


def inside(path: str | os.PathLike, roots) -> bool:
    """Whether ``path`` (after resolving links and ..) lies in one of ``roots``."""
    real = Path(os.path.realpath(path))
    for root in roots:
        base = Path(os.path.realpath(root))
        if real == base or base in real.parents:
            return True
    return False
