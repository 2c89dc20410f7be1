"""Read-only reader of format-1 galleries (layout: docs/galleries.md), kept only for ``zse gallery migrate``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import GalleryError
from ...manifest import read_json

FORMAT = "zse-gallery"
VERSION = 1
RECORD = "gallery.json"
SHARD_DIR = "shards"
PARTS = ("tokens", "ret", "meta")


@dataclass
class Shard:
    name: str
    count: int
    ids: list[str] = field(repr=False)
    paths: list[str | None] = field(repr=False)
    tokens: np.ndarray = field(repr=False)  # memmap (n, T, D) float16
    ret: np.ndarray = field(repr=False)  # (n, D) float32
    proj: np.ndarray | None = field(default=None, repr=False)  # memmap (n, 3T-1, D) float16, optional


def part_path(root: Path, name: str, part: str) -> Path:
    suffix = ".meta.json" if part == "meta" else f".{part}.npy"
    return root / SHARD_DIR / f"{name}{suffix}"


class Gallery:
    """A committed format-1 gallery: ``tokens_shape``, ``model``, ``projections`` and its ``shards``."""

    def __init__(self, root: Path, tokens_shape: tuple[int, int], model: dict[str, Any], projections: bool) -> None:
        self.root, self.tokens_shape, self.model, self.projections = root, tuple(tokens_shape), dict(model), projections
        self.shards: list[Shard] = []

    @classmethod
    def open(cls, path: str | os.PathLike) -> Gallery:
        root, record_path = Path(path), Path(path) / RECORD
        if not record_path.is_file():
            raise GalleryError(f"{root}: no {RECORD}; expected a gallery folder written by zse-infer")
        record = read_json(record_path, GalleryError)
        if record.get("format") != FORMAT or record.get("version") != VERSION:
            raise GalleryError(
                f"{record_path}: format {record.get('format')!r} version {record.get('version')!r}; "
                f"expected {FORMAT!r} version {VERSION}"
            )
        try:
            projections = "proj" in record.get("parts", PARTS)
            gallery = cls(root, tuple(record["tokens"]), record.get("model", {}), projections)
            gallery.shards = [gallery._load_shard(s["name"], int(s["count"])) for s in record["shards"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise GalleryError(f"{record_path}: malformed gallery record ({exc})") from exc
        if sum(s.count for s in gallery.shards) != record.get("count"):
            raise GalleryError(f"{record_path}: shard counts do not add up to count {record.get('count')}")
        return gallery

    def _load_shard(self, name: str, count: int) -> Shard:
        parts = PARTS + (("proj",) if self.projections else ())
        paths = {p: part_path(self.root, name, p) for p in parts}
        for path in paths.values():
            if not path.is_file():
                raise GalleryError(f"{path}: shard file listed in {RECORD} is missing")
        try:
            tokens = np.load(paths["tokens"], mmap_mode="r", allow_pickle=False)
            ret = np.load(paths["ret"], allow_pickle=False)
            meta = json.loads(paths["meta"].read_text())
            proj = np.load(paths["proj"], mmap_mode="r", allow_pickle=False) if self.projections else None
        except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            raise GalleryError(f"{self.root / SHARD_DIR}: shard {name} is unreadable ({exc})") from exc
        n, d = self.tokens_shape
        if tokens.shape != (count, n, d) or tokens.dtype != np.float16:
            message = f"{paths['tokens']}: received {tokens.dtype} {tokens.shape}, expected float16 {(count, n, d)}"
            raise GalleryError(message)
        if ret.shape != (count, d) or len(meta.get("ids", [])) != count:
            raise GalleryError(f"{self.root / SHARD_DIR}: shard {name} parts disagree on the row count {count}")
        if proj is not None and proj.shape != (count, 3 * n - 1, d):
            raise GalleryError(f"{paths['proj']}: received shape {proj.shape}, expected {(count, 3 * n - 1, d)}")
        return Shard(name, count, list(meta["ids"]), list(meta["paths"]), tokens, ret, proj)

    def __len__(self) -> int:
        return sum(s.count for s in self.shards)
