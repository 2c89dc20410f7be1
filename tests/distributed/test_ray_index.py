import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.images import make_photo_files
from zse_infer import Retriever
from zse_infer.distributed.ray_index import RayIndexExecutor, RayOptions
from zse_infer.errors import ImageError

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]
N_PHOTOS = 300


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray_photos")
    make_photo_files(folder, N_PHOTOS, size=32)
    return folder


def _table(gallery_dir):
    import lance

    return lance.dataset(str(Path(gallery_dir) / "photos.lance")).to_table(with_row_id=True).drop(["batch"])


def test_ray_gallery_equals_single_process(ray_cluster, tiny_export, photo_dir, tmp_path, golden_images):
    single = Retriever.load(tiny_export, gallery=tmp_path / "single", create=True)
    single.index([photo_dir], progress=False, commit_size=64)
    on_ray = Retriever.load(tiny_export, gallery=tmp_path / "ray", create=True)
    report = on_ray.index(
        [photo_dir], progress=False, commit_size=64, executor=RayIndexExecutor(RayOptions(address=ray_cluster))
    )
    assert report.added == N_PHOTOS and not report.failed
    a, b = _table(tmp_path / "single"), _table(tmp_path / "ray")
    assert a.num_rows == b.num_rows == N_PHOTOS
    for column in a.column_names:  # ids, paths, fingerprints, ret-tokens, the codec's token bytes, row ids
        assert a.column(column).equals(b.column(column)), column
    for sketch in golden_images["sketch"][:2]:
        assert single.search(sketch, k=10, rerank=20) == on_ray.search(sketch, k=10, rerank=20)
    # a second run skips everything, as a single process does
    again = on_ray.index([photo_dir], progress=False, executor=RayIndexExecutor(RayOptions(address=ray_cluster)))
    assert again.added == 0 and again.skipped_existing == N_PHOTOS


def test_failing_file_is_reported(ray_cluster, tiny_export, tmp_path):
    photos = make_photo_files(tmp_path / "photos", 10, size=32)
    bad = tmp_path / "photos" / "photo_005.png"
    bad.write_bytes(b"not a png")
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    with pytest.raises(ImageError, match=r"photo_005\.png"):
        r.index(photos, progress=False, commit_size=4, executor=RayIndexExecutor(RayOptions(address=ray_cluster)))
    assert len(r) == 4  # the commit before the bad file's batch stays
    report = r.index(
        photos,
        progress=False,
        commit_size=4,
        on_error="skip",
        executor=RayIndexExecutor(RayOptions(address=ray_cluster)),
    )
    assert [source for source, _ in report.failed] == [str(bad)]
    assert "photo_005.png" in report.failed[0][1]
    assert report.added == 5 and report.skipped_existing == 4 and len(r) == 9


def test_killed_job_then_rerun_stores_every_photo_once(ray_cluster, tiny_export, photo_dir, tmp_path):
    gallery = tmp_path / "g"
    script = textwrap.dedent(f"""
        from zse_infer import Retriever
        from zse_infer.distributed.ray_index import RayIndexExecutor, RayOptions
        r = Retriever.load({str(tiny_export)!r}, gallery={str(gallery)!r}, create=True)
        r.index([{str(photo_dir)!r}], progress=False, commit_size=8, batch_size=4,
                executor=RayIndexExecutor(RayOptions(address={ray_cluster!r})))
    """)
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    versions = gallery / "photos.lance" / "_versions"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if versions.is_dir() and len(list(versions.glob("*.manifest"))) >= 3:  # the empty gallery, then two batches
            break
        time.sleep(0.05)
    assert child.poll() is None, f"the job ended before it could be killed: {child.stderr.read().decode()[-2000:]}"
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    r = Retriever.load(tiny_export, gallery=gallery)
    committed = len(r)
    assert 0 < committed < N_PHOTOS
    report = r.index(
        [photo_dir], progress=False, commit_size=64, executor=RayIndexExecutor(RayOptions(address=ray_cluster))
    )
    assert report.skipped_existing == committed and report.added == N_PHOTOS - committed
    ids = r.gallery.ids
    assert len(ids) == len(set(ids)) == N_PHOTOS
