"""One committed version of a gallery (a pinned Lance version): reads through it are consistent, columns read lazily
and cached, rows addressed by stable row ids. Where an id is stored twice, its newest row (highest row id: they are
assigned in commit order) is the photo; older rows are *stale*, removed by ``dedupe`` (docs/guarantees.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ...errors import GalleryError, GalleryUnavailableError, ZseError
from .codecs import Codec

#: what pylance 14 raises for storage failures: OSError ("LanceError(IO)"), ValueError (ArrowInvalid
#: "External error: ...", "Dataset at path ... was not found"), RuntimeError; our ZseErrors pass through
LANCE_ERRORS = (OSError, ValueError, RuntimeError)


class VersionGoneError(GalleryUnavailableError):
    """A file of the version being read is gone (another process's compaction removed it): refresh and retry."""


def lance_message(exc: BaseException) -> str:
    """Lance's message without the Rust source locations it appends (', /home/.../x.rs:12:34, ...')."""
    text = " ".join(str(exc).split())
    return re.split(r",\s*\S+\.rs:\d+", text)[0]


@contextmanager
def lance_io(what: str) -> Iterator[None]:
    """Storage errors raised inside as GalleryUnavailableError (VersionGoneError for a missing file) naming ``what``."""
    try:
        yield
    except ZseError:
        raise
    except LANCE_ERRORS as exc:
        text = lance_message(exc)
        # Lance reports a missing object as "Not found: <path>" (object_store's NotFound), from
        # OSError and ArrowInvalid alike; the message is the only signal it gives.
        if isinstance(exc, FileNotFoundError) or "Not found: " in text:
            raise VersionGoneError(f"{what}: a file is gone ({text}); a newer version replaced this one") from exc
        if "NoSuchBucket" in text:
            message = f"{what}: no such bucket on this object store ({text}); create it, or check the URI"
            raise GalleryError(message) from exc
        if _CREDENTIALS.search(text):
            # Configuration, not a passing outage: retrying cannot help.
            raise GalleryError(
                f"{what}: the object store refused or lacks credentials ({text}); set the standard "
                "AWS_*/GOOGLE_*/AZURE_* variables or pass storage_options (--storage-option KEY=VALUE)"
            ) from exc
        raise GalleryUnavailableError(f"{what}: {text}") from exc


#: Lance's words (pylance 14, object_store) for missing or refused credentials
_CREDENTIALS = re.compile(r"credential|InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied|Forbidden|403", re.I)


class Snapshot:
    """One committed version of the gallery: every read through it is consistent."""

    def __init__(self, dataset, codec: Codec):
        self.ds, self.codec, self.version = dataset, codec, int(dataset.version)
        self._cols: dict[str, Any] = {}

    def _reading(self):
        return lance_io(f"{self.ds.uri} (version {self.version})")

    def __len__(self) -> int:
        """Rows (a photo stored twice by two writers counts twice until ``compact``)."""
        if "n" not in self._cols:
            with self._reading():
                self._cols["n"] = int(self.ds.count_rows())
        return self._cols["n"]

    def _index_columns(self) -> dict[str, Any]:
        if "ids" not in self._cols:
            with self._reading():
                table = self.ds.to_table(columns=["id", "path"], with_row_id=True)
            self._cols["id_column"] = table.column("id")
            self._cols["ids"] = table.column("id").to_pylist()
            self._cols["paths"] = table.column("path").to_pylist()
            self._cols["rowids"] = table.column("_rowid").to_numpy().astype(np.int64)
        return self._cols

    @property
    def ids(self) -> list[str]:
        return self._index_columns()["ids"]

    @property
    def paths(self) -> list[str | None]:
        return self._index_columns()["paths"]

    def row_ids(self) -> np.ndarray:
        """(N,) stable row ids, in scan order (the order of ids, paths and ret_matrix)."""
        if "rowids" not in self._cols:  # also cached by ids/paths and ret_matrix, which read it with them
            with self._reading():
                table = self.ds.to_table(columns=[], with_row_id=True)
            self._cols["rowids"] = table.column("_rowid").to_numpy().astype(np.int64)
        return self._cols["rowids"]

    def ret_matrix(self) -> np.ndarray:
        """(N, D) float32 unit ret-tokens in scan order."""
        if "ret" not in self._cols:
            with self._reading():
                table = self.ds.to_table(columns=["ret"], with_row_id=True)
            column, d = table.column("ret"), self.ds.schema.field("ret").type.list_size
            flat = column.combine_chunks().flatten().to_numpy() if table.num_rows else np.zeros(0, np.float32)
            self._cols["ret"] = flat.reshape(-1, d).astype(np.float32, copy=False)
            self._cols.setdefault("rowids", table.column("_rowid").to_numpy().astype(np.int64))
        return self._cols["ret"]

    def newest_row_ids(self) -> np.ndarray:
        """Sorted stable row ids of each id's newest row: the photos as search sees them (Arrow: 0.3 s per 1M rows)."""
        if "newest" not in self._cols:
            import pyarrow as pa

            self._index_columns()
            table = pa.table({"id": self._cols["id_column"], "row": pa.array(self._cols["rowids"])})
            newest = table.group_by("id").aggregate([("row", "max")]).column("row_max").to_numpy()
            self._cols["newest"] = np.sort(newest.astype(np.int64))
        return self._cols["newest"]

    def has_duplicates(self) -> bool:
        return len(self.newest_row_ids()) != len(self)

    def stale_row_ids(self) -> np.ndarray:
        """Row ids of older rows of ids stored more than once (what ``Gallery.dedupe`` deletes)."""
        rows = self.row_ids()
        return np.sort(rows[~np.isin(rows, self.newest_row_ids())]) if self.has_duplicates() else np.zeros(0, np.int64)

    def search_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(ret-tokens, row ids) of the newest row of each id, for stage 1: a photo stored twice is found once."""
        ret, rows = self.ret_matrix(), self.row_ids()
        if not self.has_duplicates():
            return ret, rows
        keep = np.isin(rows, self.newest_row_ids())
        return ret[keep], rows[keep]

    def fingerprints(self) -> dict[str, tuple[int, int]]:
        """id -> (size, mtime_ns) as stored (of the newest row where an id is stored twice)."""
        with self._reading():
            table = self.ds.to_table(columns=["id", "size", "mtime_ns"], with_row_id=True)
        order = np.argsort(table.column("_rowid").to_numpy(), kind="stable")  # newest last: it wins in the dict
        ids, sizes, mtimes = (table.column(c).to_pylist() for c in ("id", "size", "mtime_ns"))
        return {ids[i]: (sizes[i], mtimes[i]) for i in order.tolist()}

    def take(self, rowids: Sequence[int] | np.ndarray, columns: list[str]) -> dict[str, Any]:
        """Columns of the given row ids, in that order (read sorted: unsorted takes are several times slower)."""
        rowids = np.asarray(rowids, dtype=np.int64)
        if not len(rowids):
            return {c: [] for c in columns}
        order = np.argsort(rowids, kind="stable")
        with self._reading():
            table = self.ds._take_rows(rowids[order].astype(np.uint64).tolist(), columns=columns)
        if table.num_rows != len(rowids):
            raise GalleryError(f"rows {rowids.tolist()[:5]}...: not in gallery version {self.version}")
        back = np.argsort(order)  # the inverse permutation
        out = {}
        for c in columns:
            col = table.column(c)
            if c == "ret":
                out[c] = col.combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)[back]
            elif c in ("tokens", "proj"):
                col, width = col.combine_chunks(), col.type.byte_width
                raw = np.frombuffer(col.buffers()[1], np.uint8, count=width * len(col), offset=col.offset * width)
                out[c] = raw.reshape(-1, width)[back]
            else:
                values = col.to_pylist()
                out[c] = [values[i] for i in back]
        return out

    def tokens(self, rowids) -> np.ndarray:
        """float32 (n, T, D) decoded tokens of the given rows (only these rows are read)."""
        if not self.codec.stores_tokens:
            raise GalleryError("this gallery stores no tokens (codec 'none'): re-encode the photos from their files")
        return self.codec.decode(self.take(rowids, ["tokens"])["tokens"])

    def tokens_and_projections(self, rowids, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Decoded float32 tokens (n, T, D) and float16 projections (n, *shape) in one take (the caller converts)."""
        cols = self.take(rowids, ["tokens", "proj"])
        return self.codec.decode(cols["tokens"]), cols["proj"].view(np.float16).reshape(len(cols["proj"]), *shape)

    def projections(self, rowids, shape: tuple[int, int]) -> np.ndarray:
        raw = self.take(rowids, ["proj"])["proj"]
        return np.ascontiguousarray(raw).view(np.float16).reshape(len(raw), *shape).astype(np.float32)
