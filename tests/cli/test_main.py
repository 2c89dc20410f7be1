import json

from click.testing import CliRunner

from zse_infer.cli.main import main
from zse_infer.testing.images import make_photo_files


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
    result = runner.invoke(main, ["search", str(tiny_export), sketch, "--gallery", str(gallery), "--k", "3", "--rerank", "all", "--json", str(out)])
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
        main, ["index", str(tiny_export), "--list", str(tmp_path / "photos" / "list.txt"), "--gallery", str(tmp_path / "g"), "--on-error", "skip"]
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
    result = runner.invoke(main, ["search", str(tiny_export), str(bad), "--gallery", str(tmp_path / "g"), "--rerank", "some"])
    assert result.exit_code == 2 and "expected an integer" in result.output
    result = runner.invoke(main, ["index", str(tmp_path / "no_export"), str(bad), "--gallery", str(tmp_path / "g")])
    assert result.exit_code == 1 and "export folder not found" in result.output
