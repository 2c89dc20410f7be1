import json

from click.testing import CliRunner

from tests.support.images import make_photo_files
from zse_infer.cli.main import main


def test_index_then_search_json(tiny_export, tmp_path, golden_images):
    photos = make_photo_files(tmp_path / "photos", 6)
    runner = CliRunner()
    gallery = tmp_path / "gallery"
    result = runner.invoke(main, ["index", str(tiny_export), str(tmp_path / "photos"), "--gallery", str(gallery)])
    assert result.exit_code == 0, result.output
    assert "6 photos (6 added" in result.output
    again = runner.invoke(main, ["index", str(tiny_export), str(photos[0]), "--gallery", str(gallery)])
    assert "0 added, 1 already stored" in again.output
    out = tmp_path / "hits.json"
    sketch = str(golden_images["sketch"][0])
    result = runner.invoke(
        main,
        [
            "search",
            str(tiny_export),
            sketch,
            "--gallery",
            str(gallery),
            "--k",
            "3",
            "--rerank",
            "all",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["rerank"] == "all" and data["backend"] == "onnxruntime-cpu"
    hits = data["results"][0]["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3] and all(h["stage"] == 2 for h in hits)
    text = runner.invoke(main, ["search", str(tiny_export), sketch, "--gallery", str(gallery), "--rerank", "0"])
    assert text.exit_code == 0 and sketch in text.output


def test_list_file_and_skip(tiny_export, tmp_path):
    photos = make_photo_files(tmp_path / "photos", 2)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# photos\n{photos[0].name}\nmissing.png\n{photos[1].name}\n")
    (tmp_path / "photos" / "list.txt").write_text(listing.read_text())
    result = CliRunner().invoke(
        main,
        [
            "index",
            str(tiny_export),
            "--list",
            str(tmp_path / "photos" / "list.txt"),
            "--gallery",
            str(tmp_path / "g"),
            "--on-error",
            "skip",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 photos (2 added" in result.output and "missing.png" in result.output


def test_errors_are_one_clean_line(tiny_export, tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.png"
    bad.write_text("x")
    result = runner.invoke(main, ["index", str(tiny_export), str(bad), "--gallery", str(tmp_path / "g")])
    assert result.exit_code == 1 and "Error: " in result.output and "bad.png" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["search", str(tiny_export), str(bad), "--gallery", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no gallery here" in result.output
    result = runner.invoke(
        main, ["search", str(tiny_export), str(bad), "--gallery", str(tmp_path / "g"), "--rerank", "some"]
    )
    assert result.exit_code == 2 and "expected an integer" in result.output
    result = runner.invoke(main, ["index", str(tmp_path / "no_export"), str(bad), "--gallery", str(tmp_path / "g")])
    assert result.exit_code == 1 and "export folder not found" in result.output


def test_short_help_option():
    result = CliRunner().invoke(main, ["-h"])
    assert result.exit_code == 0 and "Usage:" in result.output and "search" in result.output
    assert CliRunner().invoke(main, ["search", "-h"]).exit_code == 0


def test_rerank_error_names_the_option(tiny_export, tmp_path, golden_images):
    sketch = str(golden_images["sketch"][0])
    for bad in ("some", "-3"):
        result = CliRunner().invoke(
            main, ["search", str(tiny_export), sketch, "--gallery", str(tmp_path), "--rerank", bad]
        )
        assert (
            result.exit_code == 2
            and "--rerank" in result.output
            and "expected an integer >= 0 or 'all'" in result.output
        )


def test_skipped_files_reported_once_each_with_reason(tiny_export, tmp_path):
    photos = make_photo_files(tmp_path / "photos", 2)
    (tmp_path / "bad1.png").write_text("not a picture")
    (tmp_path / "bad2.jpg").write_bytes(b"")
    args = [
        "index",
        str(tiny_export),
        str(photos[0]),
        str(tmp_path / "bad1.png"),
        str(tmp_path / "bad2.jpg"),
        "--gallery",
        str(tmp_path / "g"),
        "--on-error",
        "skip",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name, reason in (("bad1.png", "expected an image file"), ("bad2.jpg", "empty")):
        mentions = [line for line in lines if name in line]
        assert len(mentions) == 1 and mentions[0].startswith("skipped ") and reason in mentions[0], result.output
    assert "[(" not in result.output and "2 skipped as unreadable" in result.output


def test_search_prints_the_rerank_depth_it_used(tiny_export, tmp_path, golden_images):
    make_photo_files(tmp_path / "photos", 3)
    runner = CliRunner()
    gallery = tmp_path / "gallery"
    assert (
        runner.invoke(main, ["index", str(tiny_export), str(tmp_path / "photos"), "--gallery", str(gallery)]).exit_code
        == 0
    )
    sketch = str(golden_images["sketch"][0])
    result = runner.invoke(main, ["search", str(tiny_export), sketch, "--gallery", str(gallery), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert "rerank 100 (recorded in the export: " in result.output  # the tiny recipe's documented default
    chosen = runner.invoke(main, ["search", str(tiny_export), sketch, "--gallery", str(gallery), "--rerank", "2"])
    assert "rerank 2 (--rerank)" in chosen.output
