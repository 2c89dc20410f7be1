"""One committed version of a gallery (a pinned Lance dataset version): every read through it
is consistent, whatever other processes commit meanwhile. Columns are read lazily and cached
for the life of the snapshot; rows are addressed by their stable Lance row ids."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...errors import GalleryError
from .codecs import Codec


class Snapshot:
    """One committed version of the gallery: every read through it is consistent."""

    def __init__(self, dataset, codec: Codec):
        self.ds = dataset
        self.codec = codec
        self.version = int(dataset.version)
        self._cols: dict[str, Any] = {}

    def __len__(self) -> int:
        if "n" not in self._cols:
            self._cols["n"] = int(self.ds.count_rows())
        return self._cols["n"]

    def _index_columns(self) -> None:
        if "ids" not in self._cols:
            table = self.ds.to_table(columns=["id", "path"], with_row_id=True)
            self._cols["ids"] = table.column("id").to_pylist()
            self._cols["paths"] = table.column("path").to_pylist()
            self._cols["rowids"] = table.column("_rowid").to_numpy().astype(np.int64)

    @property
    def ids(self) -> list[str]:
        self._index_columns()
        return self._cols["ids"]

    @property
    def paths(self) -> list[str | None]:
        self._index_columns()
        return self._cols["paths"]

    def row_ids(self) -> np.ndarray:
        """(N,) stable row ids, in scan order (the order of ids, paths and ret_matrix)."""
        if "rowids" not in self._cols:  # also cached by ids/paths and ret_matrix, which read it with them
            table = self.ds.to_table(columns=[], with_row_id=True)
            self._cols["rowids"] = table.column("_rowid").to_numpy().astype(np.int64)
        return self._cols["rowids"]

    def ret_matrix(self) -> np.ndarray:
        """(N, D) float32 unit ret-tokens in scan order."""
        if "ret" not in self._cols:
            table = self.ds.to_table(columns=["ret"], with_row_id=True)
            d = self.ds.schema.field("ret").type.list_size
            self._cols["ret"] = table.column("ret").combine_chunks().flatten().to_numpy().reshape(-1, d).astype(np.float32, copy=False)
            self._cols.setdefault("rowids", table.column("_rowid").to_numpy().astype(np.int64))
        return self._cols["ret"]

    def fingerprints(self) -> dict[str, tuple[int, int]]:
        table = self.ds.to_table(columns=["id", "size", "mtime_ns"])
        return dict(zip(table.column("id").to_pylist(), zip(table.column("size").to_pylist(), table.column("mtime_ns").to_pylist())))

    def take(self, rowids: Sequence[int] | np.ndarray, columns: list[str]) -> dict[str, Any]:
        """Columns of the given stable row ids, in the order given (reads are sorted first:
        unsorted takes are several times slower)."""
        rowids = np.asarray(rowids, dtype=np.int64)
        if not len(rowids):
            return {c: [] for c in columns}
        order = np.argsort(rowids, kind="stable")
        table = self.ds._take_rows(rowids[order].astype(np.uint64).tolist(), columns=columns)
        if table.num_rows != len(rowids):
            raise GalleryError(f"rows {rowids.tolist()[:5]}...: not in gallery version {self.version}")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        out = {}
        for c in columns:
            col = table.column(c)
            if c == "ret":
                flat = col.combine_chunks().flatten().to_numpy()
                out[c] = flat.reshape(table.num_rows, -1)[back]
            elif c in ("tokens", "proj"):
                width = col.type.byte_width
                buf = col.combine_chunks().buffers()[1]
                arr = np.frombuffer(buf, np.uint8, count=width * table.num_rows, offset=col.combine_chunks().offset * width)
                out[c] = arr.reshape(-1, width)[back]
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
        """Decoded float32 tokens (n, T, D) and the stored float16 projections (n, *shape) of the given
        rows, read in one sorted take (stage 2 on a gallery with projections: one read, no float32 copy
        of the projections here; the caller converts each part once)."""
        cols = self.take(rowids, ["tokens", "proj"])
        return self.codec.decode(cols["tokens"]), cols["proj"].view(np.float16).reshape(len(cols["proj"]), *shape)

    def projections(self, rowids, shape: tuple[int, int]) -> np.ndarray:
        raw = self.take(rowids, ["proj"])["proj"]
        return np.ascontiguousarray(raw).view(np.float16).reshape(len(raw), *shape).astype(np.float32)
