"""Gallery photos as HTTP clients see them (docs/serve-security.md); the table is swapped in whole, so no locks."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..runtime.photo_sources import list_images
from .errors import ServeError, bad_request, forbidden, gone, not_found
from .images import ImageLimits, check_image

#: what a photo without a file (in-memory, or never stat'ed) has as its fingerprint in the gallery
UNKNOWN = (-1, -1)


@dataclass(frozen=True)
class StoredPhoto:
    gallery_id: str
    public_id: str
    path: str | None
    fingerprint: tuple[int, int]


def display_name(path: str | None, public_id: str) -> str:
    """A name to show for a photo: its file name, never a folder."""
    return os.path.basename(path) if path else public_id.rsplit("/", 1)[-1]


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path))


class PhotoRoots:
    """The ``--photo-root`` folders, each known to clients by its folder name (``name-2`` ... where two share one)."""

    def __init__(self, roots: Sequence[str | os.PathLike] = ()):
        self.roots: list[tuple[str, str]] = []  # (label, real path)
        for root in roots:
            real = _real(root)
            base = os.path.basename(real.rstrip(os.sep)) or "root"
            label, n = base, 1
            while any(label == taken for taken, _ in self.roots):
                n += 1
                label = f"{base}-{n}"
            self.roots.append((label, real))

    def relative(self, path: str) -> str | None:
        """``label/below`` of a (resolved) path inside a root, else None."""
        for label, real in self.roots:
            if path.startswith(real.rstrip(os.sep) + os.sep):
                return label + "/" + os.path.relpath(path, real).replace(os.sep, "/")
        return None

    def contains(self, path: str | os.PathLike) -> bool:
        """Whether ``path``, after resolving links and '..', lies in one of the roots."""
        real = _real(path)
        return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for _, root in self.roots)

    def expand(self, paths: Sequence[str]) -> list[str]:
        """Client-given server paths -> the image files they name (folders expanded), resolved, each inside a root
        (else 403 naming the first that is not) and a regular file (a FIFO or a device would hang or never end)."""
        files: list[str] = []
        for given in paths:
            if "\0" in given:
                raise bad_request(f"path {given[:100]!r}: contains a NUL character")
            if not self.contains(given):
                raise forbidden(f"path {given!r}: outside the server's --photo-root folders")
            found = list_images(given) if os.path.isdir(given) else [given]
            if not found:
                raise bad_request(f"path {given!r}: a folder with no images in it")
            for f in found:
                real = _real(f)
                if not self.contains(real):  # a link inside a root to a file outside it: named as the client reached it
                    where = self.relative(os.path.abspath(f)) or f
                    raise forbidden(f"path {where!r}: a link that leads outside the server's --photo-root folders")
                try:
                    regular = stat.S_ISREG(os.stat(real).st_mode)
                except OSError:
                    raise bad_request(f"path {f!r}: no such file on the server") from None
                if not regular:
                    raise bad_request(f"path {f!r}: not a regular file")
                files.append(real)
        return files


def opaque_id(gallery_id: str) -> str:
    return "@" + hashlib.sha256(gallery_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class PhotoTable:
    def __init__(self, roots: PhotoRoots):
        self.roots = roots
        self._by_public: dict[str, StoredPhoto] = {}
        self._public: dict[str, str] = {}  # gallery id -> public id

    def refresh(self, retriever) -> None:
        """Rebuild from the retriever's gallery snapshot (on the model thread)."""
        snap = retriever.gallery.snapshot
        rows = list(zip(snap.ids, snap.paths, strict=False)) if snap is not None else []
        fingerprints = snap.fingerprints() if snap is not None else {}
        by_public: dict[str, StoredPhoto] = {}
        public: dict[str, str] = {}
        # Ids a caller chose keep their spelling; paths then take theirs, or an opaque one where it is taken.
        for chosen_first in (True, False):
            for gid, path in rows:
                is_path = path is not None and gid == path
                if is_path == chosen_first or gid in public:
                    continue
                pid = self._own_id(gid, path)
                if pid in by_public:
                    pid = opaque_id(gid)
                public[gid] = pid
                by_public[pid] = StoredPhoto(gid, pid, path, tuple(fingerprints.get(gid, UNKNOWN)))
        self._by_public, self._public = by_public, public

    def public_id(self, gallery_id: str, path: str | None) -> str:
        """The public id of a gallery id (also for one committed after the table was built)."""
        known = self._public.get(gallery_id)
        return known if known is not None else self._own_id(gallery_id, path)

    def _own_id(self, gallery_id: str, path: str | None) -> str:
        """A chosen id stays; a file below a root is ``<root name>/<below>``, any other an opaque ``@<hex>``."""
        if path is None or gallery_id != path:
            return gallery_id
        return self.roots.relative(path) or opaque_id(gallery_id)

    def require(self, public_id: str) -> StoredPhoto:
        photo = self._by_public.get(public_id)
        if photo is None:
            raise not_found(f"photo id {public_id!r}: not in the gallery")
        return photo

    def __len__(self) -> int:
        return len(self._by_public)


#: Linux tells where an open file really is; elsewhere the path is checked before it is opened.
_PROC_FD = os.path.isdir("/proc/self/fd")


def open_stored(photo: StoredPhoto) -> tuple[BinaryIO, int]:
    """The photo's file, open, and its size while it is the file indexed (no link, regular, same size and mtime)."""
    pid = photo.public_id
    if photo.path is None:
        raise not_found(f"photo id {pid!r}: indexed from memory, so the server has no file to serve")
    linked = gone(f"photo id {pid!r}: its file is now reached through a link (re-index it)")
    if not _PROC_FD and _real(photo.path) != photo.path:
        raise linked
    # O_NOFOLLOW: a link as the last component is not followed; O_NONBLOCK: a FIFO in its place cannot hang us.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(photo.path, flags)
    except FileNotFoundError:
        raise not_found(f"photo id {pid!r}: its file is no longer on the server") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise gone(f"photo id {pid!r}: its file was replaced by a link (re-index it)") from None
        raise not_found(f"photo id {pid!r}: its file cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if _PROC_FD and os.readlink(f"/proc/self/fd/{fd}") != photo.path:  # a folder on the way became a link
            raise linked
        if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != tuple(photo.fingerprint):
            raise gone(f"photo id {pid!r}: its file changed after it was indexed (re-index it)")
        return os.fdopen(fd, "rb"), int(st.st_size)
    except BaseException:
        os.close(fd)
        raise


def read_stored(photo: StoredPhoto, limits: ImageLimits) -> bytes:
    """The bytes of :func:`open_stored` for the model (explanations), through the same gate as uploads."""
    f, size = open_stored(photo)
    with f:
        if size > limits.max_bytes:
            limit = f"this server's limit of {limits.max_bytes} bytes for images it reads"
            raise ServeError(413, "payload_too_large", f"photo id {photo.public_id!r}: {size} bytes, above {limit}")
        data = f.read()
    check_image(data, f"photo {photo.public_id!r}", limits, decode=False)
    return data


def keep_upload(folder: Path, data: bytes, suffix: str) -> Path:
    """Write ``data`` once, atomically, as ``<content hash><format suffix>``; an identical one is kept (still valid)."""
    digest = hashlib.sha256(data).hexdigest()[:32]
    path = folder / f"{digest}{suffix}"
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and st.st_size == len(data) and path.read_bytes() == data:
            return path
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{digest}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # replaces a link itself, never what it points to
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
