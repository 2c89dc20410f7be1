"""The gallery store under concurrency and faults, without a model (issue 18, items 1-4, 6, 7).

Other writers, compactors and readers are real processes (multiprocessing, spawn). Nothing
here sleeps for timing luck: processes wait for each other through files (a compactor's
"ready" file, the test's "stop" file) and the store's own state (versions, data files), with
bounded deadlines.
"""

import multiprocessing as mp
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.gallery import SHAPE
from tests.support.gallery import tiny_batch as _batch
from zse_infer.errors import GalleryError, GalleryUnavailableError
from zse_infer.runtime.gallery.store import DATASET, Batch, Gallery

MODEL = {"name": "tiny"}
DEADLINE_S = 240
COMMITS = 150  # per writer in the soak test


def wait_for(predicate, what: str, timeout: float = DEADLINE_S) -> None:
    """Poll a real signal (a file, a version) until it holds; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _spawn(target, *args):
    proc = mp.get_context("spawn").Process(target=target, args=args)
    proc.start()
    return proc


def _join(proc, timeout: float = DEADLINE_S) -> int:
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        raise AssertionError(f"{proc.name} did not finish within {timeout} s")
    return proc.exitcode


def _all_rows_readable(g: Gallery) -> None:
    snap = g.snapshot
    rows = snap.row_ids()
    assert snap.tokens(rows).shape == (len(rows), *SHAPE)
    assert snap.ret_matrix().shape == (len(rows), SHAPE[1])


# ---------------------------------------------------------------------- item 1: compaction beside writers
def _writer(path, name, commits, ready):
    wait_for(lambda: os.path.exists(ready), "the compactor's first compaction")
    g = Gallery.open(path)
    for i in range(commits):
        g.append(_batch([f"{name}{i}-{j}" for j in range(8)], seed=i))


def _compactor(path, ready, stop, out):
    g = Gallery.open(path)
    n = 0
    while True:
        finished = os.path.exists(stop)
        # keep 0 s: the most aggressive clean-up there is; it must still spare the writers' files.
        g.compact(keep_versions_seconds=0)
        n += 1
        Path(ready).touch()
        if finished:
            break
    Path(out).write_text(str(n))


def test_two_compaction_loops_beside_two_writers_lose_nothing(tmp_path):
    path = tmp_path / "g"
    g = Gallery.create(path, SHAPE, MODEL)
    g.append(_batch(["seed"]))
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    outs = [tmp_path / f"compactions{k}" for k in range(2)]
    # Two compactors: without compact's lock, one's Rewrite commits kept losing to the other's.
    compactors = [_spawn(_compactor, path, ready, stop, out) for out in outs]
    writers = [_spawn(_writer, path, name, 30, ready) for name in "ab"]
    codes = [_join(w) for w in writers]
    stop.touch()
    assert [_join(c) for c in compactors] == [0, 0] and codes == [0, 0]
    assert sum(int(out.read_text()) for out in outs) >= 3  # compactions ran while the writers committed
    g = Gallery.open(path)
    want = {"seed"} | {f"{n}{i}-{j}" for n in "ab" for i in range(30) for j in range(8)}
    assert sorted(g.ids) == sorted(want)  # every committed row, once
    _all_rows_readable(g)
    g.compact()
    g.append(_batch(["after"]))
    assert len(Gallery.open(path)) == len(want) + 1


# ---------------------------------------------------------------------- a writer killed mid-commit
def _endless_writer(path, rows):
    g = Gallery.open(path)
    i = 0
    while True:
        g.append(_batch([f"k{i}-{j}" for j in range(rows)], seed=i))
        i += 1


def _data_files(path: Path) -> set[str]:
    """Everything in the data folder: committed files, and a writer's files in progress (Lance
    writes each data file as a staging file '.tmpXXXX' and renames it to '<name>.lance')."""
    return set(os.listdir(path / DATASET / "data"))


def _referenced(path: Path) -> set[str]:
    import lance

    ds = lance.dataset(str(path / DATASET))
    return {f.path for frag in ds.get_fragments() for f in frag.data_files()}


def test_writer_killed_mid_commit_leaves_whole_commits_and_old_leftovers_are_swept(tmp_path):
    path, rows = tmp_path / "g", 20000
    Gallery.create(path, SHAPE, MODEL).append(_batch(["seed"]))
    leftovers: set[str] = set()
    for _ in range(20):  # until a kill lands between a commit's first data file and its manifest
        writer = _spawn(_endless_writer, path, rows)
        # The store's own signal: a staging file in the data folder is a commit being written.
        wait_for(lambda: any(n.startswith(".tmp") for n in _data_files(path)), "a commit in progress")
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(30)
        leftovers = _data_files(path) - _referenced(path)
        if leftovers:
            break
    assert leftovers, "no kill landed mid-commit in 20 tries"
    g = Gallery.open(path)
    ids = [i for i in g.ids if i != "seed"]
    assert len(ids) % rows == 0 and len(set(ids)) == len(ids)  # whole commits only
    for batch in {i.split("-")[0] for i in ids}:
        assert {f"{batch}-{j}" for j in range(rows)} <= set(ids)
    _all_rows_readable(g)
    g.compact(keep_versions_seconds=0)
    assert leftovers <= _data_files(path)  # young: a live writer's files look the same, so they stay
    week = time.time() - 8 * 86400
    for name in leftovers:
        os.utime(path / DATASET / "data" / name, (week, week))
    g.compact(keep_versions_seconds=0)
    assert not leftovers & _data_files(path)  # older than the safe age (7 days): removed
    g.append(_batch(["after"]))
    assert len(Gallery.open(path)) == len(ids) + 2


# ---------------------------------------------------------------------- item 2: readers beside compaction
def _delete_and_compact(path, ids, keep):
    g = Gallery.open(path)
    g.delete(ids)
    g.compact() if keep is None else g.compact(keep_versions_seconds=keep)


def test_reader_pinned_during_compaction_in_another_process(tmp_path):
    path = tmp_path / "g"
    g = Gallery.create(path, SHAPE, MODEL)
    for n in range(4):
        g.append(_batch([f"{n}{c}" for c in "abc"], seed=n))
    # Default keep time: a reader pinned before another process deletes and compacts keeps its version.
    kept = Gallery.open(path)
    assert _join(_spawn(_delete_and_compact, path, ["0a"], None)) == 0
    assert kept.version < Gallery.open(path).version
    assert "0a" in kept.snapshot.ids and kept.snapshot.tokens(kept.snapshot.row_ids()).shape[0] == 12
    # Keep time 0: the pinned version's files go. Reads say so as a GalleryError (never a raw
    # Lance/Arrow error), and Gallery.read refreshes and retries once.
    # (3 of 11 rows deleted: over Lance's 10 % threshold, so compaction rewrites the fragment.)
    pinned = Gallery.open(path)
    assert _join(_spawn(_delete_and_compact, path, ["1a", "1b", "1c"], 0)) == 0
    with pytest.raises(GalleryUnavailableError, match="a newer version replaced this one"):
        pinned.snapshot.tokens(pinned.snapshot.row_ids())
    tokens = pinned.read(lambda snap: snap.tokens(snap.row_ids()))
    assert tokens.shape[0] == 8 and not {"1a", "1b", "1c"} & set(pinned.ids)


# ---------------------------------------------------------------------- items 3 and 4: creation and model identity
def _create(path, name):
    Gallery.create(path, SHAPE, {"name": name})


def _replace_with_another_models(path):
    shutil.rmtree(path, ignore_errors=True)
    Gallery.create(path, SHAPE, {"name": "B"}).append(_batch(["b1", "b2"]))


def test_create_commits_the_gallery_and_its_model_at_once(tmp_path):
    path = tmp_path / "g"
    assert _join(_spawn(_create, path, "A")) == 0  # created, nothing appended
    g = Gallery.open(path)
    assert len(g) == 0 and g.model == {"name": "A"}
    with pytest.raises(GalleryError, match="built with model A, tokens 9x16; this export is B"):
        Gallery.create(path, SHAPE, {"name": "B"}, exist_ok=True)
    with pytest.raises(GalleryError, match="Re-index the photos"):
        Gallery.open(path, model={"name": "A"}, tokens_shape=(9, 8))
    assert Gallery.create(path, SHAPE, {"name": "A"}, exist_ok=True).version == g.version


def test_refresh_and_append_refuse_another_models_gallery(tmp_path):
    path = tmp_path / "g"
    a = Gallery.create(path, SHAPE, {"name": "A"})
    assert _join(_spawn(_replace_with_another_models, path)) == 0
    with pytest.raises(GalleryError, match="built with model B"):
        a.refresh()
    with pytest.raises(GalleryError, match="built with model B"):
        a.append(_batch(["a1"]))
    assert sorted(Gallery.open(path).ids) == ["b1", "b2"]  # A's rows never landed in B's gallery


def test_a_trained_codec_is_committed_with_its_first_rows(tmp_path):
    path = tmp_path / "g"
    first = Gallery.create(path, SHAPE, MODEL, codec="pca4-sq8")
    other = Gallery.open(path)  # empty, untrained
    assert other.codec.needs_training and len(other) == 0
    both = _batch("abcde", seed=1)  # one distribution (the codec is trained on the first three)
    part = lambda s: Batch(both.ids[s], both.paths[s], both.sizes[s], both.mtimes[s], both.ret[s], both.tokens[s])  # noqa: E731
    first.append(part(slice(0, 3)))  # trains the codec: tables and rows in one commit
    other.append(part(slice(3, 5)))  # adopts those tables before encoding
    g = Gallery.open(path)
    snap = g.snapshot
    rows = snap.row_ids()
    want = both.tokens[["abcde".index(i) for i in snap.ids]]
    assert g.codec.tables is not None  # every row, also the other process's, encoded with the committed tables:
    np.testing.assert_allclose(snap.tokens(rows), g.codec.decode(g.codec.encode(want)), atol=1e-5)
    assert len(Gallery.open(path, version=1)) == 0  # the empty gallery create committed


# ---------------------------------------------------------------------- item 6: one row per id
def test_snapshot_resolves_duplicate_ids_to_the_newest_row(tmp_path):
    g = Gallery.create(tmp_path / "g", SHAPE, MODEL)
    g.append(_batch("ab"))
    g.append(_batch("b", seed=3))  # as two writers of one new id leave it
    snap = g.snapshot
    ids, rows = snap.ids, snap.row_ids()
    newest_b = max(r for i, r in zip(ids, rows, strict=False) if i == "b")
    ret, search_rows = snap.search_rows()
    assert sorted(search_rows.tolist()) == sorted([rows[ids.index("a")], newest_b]) and len(ret) == 2
    assert snap.stale_row_ids().tolist() == [min(r for i, r in zip(ids, rows, strict=False) if i == "b")]


def test_delete_counts_its_own_rows_beside_another_writers_commit(tmp_path):
    """delete() returned the gallery's size before minus after: another process's commit of one
    row between the two made a delete of one row answer 0 (the HTTP soak test caught it)."""
    g = Gallery.create(tmp_path / "g", SHAPE, MODEL)
    g.append(_batch(["x", "y"]))
    other = Gallery.open(tmp_path / "g", model=MODEL)
    delete_where = g._delete_where

    def delete_beside_a_writer(filters):
        deleted = delete_where(filters)
        other.append(_batch(["z"], seed=5))  # committed while this delete is under way
        return deleted

    g._delete_where = delete_beside_a_writer
    assert g.delete(["x"]) == 1
    assert sorted(g.ids) == ["y", "z"]


# ---------------------------------------------------------------------- item 7: URIs are not folders
@pytest.mark.parametrize("uri", ["http://host/g", "hdfs://nn/g", "ftp://host/g"])
def test_unknown_uris_are_refused_never_made_local_folders(tmp_path, monkeypatch, uri):
    """Object storage (s3://, gs://, az://) is served (tests/objectstore); any other scheme is refused."""
    monkeypatch.chdir(tmp_path)
    for location in (uri, Path(uri)):  # Path('http://h/g') is 'http:/h/g' (as click's Path type passes it)
        with pytest.raises(GalleryError, match="expected a local folder or one of s3://"):
            Gallery.create(location, SHAPE, MODEL)
        with pytest.raises(GalleryError, match="expected a local folder or one of"):
            Gallery.open(location)
        with pytest.raises(GalleryError):
            Gallery.exists(location)
    assert list(tmp_path.iterdir()) == []


def test_file_uris_are_local_folders(tmp_path):
    g = Gallery.create(f"file://{tmp_path}/g", SHAPE, MODEL)
    assert g.root == tmp_path / "g" and Gallery.exists(tmp_path / "g")
    assert Gallery.open(f"file://{tmp_path}/g").version == g.version


def test_cli_compact_keeps_versions_for_readers_and_refuses_uris(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from zse_infer.cli.main import main

    path = tmp_path / "g"
    g = Gallery.create(path, SHAPE, MODEL)
    g.append(_batch("abc"))
    g.delete(["a"])
    cli = CliRunner()
    done = cli.invoke(main, ["gallery", "compact", str(path)])
    assert done.exit_code == 0 and "old versions removed 0" in done.output  # was: --keep-versions 0 by default
    done = cli.invoke(main, ["gallery", "compact", str(path), "--keep-versions", "0"])
    assert done.exit_code == 0 and "old versions removed 0" not in done.output
    monkeypatch.chdir(tmp_path)
    for command in (["gallery", "info", "hdfs://nn/g"], ["gallery", "compact", "hdfs://nn/g"]):
        refused = cli.invoke(main, command)
        assert refused.exit_code != 0 and "expected a local folder or one of" in refused.output
    assert not (tmp_path / "hdfs:").exists()


# ---------------------------------------------------------------------- all at once
def _soak_writer(path, name, commits, log, create=False):
    g = Gallery.create(path, SHAPE, MODEL) if create else Gallery.open(path)
    for i in range(commits):
        ids = [f"{name}{i}-{j}" if not create else f"seed-{j}" for j in range(16)]
        g.append(_batch(ids, seed=i))
        with open(log, "a") as f:  # committed: append returned
            f.write("\n".join(ids) + "\n")


def _soak_deleter(path, logs, deleted, stop, keep):
    g = Gallery.open(path)
    rng = np.random.default_rng(0)
    while not os.path.exists(stop):
        committed = [i for log in logs if os.path.exists(log) for i in Path(log).read_text().split()]
        if committed:
            gone = list(rng.choice(committed, size=min(5, len(committed)), replace=False))
            g.delete(gone)
            with open(deleted, "a") as f:
                f.write("\n".join(gone) + "\n")
        g.compact(keep_versions_seconds=keep)


def _soak_reader(path, stop, out, refresh_every):
    """Reads every row's tokens in a loop; refreshes every ``refresh_every`` reads (0: never, so
    its version is removed under it and Gallery.read's refresh-and-retry must carry it)."""
    g = Gallery.open(path)
    reads = retries = 0
    while not os.path.exists(stop):
        before = g.version
        assert g.read(lambda snap: snap.tokens(snap.row_ids()).shape[0]) == len(g)
        retries += g.version != before
        reads += 1
        if refresh_every and reads % refresh_every == 0:
            g.refresh()
    Path(out).write_text(f"{reads} {retries}")


def test_soak_two_writers_a_deleter_compactor_and_readers(tmp_path):
    """2 writers, 1 deleter + compactor (keep 0.5 s: versions go while readers are on them),
    2 readers: no process fails, no committed row is lost, readers always read."""
    path = tmp_path / "g"
    logs = [tmp_path / f"{n}.log" for n in "ab"]
    _soak_writer(path, "a", 1, logs[0], create=True)  # the readers start on a gallery with rows
    deleted, stop = tmp_path / "deleted", tmp_path / "stop"
    others = [_spawn(_soak_deleter, path, logs, deleted, stop, 0.5)]
    others += [_spawn(_soak_reader, path, stop, tmp_path / f"reader{k}", every) for k, every in enumerate((5, 0))]
    writers = [_spawn(_soak_writer, path, n, COMMITS, log) for n, log in zip("ab", logs, strict=False)]
    assert [_join(w) for w in writers] == [0, 0]
    stop.touch()
    assert [_join(p) for p in others] == [0, 0, 0]
    committed = {i for log in logs for i in log.read_text().split()}
    gone = set(deleted.read_text().split()) if deleted.exists() else set()
    g = Gallery.open(path)
    assert sorted(g.ids) == sorted(committed - gone) and len(committed) == (2 * COMMITS + 1) * 16
    _all_rows_readable(g)
    reads = [tuple(map(int, (tmp_path / f"reader{k}").read_text().split())) for k in range(2)]
    assert all(n > 0 for n, _ in reads) and reads[0][1] == 0  # a reader that refreshes never loses its version
    print("soak: reads, retries per reader", reads, "deleted", len(gone), "rows", len(g))
