"""Labelled evaluation sets: the official ZSE-SBIR test splits and folder-per-class data (docs/evaluation.md).
Every problem is a :class:`~zse_infer.errors.DatasetError` naming the file (and line) at fault."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import DatasetError, DatasetNotFoundError, InputError, SplitFileError, check_int

logger = logging.getLogger(__name__)

__all__ = ["IMAGE_EXTENSIONS", "OFFICIAL_SPLITS", "EvalSet", "SplitList", "SplitSpec"]
__all__ += ["load_image_folders", "load_official_split", "official_split", "read_class_list", "read_split_list"]

#: File extensions :func:`load_image_folders` takes for images (compared case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

_SKETCH_DIRS = ("sketch", "sketches")
_PHOTO_DIRS = ("photo", "photos", "image", "images")


@dataclass(frozen=True, eq=False)  # eq below: the arrays need array_equal
class EvalSet:
    """Query sketches and gallery photos; the labels (int64, read-only) index ``class_names``."""

    name: str
    sketch_paths: tuple[Path, ...]
    sketch_labels: np.ndarray
    photo_paths: tuple[Path, ...]
    photo_labels: np.ndarray
    class_names: tuple[str, ...]
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for kind in ("sketch", "photo"):
            paths = tuple(p if isinstance(p, Path) else Path(p) for p in getattr(self, f"{kind}_paths"))
            labels = _label_array(getattr(self, f"{kind}_labels"), f"{kind}_labels")
            if labels.size != len(paths):
                expected = f"expected {len(paths)} (one per {kind} path)"
                raise InputError(f"{kind}_labels: received {labels.size} labels, {expected}")
            if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
                expected = f"expected class indices in [0, {len(self.class_names) - 1}]"
                raise InputError(f"{kind}_labels: received values in [{labels.min()}, {labels.max()}], {expected}")
            # Frozen dataclass: fields are set through object.__setattr__ once, here.
            object.__setattr__(self, f"{kind}_paths", paths)
            object.__setattr__(self, f"{kind}_labels", labels)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    def _key(self) -> tuple:
        return (self.name, self.class_names, self.sketch_paths, self.photo_paths)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EvalSet):
            return NotImplemented
        labels = ("sketch_labels", "photo_labels")
        return self._key() == other._key() and all(np.array_equal(getattr(self, a), getattr(other, a)) for a in labels)

    def __hash__(self) -> int:  # __eq__ alone would make sets unhashable: what it compares, less the arrays
        return hash(self._key())

    @property
    def num_sketches(self) -> int:
        return len(self.sketch_paths)

    @property
    def num_photos(self) -> int:
        return len(self.photo_paths)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subsample(self, sketch_step: int = 1, photo_step: int = 1) -> EvalSet:
        """Every ``sketch_step``-th sketch and ``photo_step``-th photo from the first (the official quick test)."""
        check_int(sketch_step, "sketch_step", expected="a positive integer")
        check_int(photo_step, "photo_step", expected="a positive integer")
        return replace(
            self,
            sketch_paths=self.sketch_paths[::sketch_step],
            sketch_labels=self.sketch_labels[::sketch_step],
            photo_paths=self.photo_paths[::photo_step],
            photo_labels=self.photo_labels[::photo_step],
        )

    def class_counts(self) -> dict[str, dict[str, int]]:
        """``{class name: {"sketches": n, "photos": m}}`` in class-index order."""
        sketches = np.bincount(self.sketch_labels, minlength=self.num_classes)
        photos = np.bincount(self.photo_labels, minlength=self.num_classes)
        counts = zip(self.class_names, sketches, photos, strict=True)
        return {name: {"sketches": int(s), "photos": int(p)} for name, s, p in counts}

    def summary(self) -> dict[str, Any]:
        """Counts, JSON-ready; ``unmatched_sketches`` have no photo of their class (the metrics skip them)."""
        counts = self.class_counts().values()
        return {
            "name": self.name,
            "description": self.description,
            "sketches": self.num_sketches,
            "photos": self.num_photos,
            "classes": self.num_classes,
            "classes_with_sketches": sum(1 for c in counts if c["sketches"]),
            "classes_with_photos": sum(1 for c in counts if c["photos"]),
            "unmatched_sketches": sum(c["sketches"] for c in counts if not c["photos"]),
        }

    def describe(self) -> str:
        """A one-paragraph, human-readable summary."""
        s = self.summary()
        text = (
            f"{s['name']}: {s['sketches']} sketches ({s['classes_with_sketches']} classes), "
            f"{s['photos']} photos ({s['classes_with_photos']} classes), {s['classes']} classes in all"
        )
        if s["description"]:
            text += f"\n  {s['description']}"
        if s["unmatched_sketches"]:
            text += f"\n  {s['unmatched_sketches']} sketches have no photo of their class and will be skipped"
        return text


def _label_array(labels: Any, name: str) -> np.ndarray:
    array = np.asarray(labels)
    if array.size == 0:
        array = array.astype(np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise InputError(f"{name}: received {array.dtype} array of shape {array.shape}, expected 1-D integers")
    array = array.astype(np.int64)  # always a private copy, safe to freeze
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class SplitList:
    """A parsed ``<relative path> <label>`` list; ``lines`` are 1-based line numbers."""

    source: Path
    paths: tuple[str, ...]
    labels: np.ndarray
    lines: tuple[int, ...]


def read_split_list(path: str | os.PathLike) -> SplitList:
    """Parse an official list file: ``relative/path label`` per line (the path may hold spaces)."""
    source = Path(path)
    entries: list[tuple[str, int, int]] = []  # (path, label, line)
    for number, rel, label in _entries(source, "split list", "<relative/path> <label>"):
        if PurePosixPath(rel).is_absolute():
            problem = f"path {rel!r} is absolute, expected a path relative to the dataset folder"
            raise SplitFileError(source, number, problem)
        entries.append((rel, _parse_id(label, source, number, "label"), number))
    paths, labels, lines = zip(*entries, strict=True)
    return SplitList(source, paths, np.asarray(labels, dtype=np.int64), lines)


def read_class_list(path: str | os.PathLike) -> tuple[str, ...]:
    """Parse a ``cname_cid*.txt`` file (``class name<space>id`` per line; ids 0..n-1) into names by id."""
    source = Path(path)
    names: dict[int, str] = {}
    for number, name, text in _entries(source, "class list", "<class name> <id>"):
        cid = _parse_id(text, source, number, "class id")
        if cid in names:
            raise SplitFileError(source, number, f"class id {cid} already used by {names[cid]!r}")
        names[cid] = name
    missing = sorted(set(range(len(names))) - names.keys())
    if missing:
        received = f"received ids up to {max(names)} with {missing[:5]} missing"
        raise DatasetError(f"{source}: class ids must be 0..{len(names) - 1} with none missing, {received}")
    return tuple(names[i] for i in range(len(names)))


def _entries(source: Path, what: str, form: str) -> Iterable[tuple[int, str, str]]:
    """(1-based line number, first field, last field) of the non-blank ``form`` lines of a text file."""
    if not source.is_file():
        raise DatasetNotFoundError(f"{what} {source} does not exist or is not a file")
    try:
        content = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{source}: not UTF-8 text ({exc}), expected a {what}") from exc
    except OSError as exc:
        raise DatasetError(f"{source}: cannot be read ({exc.strerror or exc})") from exc
    empty = True
    for number, raw in enumerate(content.splitlines(), start=1):
        text = raw.strip()
        fields = text.rsplit(None, 1)
        if len(fields) == 1:
            raise SplitFileError(source, number, f"received {text!r}, expected '{form}'")
        if fields:
            empty = False
            yield number, fields[0], fields[1]
    if empty:
        raise DatasetError(f"{source}: no entries, expected '{form}' lines")


def _parse_id(text: str, source: Path, line: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise SplitFileError(source, line, f"{what} {text!r} is not a non-negative integer")
    return value


@dataclass(frozen=True)
class SplitSpec:
    """Where one official test split lives under the dataset root; ``quick_steps`` (sketch, photo): the quick test's
    subsampling; ``full_counts``: the published list sizes."""

    name: str
    title: str
    dataset_dir: str
    split_dir: str
    sketch_list: str
    photo_list: str
    sketch_folder: str
    photo_folder: str
    quick_steps: tuple[int, int]
    full_counts: tuple[int, int] | None = None
    class_list: str = "cname_cid_zero.txt"


def _sketchy(name: str, classes: int, split_dir: str, counts: tuple[int, int] | None) -> SplitSpec:
    return SplitSpec(
        name=name,
        title=f"Sketchy Ext, {classes} unseen classes ({split_dir})",
        dataset_dir="Sketchy",
        split_dir=split_dir,
        sketch_list="sketch_tx_000000000000_ready_filelist_zero.txt",
        photo_list="all_photo_filelist_zero.txt",
        sketch_folder="256x256/sketch/tx_000000000000_ready",
        photo_folder="256x256/photo/tx_000000000000_ready",
        quick_steps=(20, 10),
        full_counts=counts,
    )


#: The official test splits by name (``--dataset``/``--test_class`` of the official code in brackets).
OFFICIAL_SPLITS: dict[str, SplitSpec] = {
    # [sketchy_extend / test_class_sketchy25]: the split of the paper's main table.
    "sketchy_ext_25": _sketchy("sketchy_ext_25", 25, "zeroshot1", (15229, 17101)),
    # [sketchy_extend / test_class_sketchy21]: the 21 classes not in ImageNet-1K.
    "sketchy_ext_21": _sketchy("sketchy_ext_21", 21, "zeroshot0", None),
    # [tu_berlin / test_class_tuberlin30]
    "tuberlin_ext": SplitSpec(
        name="tuberlin_ext",
        title="TU-Berlin Ext, 30 unseen classes",
        dataset_dir="TUBerlin",
        split_dir="zeroshot",
        sketch_list="png_ready_filelist_zero.txt",
        photo_list="ImageResized_ready_filelist_zero.txt",
        sketch_folder="png_ready",
        photo_folder="ImageResized_ready",
        quick_steps=(3, 20),
        full_counts=(2400, 27989),
    ),
    # [Quickdraw / Quickdraw]
    "quickdraw_ext": SplitSpec(
        name="quickdraw_ext",
        title="QuickDraw Ext, 30 unseen classes",
        dataset_dir="QuickDraw",
        split_dir="zeroshot",
        sketch_list="sketch_zero.txt",
        photo_list="all_photo_zero.txt",
        sketch_folder="sketches",
        photo_folder="images",
        quick_steps=(120, 30),
        full_counts=(92291, 54151),
    ),
}

# Other spellings users bring from the paper or the official command line.
_ALIASES = {
    alias: split
    for split, aliases in {
        "sketchy_ext_25": ("sketchy", "sketchy25", "sketchy_extend", "test_class_sketchy25"),
        "sketchy_ext_21": ("sketchy21", "test_class_sketchy21"),
        "tuberlin_ext": ("tuberlin", "tu_berlin", "test_class_tuberlin30"),
        "quickdraw_ext": ("quickdraw",),
    }.items()
    for alias in aliases
}


def official_split(name: str) -> SplitSpec:
    """The :class:`SplitSpec` of an official split name or alias (case and ``-``/``_`` insensitive)."""
    key = str(name).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in OFFICIAL_SPLITS:
        expected = f"expected one of {sorted(OFFICIAL_SPLITS)} (or an alias: {sorted(_ALIASES)})"
        raise InputError(f"split: received {name!r}, {expected}")
    return OFFICIAL_SPLITS[key]


def load_official_split(
    root: str | os.PathLike, split: str = "sketchy_ext_25", *, subsample: bool = False, check_files: bool = True
) -> EvalSet:
    """Read an official test split as the official code does. ``root``: the official ``--data_path`` or one dataset's
    folder; ``split``: a name of :data:`OFFICIAL_SPLITS` or an alias; ``subsample``: the official quick test (no
    ``--testall``); ``check_files``: list every class folder now, so a missing download fails here, not hours later."""
    spec = official_split(split)
    folder = _dataset_folder(Path(root), spec)
    split_dir = folder / spec.split_dir
    classes = read_class_list(split_dir / spec.class_list)
    sketches = _checked_list(split_dir / spec.sketch_list, len(classes), split_dir / spec.class_list)
    photos = _checked_list(split_dir / spec.photo_list, len(classes), split_dir / spec.class_list)
    counts = (len(sketches.paths), len(photos.paths))
    if spec.full_counts is not None and counts != spec.full_counts:
        logger.warning(
            "%s: the lists hold %d sketches and %d photos, the published split %d and %d; "
            "results will not be comparable with the paper",
            spec.title,
            *counts,
            *spec.full_counts,
        )
    sketch_step, photo_step = spec.quick_steps if subsample else (1, 1)
    sketches, photos = _every(sketches, sketch_step), _every(photos, photo_step)
    sketch_paths, photo_paths = (tuple(folder / p for p in listed.paths) for listed in (sketches, photos))
    if check_files:
        _check_listed_files(sketch_paths, sketches, folder / spec.sketch_folder, "sketch")
        _check_listed_files(photo_paths, photos, folder / spec.photo_folder, "photo")
    quick = f"; official quick test: 1 sketch in {sketch_step}, 1 photo in {photo_step}"
    description = spec.title + (quick if subsample else "; full test set (official --testall)")
    name = spec.name + ("_quick" if subsample else "")
    evalset = EvalSet(name, sketch_paths, sketches.labels, photo_paths, photos.labels, classes, description)
    logger.info("%s", evalset.describe())
    return evalset


def _dataset_folder(root: Path, spec: SplitSpec) -> Path:
    if not root.is_dir():
        expected = f"expected the official data folder (holding {spec.dataset_dir}/{spec.split_dir}/)"
        raise DatasetNotFoundError(f"dataset root {root} does not exist or is not a folder, {expected}")
    for candidate in (root / spec.dataset_dir, root):
        if (candidate / spec.split_dir).is_dir():
            return candidate
    raise DatasetNotFoundError(
        f"{spec.title}: neither {root / spec.dataset_dir / spec.split_dir} nor {root / spec.split_dir} "
        f"exists; expected root to be the official data folder (holding {spec.dataset_dir}/{spec.split_dir}/"
        f"{spec.sketch_list}) or the {spec.dataset_dir} folder itself"
    )


def _checked_list(path: Path, n_classes: int, class_list: Path) -> SplitList:
    entries = read_split_list(path)
    bad = np.flatnonzero(entries.labels >= n_classes)
    if bad.size:
        i = int(bad[0])
        problem = f"label {entries.labels[i]} is not a class id of {class_list} (expected 0..{n_classes - 1})"
        raise SplitFileError(path, entries.lines[i], problem)
    return entries


def _every(entries: SplitList, step: int) -> SplitList:
    return replace(entries, paths=entries.paths[::step], labels=entries.labels[::step], lines=entries.lines[::step])


def _check_listed_files(paths: Sequence[Path], entries: SplitList, image_folder: Path, kind: str) -> None:
    by_folder: dict[Path, list[int]] = defaultdict(list)
    for i, path in enumerate(paths):
        by_folder[path.parent].append(i)
    missing: list[int] = []
    for folder, indices in by_folder.items():
        try:
            present = set(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            present = set()
        except OSError as exc:
            raise DatasetError(f"cannot list {folder} ({exc.strerror or exc}), needed for {entries.source}") from exc
        missing += [i for i in indices if paths[i].name not in present]
    if missing:
        first = min(missing)
        example = f"e.g. line {entries.lines[first]}: {paths[first]}{_missing_ancestor(paths[first])}"
        problem = f"{len(missing)} of {len(paths)} {kind} images listed in {entries.source} do not exist, {example}"
        raise DatasetNotFoundError(f"{problem}; expected the images unpacked under {image_folder}")


def _missing_ancestor(path: Path) -> str:
    """' (folder X does not exist)' for the highest missing folder above ``path``, else ''."""
    missing = None
    for parent in path.parents:
        if parent.is_dir():
            break
        missing = parent
    return f" (folder {missing} does not exist)" if missing is not None else ""


def load_image_folders(
    root: str | os.PathLike,
    *,
    sketch_dir: str | None = None,
    photo_dir: str | None = None,
    extensions: Iterable[str] = IMAGE_EXTENSIONS,
    name: str | None = None,
) -> EvalSet:
    """Read a folder-per-class layout: ``root/sketch/<class>/<image>``, ``root/photo/<class>/<image>``; ``sketch_dir`` /
    ``photo_dir`` default to the first existing of ``sketch``, ``sketches`` / ``photo``, ``photos``, ``image``,
    ``images``. Classes are the sorted folder names; hidden files are ignored."""
    base = Path(root)
    if not base.is_dir():
        raise DatasetNotFoundError(f"dataset root {base} does not exist or is not a folder")
    suffixes = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    sketch_root = _pick_folder(base, sketch_dir, _SKETCH_DIRS, "sketch")
    photo_root = _pick_folder(base, photo_dir, _PHOTO_DIRS, "photo")
    sketch_files, photo_files = _class_files(sketch_root, suffixes), _class_files(photo_root, suffixes)
    classes = tuple(sorted(sketch_files.keys() | photo_files.keys()))
    sketch_paths, sketch_labels = _flatten(sketch_files, classes)
    photo_paths, photo_labels = _flatten(photo_files, classes)
    for kind, folder, paths in (("sketch", sketch_root, sketch_paths), ("photo", photo_root, photo_paths)):
        if not paths:
            expected = f"expected {folder}/<class>/<image> with one of {sorted(suffixes)}"
            raise DatasetError(f"no {kind} images found in {folder}: {expected}")
    description = f"folder per class: {sketch_root} and {photo_root}"
    evalset = EvalSet(
        name or base.name, tuple(sketch_paths), sketch_labels, tuple(photo_paths), photo_labels, classes, description
    )
    logger.info("%s", evalset.describe())
    return evalset


def _pick_folder(base: Path, given: str | None, defaults: tuple[str, ...], kind: str) -> Path:
    candidates = (given,) if given is not None else defaults
    for candidate in candidates:
        if (base / candidate).is_dir():
            return base / candidate
    tried = ", ".join(str(base / c) for c in candidates)
    raise DatasetNotFoundError(
        f"no {kind} folder in {base}: tried {tried}; expected <root>/{candidates[0]}/<class>/<image>"
    )


def _class_files(folder: Path, suffixes: set[str]) -> dict[str, list[Path]]:
    classes: dict[str, list[Path]] = {}
    stray = 0
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            stray += 1
            continue
        classes[entry.name] = sorted(
            f for f in entry.iterdir() if not f.name.startswith(".") and f.suffix.lower() in suffixes and f.is_file()
        )
        if not classes[entry.name]:
            logger.warning("class folder %s holds no images (%s); the class gets none", entry, sorted(suffixes))
    if stray:
        logger.warning("%d files directly in %s are ignored: images belong in %s/<class>/", stray, folder, folder)
    if not classes:
        raise DatasetError(f"{folder} has no class folders, expected {folder}/<class>/<image>")
    return classes


def _flatten(files: dict[str, list[Path]], classes: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    paths = [path for cls in classes for path in files.get(cls, [])]
    labels = [index for index, cls in enumerate(classes) for _ in files.get(cls, [])]
    return paths, np.asarray(labels, dtype=np.int64)
