"""zse_infer.evaluation.datasets: official split lists and folder-per-class data."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from zse_infer.errors import DatasetError, DatasetNotFoundError, InputError, SplitFileError, ZseError
from zse_infer.evaluation.datasets import (
    OFFICIAL_SPLITS,
    EvalSet,
    load_image_folders,
    load_official_split,
    official_split,
    read_class_list,
    read_split_list,
)
from zse_infer.evaluation.metrics import RankingMetrics

# First 40 lines of each official test list, and the test class lists (tests/data/splits).
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "splits"

# split -> (number of test classes, first class name, first listed sketch, first listed photo)
EXPECTED = {
    "sketchy_ext_25": (
        25,
        "cup",
        "Sketchy/256x256/sketch/tx_000000000000_ready/cup/n03147509_1920-10.png",
        "Sketchy/256x256/photo/tx_000000000000_ready/cup/n03063073_5868.jpg",
    ),
    "sketchy_ext_21": (
        21,
        "bat",
        "Sketchy/256x256/sketch/tx_000000000000_ready/bat/n02139199_11487-4.png",
        "Sketchy/256x256/photo/tx_000000000000_ready/bat/n02147947_3611.jpg",
    ),
    "tuberlin_ext": (
        30,
        "banana",
        "TUBerlin/png_ready/banana/836.png",
        "TUBerlin/ImageResized_ready/banana/n07753592_7382.JPEG",
    ),
    "quickdraw_ext": (30, "bat", "QuickDraw/sketches/bat/5147947173937152.png", "QuickDraw/images/bat/image_01353.jpg"),
}


@pytest.fixture
def data_root(tmp_path) -> Path:
    """A writable copy of the sample split folders (no images)."""
    root = tmp_path / "datasets"
    shutil.copytree(SAMPLES, root)
    return root


def _touch_listed_images(root: Path, split: str) -> None:
    spec = OFFICIAL_SPLITS[split]
    folder = root / spec.dataset_dir
    for name in (spec.sketch_list, spec.photo_list):
        for rel in read_split_list(folder / spec.split_dir / name).paths:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).touch()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- official splits


@pytest.mark.parametrize("split", sorted(EXPECTED))
def test_reads_sample_split(split):
    n_classes, first_class, first_sketch, first_photo = EXPECTED[split]
    evalset = load_official_split(SAMPLES, split, check_files=False)
    assert (evalset.num_sketches, evalset.num_photos, evalset.num_classes) == (40, 40, n_classes)
    assert evalset.sketch_paths[0] == SAMPLES / first_sketch
    assert evalset.photo_paths[0] == SAMPLES / first_photo
    assert evalset.class_names[0] == first_class
    # The sample lists are the first 40 lines: all of class 0.
    assert evalset.sketch_labels.dtype == np.int64 and not evalset.sketch_labels.any()
    assert evalset.summary() == {
        "name": split,
        "description": evalset.description,
        "sketches": 40,
        "photos": 40,
        "classes": n_classes,
        "classes_with_sketches": 1,
        "classes_with_photos": 1,
        "unmatched_sketches": 0,
    }
    assert "--testall" in evalset.description


def test_class_and_path_names_keep_their_spaces(tmp_path):
    classes = read_class_list(SAMPLES / "TUBerlin" / "zeroshot" / "cname_cid_zero.txt")
    assert classes[6] == "bottle opener" and classes[14] == "hot air balloon"
    listing = read_split_list(_write(tmp_path / "l.txt", "png_ready/bottle opener/2188.png 6\n"))
    assert listing.paths == ("png_ready/bottle opener/2188.png",)
    assert listing.labels.tolist() == [6]


@pytest.mark.parametrize("split", sorted(EXPECTED))
def test_quick_test_keeps_every_nth_line(split):
    full = load_official_split(SAMPLES, split, check_files=False)
    quick = load_official_split(SAMPLES, split, subsample=True, check_files=False)
    sketch_step, photo_step = OFFICIAL_SPLITS[split].quick_steps
    assert quick.sketch_paths == full.sketch_paths[::sketch_step]
    assert quick.photo_paths == full.photo_paths[::photo_step]
    assert quick.name == f"{split}_quick" and "quick test" in quick.description


@pytest.mark.parametrize(
    "split,expected",
    [
        # The sizes in the official code's comments: 15229->762 / 17101->1711, 2400->800 /
        # 27989->1400, 92291->770 / 54151->1806.
        ("sketchy_ext_25", (762, 1711)),
        ("tuberlin_ext", (800, 1400)),
        ("quickdraw_ext", (770, 1806)),
    ],
)
def test_quick_test_sizes_on_full_size_lists(tmp_path, caplog, split, expected):
    spec = OFFICIAL_SPLITS[split]
    split_dir = tmp_path / spec.dataset_dir / spec.split_dir
    split_dir.mkdir(parents=True)
    shutil.copy(SAMPLES / spec.dataset_dir / spec.split_dir / spec.class_list, split_dir / spec.class_list)
    n_sketches, n_photos = spec.full_counts
    _write(split_dir / spec.sketch_list, "".join(f"s/{i}.png {i % 21}\n" for i in range(n_sketches)))
    _write(split_dir / spec.photo_list, "".join(f"p/{i}.jpg {i % 21}\n" for i in range(n_photos)))
    with caplog.at_level(logging.WARNING, logger="zse_infer.evaluation.datasets"):
        quick = load_official_split(tmp_path, split, subsample=True, check_files=False)
    assert not caplog.records  # lists of the published sizes: no "not comparable" warning
    assert (quick.num_sketches, quick.num_photos) == expected


def test_warns_when_lists_differ_from_published_split(caplog):
    with caplog.at_level(logging.WARNING, logger="zse_infer.evaluation.datasets"):
        load_official_split(SAMPLES, "quickdraw", check_files=False)
    assert "92291" in caplog.text and "not be comparable" in caplog.text


def test_root_may_be_the_dataset_folder_itself():
    assert load_official_split(SAMPLES / "TUBerlin", "tuberlin", check_files=False) == load_official_split(
        SAMPLES, "tuberlin_ext", check_files=False
    )


@pytest.mark.parametrize(
    "alias,name",
    [
        ("Quickdraw", "quickdraw_ext"),
        ("tu-berlin", "tuberlin_ext"),
        ("test_class_sketchy21", "sketchy_ext_21"),
        ("sketchy_extend", "sketchy_ext_25"),
    ],
)
def test_split_aliases(alias, name):
    assert official_split(alias) is OFFICIAL_SPLITS[name]


def test_unknown_split_name():
    with pytest.raises(InputError, match="received 'imagenet', expected one of"):
        official_split("imagenet")


def test_check_files_passes_when_images_exist(data_root):
    _touch_listed_images(data_root, "sketchy_ext_25")
    evalset = load_official_split(data_root, "sketchy_ext_25")
    assert all(p.is_file() for p in evalset.sketch_paths + evalset.photo_paths)


def test_missing_image_names_list_line_and_file(data_root):
    _touch_listed_images(data_root, "tuberlin_ext")
    victim = data_root / "TUBerlin" / "ImageResized_ready" / "banana" / "n07753592_2212.JPEG"  # line 2
    victim.unlink()
    with pytest.raises(
        DatasetNotFoundError, match=r"1 of 40 photo images listed in .*line 2: .*n07753592_2212"
    ) as info:
        load_official_split(data_root, "tuberlin_ext")
    assert isinstance(info.value, FileNotFoundError)
    # The quick test only needs every 20th photo (lines 1 and 21): the missing one is not among them.
    load_official_split(data_root, "tuberlin_ext", subsample=True)


def test_missing_image_folder_is_named(data_root):
    with pytest.raises(
        DatasetNotFoundError, match=r"40 of 40 sketch images .*folder .*QuickDraw/sketches does not exist"
    ):
        load_official_split(data_root, "quickdraw_ext")


def test_missing_root_split_folder_and_list(data_root):
    with pytest.raises(DatasetNotFoundError, match="does not exist or is not a folder"):
        load_official_split(data_root / "nowhere", "sketchy_ext_25")
    with pytest.raises(DatasetNotFoundError, match=r"neither .*Sketchy/zeroshot1 nor .*zeroshot1 exists"):
        load_official_split(data_root / "QuickDraw", "sketchy_ext_25")
    (data_root / "Sketchy" / "zeroshot1" / "all_photo_filelist_zero.txt").unlink()
    with pytest.raises(
        DatasetNotFoundError, match=r"split list .*zeroshot1/all_photo_filelist_zero.txt does not exist"
    ):
        load_official_split(data_root, "sketchy_ext_25", check_files=False)


def test_label_outside_class_list(data_root):
    path = data_root / "QuickDraw" / "zeroshot" / "sketch_zero.txt"
    lines = path.read_text().splitlines()
    lines[4] = "sketches/bat/1.png 30"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        SplitFileError, match=r"sketch_zero.txt, line 5: label 30 is not a class id of .*expected 0..29"
    ):
        load_official_split(data_root, "quickdraw_ext", check_files=False)


# ---------------------------------------------------------------- list file parsing


@pytest.mark.parametrize(
    "text,line,match",
    [
        ("a/b.png 0\nlonely_path.png\n", 2, r"received 'lonely_path.png', expected '<relative/path> <label>'"),
        ("a/b.png zero\n", 1, r"label 'zero' is not a non-negative integer"),
        ("a/b.png -1\n", 1, r"label '-1' is not a non-negative integer"),
        ("/abs/b.png 0\n", 1, r"path '/abs/b.png' is absolute"),
    ],
)
def test_malformed_split_lines(tmp_path, text, line, match):
    with pytest.raises(SplitFileError, match=rf"list.txt, line {line}: {match}") as info:
        read_split_list(_write(tmp_path / "list.txt", text))
    assert info.value.line == line and isinstance(info.value, ValueError)


def test_blank_lines_are_skipped_and_line_numbers_kept(tmp_path):
    listing = read_split_list(_write(tmp_path / "list.txt", "\na/x.png 1\n\n  b/y z.png\t2  \n"))
    assert listing.paths == ("a/x.png", "b/y z.png")
    assert listing.labels.tolist() == [1, 2]
    assert listing.lines == (2, 4)


@pytest.mark.parametrize(
    "text,error,match",
    [
        ("cat 0\ndog 0\n", SplitFileError, r"line 2: class id 0 already used by 'cat'"),
        ("cat 0\ndog 2\n", DatasetError, r"ids must be 0..1 with none missing"),
        ("cat\n", SplitFileError, r"line 1: received 'cat', expected '<class name> <id>'"),
        ("\n\n", DatasetError, "no entries"),
    ],
)
def test_malformed_class_lists(tmp_path, text, error, match):
    with pytest.raises(error, match=match):
        read_class_list(_write(tmp_path / "cname_cid_zero.txt", text))


def test_unreadable_list_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"class list .*missing\.txt does not exist"):
        read_class_list(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad 0\n")
    with pytest.raises(DatasetError, match="not UTF-8 text"):
        read_split_list(tmp_path / "bin.txt")


# ---------------------------------------------------------------- folder per class


def _make_tree(root: Path, files: list[str]) -> None:
    for rel in files:
        _write(root / rel, "")


def test_folder_per_class(tmp_path):
    _make_tree(
        tmp_path,
        [
            "sketch/dog/c.png",
            "sketch/cat/b.PNG",
            "sketch/cat/a.png",
            "sketch/owl/d.png",  # no owl photos: a query that will be skipped
            "sketch/cat/notes.txt",  # not an image
            "photo/cat/x.jpg",
            "photo/dog/y.jpeg",
            "photo/dog/.hidden.jpg",
            "photo/emu/e.webp",  # distractor class without sketches
            "photo/.cache/z.jpg",
        ],
    )
    evalset = load_image_folders(tmp_path, name="mine")
    assert evalset.class_names == ("cat", "dog", "emu", "owl")
    assert [p.relative_to(tmp_path).as_posix() for p in evalset.sketch_paths] == [
        "sketch/cat/a.png",
        "sketch/cat/b.PNG",
        "sketch/dog/c.png",
        "sketch/owl/d.png",
    ]
    assert evalset.sketch_labels.tolist() == [0, 0, 1, 3]
    assert [p.name for p in evalset.photo_paths] == ["x.jpg", "y.jpeg", "e.webp"]
    assert evalset.photo_labels.tolist() == [0, 1, 2]
    summary = evalset.summary()
    assert summary["unmatched_sketches"] == 1 and summary["classes_with_photos"] == 3
    assert "1 sketches have no photo of their class" in evalset.describe()
    # The summary predicts exactly the queries the metrics skip.
    metrics = RankingMetrics(evalset.photo_labels)
    metrics.update(np.zeros((evalset.num_sketches, evalset.num_photos)), evalset.sketch_labels)
    assert metrics.num_skipped == summary["unmatched_sketches"]


def test_folder_names_alternatives_and_explicit(tmp_path):
    _make_tree(tmp_path, ["sketches/a/1.png", "images/a/2.jpg", "drawings/a/3.png"])
    assert [p.name for p in load_image_folders(tmp_path).sketch_paths] == ["1.png"]
    assert [p.name for p in load_image_folders(tmp_path, sketch_dir="drawings").sketch_paths] == ["3.png"]
    assert load_image_folders(tmp_path).name == tmp_path.name


def test_folder_errors(tmp_path, caplog):
    with pytest.raises(DatasetNotFoundError, match="does not exist or is not a folder"):
        load_image_folders(tmp_path / "nothing")
    _make_tree(tmp_path, ["sketch/a/1.png"])
    with pytest.raises(DatasetNotFoundError, match=r"no photo folder in .*tried .*photo, .*photos, .*image, .*images"):
        load_image_folders(tmp_path)
    (tmp_path / "photo").mkdir()
    _write(tmp_path / "photo" / "stray.jpg", "")
    with pytest.raises(DatasetError, match=r"photo has no class folders, expected .*photo/<class>/<image>"):
        load_image_folders(tmp_path)
    (tmp_path / "photo" / "a").mkdir()
    with (
        caplog.at_level(logging.WARNING, logger="zse_infer.evaluation.datasets"),
        pytest.raises(DatasetError, match=r"no photo images found in .*photo: expected"),
    ):
        load_image_folders(tmp_path)
    assert "holds no images" in caplog.text and "directly in" in caplog.text


# ---------------------------------------------------------------- EvalSet


def test_evalset_is_immutable_and_validated():
    evalset = EvalSet("x", ["s0.png", "s1.png"], [0, 1], ["p0.jpg"], [1], ("a", "b"))
    assert evalset.sketch_paths == (Path("s0.png"), Path("s1.png"))
    with pytest.raises(ValueError):
        evalset.sketch_labels[0] = 1  # read-only array
    with pytest.raises(InputError, match="received 1 labels, expected 2"):
        EvalSet("x", ["s0.png", "s1.png"], [0], [], [], ("a",))
    with pytest.raises(InputError, match=r"received values in \[0, 2\], expected class indices in \[0, 1\]"):
        EvalSet("x", ["s0.png", "s1.png"], [0, 2], [], [], ("a", "b"))
    with pytest.raises(InputError, match="sketch_step: received 0"):
        evalset.subsample(sketch_step=0)
    assert evalset.subsample(sketch_step=2).sketch_paths == (Path("s0.png"),)
    assert evalset.class_counts() == {"a": {"sketches": 1, "photos": 0}, "b": {"sketches": 1, "photos": 1}}


def test_errors_share_the_package_base_class():
    for error in (DatasetError, DatasetNotFoundError, SplitFileError):
        assert issubclass(error, ZseError)


def test_eval_sets_are_hashable_and_equal_sets_hash_alike():
    # __eq__ alone made EvalSet unhashable (no sets, no dict keys, no functools.cache arguments).
    a = EvalSet("x", ["s0.png", "s1.png"], [0, 1], ["p0.jpg"], [1], ("a", "b"))
    b = EvalSet("x", ["s0.png", "s1.png"], [0, 1], ["p0.jpg"], [1], ("a", "b"))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
