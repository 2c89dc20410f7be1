"""Photos at ``s3://`` URIs (issue 21 item 2), against moto's server on 127.0.0.1 (conftest.py):
prefixes, single objects, mixed with local files; ETag fingerprints (unchanged skipped, changed
re-encoded); bad objects reported by URI and skipped; configuration errors named."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.support.images import make_photo_files
from zse_infer import Retriever
from zse_infer.errors import ImageError, InputError, ZseError


def _png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def _put(s3, keys: dict[str, bytes]) -> None:
    client = s3.client()
    for key, data in keys.items():
        client.put_object(Bucket=s3.bucket, Key=key, Body=data)


@pytest.fixture
def photos(s3):
    """Four PNGs under ``p/`` (one in a sub-folder), a text file beside them (not an image: ignored
    in a listing), one PNG elsewhere."""
    _put(s3, {"p/a.png": _png(0), "p/b.PNG": _png(1), "p/sub/c.png": _png(2), "p/d.png": _png(3)})
    _put(s3, {"p/notes.txt": b"hello", "other/e.png": _png(4)})
    return f"s3://{s3.bucket}"


def test_a_prefix_a_single_object_and_local_files_in_one_call(s3, photos, tiny_export, tmp_path):
    local = make_photo_files(tmp_path / "local", 2, size=32)
    r = Retriever.load(tiny_export, gallery=s3.uri(), create=True, storage_options=s3.options)
    report = r.index([f"{photos}/p/", f"{photos}/other/e.png", *local], progress=False)
    want = [f"{photos}/p/{k}" for k in ("a.png", "b.PNG", "d.png", "sub/c.png")] + [f"{photos}/other/e.png"]
    assert report.added == 7 and not report.failed
    assert sorted(r.gallery.ids) == sorted(want + [str(p.resolve()) for p in local])
    assert set(r.gallery.paths) >= set(want)  # an object's stored path is its URI
    # The same tokens as the same bytes indexed from local files.
    client, mirror = s3.client(), []
    for i, uri in enumerate(want):
        mirror.append(tmp_path / f"m{i}.png")
        mirror[-1].write_bytes(client.get_object(Bucket=s3.bucket, Key=uri.split("/", 3)[3])["Body"].read())
    other = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    other.index(mirror, ids=want, progress=False)
    rows = [r.gallery.snapshot.row_ids()[:5], other.gallery.snapshot.row_ids()]
    np.testing.assert_array_equal(r.gallery.tokens(rows[0]), other.gallery.tokens(rows[1]))


def test_reindex_skips_unchanged_objects_and_reencodes_a_changed_one(s3, photos, tiny_export):
    r = Retriever.load(tiny_export, gallery=s3.uri(), create=True, storage_options=s3.options)
    assert r.index(f"{photos}/p/", progress=False).added == 4
    again = r.index(f"{photos}/p/", progress=False)
    assert again.added == 0 and again.skipped_existing == 4
    ids = sorted(r.gallery.ids)
    _put(s3, {"p/a.png": _png(10)})  # same size, new content: a new ETag
    changed = r.index(f"{photos}/p/", progress=False)
    assert (changed.added, changed.replaced, changed.skipped_existing) == (1, 1, 3)
    assert sorted(r.gallery.ids) == ids and len(r) == 4  # replaced, not added


def test_bad_objects_are_reported_by_uri_and_skipped(s3, photos, tiny_export):
    _put(s3, {"p/fake.png": b"not an image at all"})
    r = Retriever.load(tiny_export, gallery=s3.uri(), create=True, storage_options=s3.options)
    missing, text = f"{photos}/p/missing.png", f"{photos}/p/notes.txt"
    report = r.index([f"{photos}/p/", missing, text], on_error="skip", progress=False)
    assert report.added == 4
    failed = dict(report.failed)
    assert set(failed) == {f"{photos}/p/fake.png", missing, text}
    assert "no such object" in failed[missing] and "not an image" in failed[text]
    assert all(reason.startswith(uri) for uri, reason in failed.items())  # named by URI, not '<bytes>'
    with pytest.raises(ImageError, match=f"^{missing}: no such object"):  # on_error="raise" stops there, named
        r.index([missing], progress=False)


def test_configuration_errors_name_the_uri(s3, photos, tiny_export, tmp_path, monkeypatch):
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True, storage_options=s3.options)
    with pytest.raises(InputError, match=f"^{photos}/nothing/: no image objects"):
        r.index(f"{photos}/nothing/", progress=False)
    with pytest.raises(InputError, match="received a gs:// URI, expected a local path or s3://"):
        r.index("gs://bucket/x.png", progress=False)
    wrong = Retriever.load(
        tiny_export, gallery=tmp_path / "g", storage_options={**s3.options, "aws_endpoint": "http://127.0.0.1:9"}
    )
    with pytest.raises(ZseError, match=f"^{photos}/p/.*does not answer"):
        wrong.index(f"{photos}/p/", progress=False)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    for source in (f"{photos}/p/", f"{photos}/p/a.png"):
        with pytest.raises(ZseError, match=f"^{photos}/p/.*no credentials.*AWS_ACCESS_KEY_ID"):
            r.index(source, progress=False)
    assert len(r) == 0


def test_zse_index_takes_an_s3_prefix(s3, photos, tiny_export):
    from zse_infer.cli.main import main

    opts = [arg for k, v in s3.options.items() for arg in ("--storage-option", f"{k}={v}")]
    cli = CliRunner()
    args = ["index", str(tiny_export), f"{photos}/p/", f"{photos}/p/missing.png", "--gallery", s3.uri(), *opts]
    done = cli.invoke(main, [*args, "--on-error", "skip"])
    assert done.exit_code == 0, done.output
    assert "4 added" in done.output and "1 skipped as unreadable" in done.output
    assert f"{photos}/p/missing.png: no such object" in done.output
    done = cli.invoke(main, args[:3] + args[4:])
    assert done.exit_code == 0 and "0 added, 4 already stored" in done.output, done.output


def test_a_list_file_of_uris_into_a_codec_none_gallery(s3, photos, tiny_export, tmp_path, golden_images):
    """List files keep URIs; a gallery that stores no tokens re-encodes its candidates from the objects."""
    from zse_infer.runtime.photo_sources import read_list_file

    listing = tmp_path / "photos.txt"
    listing.write_text(f"{photos}/p/a.png\n# a comment\n{photos}/other/e.png\n")
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True, codec="none", storage_options=s3.options)
    assert r.index(read_list_file(listing), progress=False).added == 2
    hits = r.search(golden_images["sketch"][0], k=2, rerank=2)
    assert {h.id for h in hits} == {f"{photos}/p/a.png", f"{photos}/other/e.png"}


def test_without_boto3_the_error_names_the_extra(monkeypatch, tmp_path):
    import sys

    from zse_infer.errors import DependencyError
    from zse_infer.runtime.object_photos import expand_objects

    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed
    monkeypatch.setenv("AWS_ZSE_TEST", "1")  # a client made before with boto3 is not reused (new cache key)
    with pytest.raises(DependencyError, match=r"zse-infer\[s3\]"):
        expand_objects(["s3://bucket/photos/"], {})
    assert expand_objects([str(tmp_path)], {}) == [str(tmp_path)]  # local sources need no boto3
