"""Galleries on object storage (issue 21 item 1), against a real S3 endpoint on 127.0.0.1
(moto's server, conftest.py): the store's whole life cycle at an ``s3://`` URI, writers in
separate processes that share nothing but the bucket (no local lock can make them safe), and
clear errors for a wrong endpoint or missing credentials."""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pytest
from click.testing import CliRunner

from tests.support.gallery import SHAPE, tiny_batch
from zse_infer.errors import GalleryError, GalleryUnavailableError
from zse_infer.runtime.gallery.location import gallery_location
from zse_infer.runtime.gallery.store import Gallery

MODEL = {"name": "tiny"}


def test_life_cycle_at_an_s3_uri(s3, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = s3.uri()
    assert not Gallery.exists(uri, s3.options)
    g = Gallery.create(uri, SHAPE, MODEL, storage_options=s3.options)
    assert Gallery.exists(uri, s3.options) and g.root == uri and g.uri == f"{uri}/photos.lance"
    g.append(tiny_batch("abcd"))
    reader = Gallery.open(uri, storage_options=s3.options)  # another handle: a server, say
    assert sorted(reader.ids) == list("abcd")
    g.append(tiny_batch("ef", seed=1))
    assert reader.refresh() and sorted(reader.ids) == list("abcdef")  # sees the other writer's commit
    assert g.delete(["a", "e"]) == 2
    g.append(tiny_batch("b", seed=2), replace=True)  # a re-indexed photo: the newest row stays
    stats = g.compact(keep_versions_seconds=0)
    assert stats["old_versions_removed"] > 0
    assert reader.refresh() and sorted(reader.ids) == list("bcdf") and len(reader) == 4
    np.testing.assert_allclose(
        reader.tokens(reader.snapshot.row_ids()[reader.ids.index("b") :][:1])[0],
        tiny_batch("b", seed=2).tokens[0],
        atol=1e-2,
    )
    assert all(k.startswith("g/photos.lance/") for k in s3.keys(prefix=""))  # every key in the bucket
    assert list(tmp_path.iterdir()) == []  # nothing local: no folder named 's3:'
    again = Gallery.create(uri, SHAPE, MODEL, exist_ok=True, storage_options=s3.options)
    assert again.version == g.version
    with pytest.raises(GalleryError, match="already holds a gallery"):
        Gallery.create(uri, SHAPE, MODEL, storage_options=s3.options)
    with pytest.raises(GalleryError, match="built with model"):
        Gallery.open(uri, model={"name": "other"}, storage_options=s3.options)


def test_trained_codec_tables_live_with_the_rows(s3):
    g = Gallery.create(s3.uri(), SHAPE, MODEL, codec="pca4-sq8", storage_options=s3.options)
    g.append(tiny_batch([f"p{i}" for i in range(64)]))
    g.append(tiny_batch([f"q{i}" for i in range(8)], seed=1))
    reader = Gallery.open(s3.uri(), storage_options=s3.options)
    assert reader.codec.name == "pca4-sq8" and not reader.codec.needs_training and len(reader) == 72


def _writer(uri: str, options: dict, name: str, commits: int, codec: str, start) -> None:
    g = Gallery.create(uri, SHAPE, MODEL, codec=codec, exist_ok=True, storage_options=options)
    start.wait(60)
    for i in range(commits):
        g.append(tiny_batch([f"{name}{i}-{j}" for j in range(24)], seed=i))


@pytest.mark.parametrize("codec", ["float16", "pca4-sq8"])
def test_two_writers_in_two_processes_lose_nothing(s3, codec):
    """Two processes create (exist_ok), then append at once: their only shared state is the
    bucket. With ``pca4-sq8`` both race to commit the codec's first (training) rows too."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(s3.uri(), s3.options, name, 5, codec, start)) for name in "xy"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
        assert p.exitcode == 0
    g = Gallery.open(s3.uri(), storage_options=s3.options)
    want = sorted(f"{n}{i}-{j}" for n in "xy" for i in range(5) for j in range(24))
    assert sorted(g.ids) == want  # 0 lost, none twice


def test_a_wrong_endpoint_is_a_gallery_error_naming_the_uri(s3, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wrong = {**s3.options, "aws_endpoint": "http://127.0.0.1:9"}  # discard port: nothing listens
    for attempt in (
        lambda: Gallery.create(s3.uri(), SHAPE, MODEL, storage_options=wrong),
        lambda: Gallery.open(s3.uri(), storage_options=wrong),
    ):
        with pytest.raises(GalleryUnavailableError, match=f"^{s3.uri()}/photos.lance"):
            attempt()
    assert list(tmp_path.iterdir()) == []


def test_a_missing_bucket_is_a_gallery_error_naming_the_uri(s3):
    uri = f"s3://{s3.bucket}-missing/g"
    with pytest.raises(GalleryError, match=f"^{uri}/photos.lance.*no such bucket") as caught:
        Gallery.create(uri, SHAPE, MODEL, storage_options=s3.options)
    assert not isinstance(caught.value, GalleryUnavailableError)


def test_missing_credentials_are_a_gallery_error_naming_the_uri(s3, monkeypatch):
    Gallery.create(s3.uri(), SHAPE, MODEL, storage_options=s3.options)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(GalleryError, match=f"^{s3.uri()}/photos.lance.*credentials.*--storage-option") as caught:
        Gallery.open(s3.uri(), storage_options=s3.options)
    assert not isinstance(caught.value, GalleryUnavailableError)  # configuration: retrying cannot help


def test_cli_takes_storage_options_and_reports_errors_without_traceback(s3, monkeypatch):
    from zse_infer.cli.main import main

    g = Gallery.create(s3.uri(), SHAPE, MODEL, storage_options=s3.options)
    g.append(tiny_batch("abc"))
    opts = [arg for k, v in s3.options.items() for arg in ("--storage-option", f"{k}={v}")]
    cli = CliRunner()
    done = cli.invoke(main, ["gallery", "info", s3.uri(), "--json", *opts])
    assert done.exit_code == 0, done.output
    assert '"photos": 3' in done.output and s3.uri() in done.output
    done = cli.invoke(main, ["gallery", "compact", s3.uri(), "--keep-versions", "0", *opts])
    assert done.exit_code == 0 and "3 photos" in done.output, done.output
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    for bad in (["--storage-option", "aws_endpoint=http://127.0.0.1:9", "--storage-option", "allow_http=true"], opts):
        failed = cli.invoke(main, ["gallery", "info", s3.uri(), *bad])
        assert failed.exit_code == 1 and s3.uri() in failed.output and "Traceback" not in failed.output, failed.output
    failed = cli.invoke(main, ["gallery", "info", s3.uri(), "--storage-option", "no-equals-sign"])
    assert failed.exit_code == 2 and "expected KEY=VALUE" in failed.output


@pytest.mark.parametrize("uri", ["http://host/g", "hdfs://nn/g", "s3://"])
def test_other_schemes_are_refused_never_made_local_folders(tmp_path, monkeypatch, uri):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GalleryError, match="expected"):
        Gallery.create(uri, SHAPE, MODEL)
    assert list(tmp_path.iterdir()) == []


def test_locations_parse_once():
    loc = gallery_location(os.path.join("s3:/", "bucket", "g"))  # as pathlib/click collapse 's3://'
    assert loc.uri == "s3://bucket/g" and loc.local is None and loc.join("photos.lance") == "s3://bucket/g/photos.lance"
    ddb = gallery_location("s3+ddb://bucket/g?ddbTableName=locks")
    assert ddb.join("photos.lance") == "s3+ddb://bucket/g/photos.lance?ddbTableName=locks"
    assert gallery_location("file:///tmp/x").local is not None


def test_a_stale_first_trained_commit_never_overwrites_rows(s3, monkeypatch):
    """Two writers both saw the gallery empty and untrained; one commits its first rows (and
    the codec's tables). The other's first commit must not replace them (an overwrite landed
    over them before: rows lost): it is refused, refreshed, and appended with the stored tables."""
    a = Gallery.create(s3.uri(), SHAPE, MODEL, codec="pca4-sq8", storage_options=s3.options)
    b = Gallery.open(s3.uri(), storage_options=s3.options)
    a.append(tiny_batch([f"a{i}" for i in range(32)]))
    stale = {"left": 2}  # b's next two refreshes (in append, then before training) see nothing new
    real = b.refresh

    def refresh():
        if stale["left"]:
            stale["left"] -= 1
            return False
        return real()

    monkeypatch.setattr(b, "refresh", refresh)
    b.append(tiny_batch([f"b{i}" for i in range(32)], seed=1))
    assert stale["left"] == 0
    g = Gallery.open(s3.uri(), storage_options=s3.options)
    assert sorted(g.ids) == sorted([f"a{i}" for i in range(32)] + [f"b{i}" for i in range(32)])


def test_retriever_on_s3_ranks_as_a_local_gallery_and_sees_other_writers(s3, tiny_export, tmp_path, golden_images):
    """Index into s3:// and into a local folder: the same rankings; a second process-like
    handle (a server's retriever) sees the writer's commits after refresh; kill-free resume:
    a re-run skips every stored photo."""
    from tests.support.images import make_photo_files
    from zse_infer import Retriever

    photos = make_photo_files(tmp_path / "photos", 12, size=32)
    local = Retriever.load(tiny_export, gallery=tmp_path / "local", create=True)
    local.index(photos, progress=False, commit_size=5)
    remote = Retriever.load(tiny_export, gallery=s3.uri(), create=True, storage_options=s3.options)
    server = Retriever.load(tiny_export, gallery=s3.uri(), storage_options=s3.options)  # empty so far
    remote.index(photos[:7], progress=False, commit_size=5)
    assert server.refresh() and len(server) == 7
    report = remote.index(photos, progress=False, commit_size=5)
    assert report.skipped_existing == 7 and report.added == 5
    assert server.refresh() and len(server) == 12
    for sketch in golden_images["sketch"][:2]:
        assert [(h.id, round(h.score, 5)) for h in server.search(sketch, k=8, rerank=4)] == [
            (h.id, round(h.score, 5)) for h in local.search(sketch, k=8, rerank=4)
        ]


def _killed_writer(uri: str, options: dict, log: str) -> None:
    g = Gallery.open(uri, storage_options=options)
    for i in range(1000):
        ids = [f"k{i}-{j}" for j in range(8)]
        g.append(tiny_batch(ids, seed=i))
        with open(log, "a") as f:  # committed: append returned
            f.write("\n".join(ids) + "\n")


def test_a_writer_killed_mid_run_keeps_its_commits_and_the_gallery_stays_whole(s3, tmp_path):
    import signal
    import time

    Gallery.create(s3.uri(), SHAPE, MODEL, storage_options=s3.options)
    log = tmp_path / "committed.txt"
    child = mp.get_context("spawn").Process(target=_killed_writer, args=(s3.uri(), s3.options, str(log)))
    child.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.is_alive():
        if log.exists() and len(log.read_text().split()) >= 24:  # three commits landed
            break
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    committed = set(log.read_text().split())
    g = Gallery.open(s3.uri(), storage_options=s3.options)
    stored = set(g.ids)
    assert committed <= stored and len(stored) == len(g.ids) and len(stored) % 8 == 0  # whole commits only
    g.append(tiny_batch(["after"]))  # the next writer goes on from the latest version
    assert "after" in Gallery.open(s3.uri(), storage_options=s3.options).ids


def test_a_removed_gallery_is_named_at_refresh(s3):
    g = Gallery.create(s3.uri(), SHAPE, MODEL, storage_options=s3.options)
    client = s3.client()
    for key in s3.keys("g/"):
        client.delete_object(Bucket=s3.bucket, Key=key)
    with pytest.raises(GalleryError, match=f"^{s3.uri()}: no gallery here any more"):
        g.refresh()
