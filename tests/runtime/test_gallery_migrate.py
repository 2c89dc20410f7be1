"""Format 1 -> format 2 without re-encoding, the format-1 reader, and the ``zse gallery`` commands."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tests.support.images import make_photo_files
from zse_infer import Retriever
from zse_infer.cli.main import main
from zse_infer.errors import GalleryError
from zse_infer.manifest import write_json_atomic
from zse_infer.runtime.gallery.format1 import FORMAT, PARTS, RECORD, SHARD_DIR, VERSION, Gallery, part_path
from zse_infer.vectors import l2_normalize

SHAPE = (5, 8)


def write_format1(
    root: Path, shards: Sequence[tuple[np.ndarray, Sequence[str], Sequence[str | None]]], model: dict[str, Any]
) -> None:
    """Write a committed format-1 gallery at ``root`` from ``(tokens, ids, paths)`` per shard (the package
    only reads that format, to migrate it)."""
    (root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (tokens, ids, paths) in enumerate(shards):
        name = f"{i:09d}-test"
        tok16 = np.ascontiguousarray(tokens, dtype=np.float16)
        np.save(part_path(root, name, "tokens"), tok16, allow_pickle=False)
        np.save(part_path(root, name, "ret"), l2_normalize(tok16[:, 0].astype(np.float32)), allow_pickle=False)
        part_path(root, name, "meta").write_text(json.dumps({"ids": list(ids), "paths": list(paths)}))
        entries.append({"name": name, "count": len(ids), "sha256": {}})
    record = {
        "format": FORMAT,
        "version": VERSION,
        "count": sum(e["count"] for e in entries),
        "tokens": list(shards[0][0].shape[1:]),
        "token_dtype": "float16",
        "parts": list(PARTS),
        "model": model,
        "shards": entries,
    }
    write_json_atomic(root / RECORD, record)


def _tokens(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)


def test_reader_keeps_shards_in_order(tmp_path):
    a, b = _tokens(2, 1), _tokens(3, 2)
    write_format1(tmp_path / "g", [(a, ["a0", "a1"], ["/a0.png", None]), (b, ["b0", "b1", "b2"], [None] * 3)], {})
    g = Gallery.open(tmp_path / "g")
    assert len(g) == 5 and [s.ids for s in g.shards] == [["a0", "a1"], ["b0", "b1", "b2"]]
    assert g.shards[0].paths == ["/a0.png", None] and g.tokens_shape == SHAPE
    assert isinstance(g.shards[0].tokens, np.memmap)
    assert np.allclose(g.shards[1].tokens, b, atol=1e-2)
    assert np.allclose(np.linalg.norm(g.shards[1].ret, axis=1), 1, atol=1e-6)


def test_reader_refuses_foreign_and_corrupt_folders(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(GalleryError, match=r"no gallery\.json"):
        Gallery.open(tmp_path / "junk")
    write_format1(tmp_path / "g", [(_tokens(2), ["a", "b"], [None, None])], {})
    record = tmp_path / "g" / "gallery.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "version": 99}))
    with pytest.raises(GalleryError, match="version 99"):
        Gallery.open(tmp_path / "g")
    record.write_text(json.dumps(data))
    name = data["shards"][0]["name"]
    tokens = tmp_path / "g" / "shards" / f"{name}.tokens.npy"
    tokens.write_bytes(tokens.read_bytes()[:-10])  # truncated
    with pytest.raises(GalleryError, match=name):
        Gallery.open(tmp_path / "g")


def test_migrate_keeps_tokens_and_rankings_and_the_cli(tiny_export, tmp_path):
    photos = make_photo_files(tmp_path / "photos", 8)
    ref = Retriever.load(tiny_export)
    ref.index(photos, ids=[str(p) for p in photos], progress=False)
    tokens = ref.encode(photos, "photo")
    names = [str(p) for p in photos]
    write_format1(
        tmp_path / "old",
        [(tokens[i : i + 3], names[i : i + 3], names[i : i + 3]) for i in range(0, 8, 3)],
        ref.gallery.model,
    )

    cli = CliRunner()
    refused = cli.invoke(main, ["search", str(tiny_export), str(photos[0]), "--gallery", str(tmp_path / "old")])
    assert refused.exit_code == 1 and "zse gallery migrate" in refused.output

    done = cli.invoke(main, ["gallery", "migrate", str(tmp_path / "old"), str(tmp_path / "new")])
    assert done.exit_code == 0, done.output
    assert "8 photos migrated" in done.output
    # a re-run adds nothing
    again = cli.invoke(main, ["gallery", "migrate", str(tmp_path / "old"), str(tmp_path / "new")])
    assert again.exit_code == 0 and "8 photos migrated" in again.output

    r = Retriever.load(tiny_export, gallery=tmp_path / "new")
    encoded = []
    run = r.runners.encoder.run
    r.runners.encoder.run = lambda inputs: encoded.append(len(inputs["image"])) or run(inputs)
    for rerank in (0, "all"):
        got, want = r.search(photos[1], k=8, rerank=rerank), ref.search(photos[1], k=8, rerank=rerank)
        assert [h.id for h in got] == [h.id for h in want]
        assert max(abs(a.score - b.score) for a, b in zip(got, want, strict=True)) < 1e-4
    assert sum(encoded) == 2  # the two sketches (queries) only: no photo was re-encoded

    info = cli.invoke(main, ["gallery", "info", str(tmp_path / "new"), "--json"])
    assert info.exit_code == 0 and json.loads(info.output)["photos"] == 8
    compacted = cli.invoke(main, ["gallery", "compact", str(tmp_path / "new")])
    assert compacted.exit_code == 0 and "8 photos" in compacted.output
    assert json.loads(cli.invoke(main, ["gallery", "info", str(tmp_path / "new"), "--json"]).output)["fragments"] == 1
