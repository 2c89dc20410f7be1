"""The demo data: licences of the icon sets, the concept table, its split and the data pack."""

import json
from collections import Counter

import numpy as np
import pytest

from tools import DATA, iconify
from tools.concepts import MIN_DRAWINGS, MIN_PHOTOS, Concept, load_concepts
from tools.fetch import package_dir
from tools.render import STROKE_SCALES, items
from tools.split import UNSEEN_FRACTION, families, load_split, make_split
from zse_infer.errors import ConfigError


@pytest.fixture(scope="module")
def concepts():
    return load_concepts()


def test_icon_sets_table_keeps_only_allowed_licences():
    table = json.loads((DATA / "icon_sets.json").read_text())
    kept = {r["prefix"]: r for r in table["kept"]}
    assert set(kept) == set(iconify.ROLES)  # every set in use is recorded, with its licence
    for r in kept.values():
        assert iconify.licence_allowed(r["licence"]), r
        assert r["author"] and r["licence_url"] and r["package"] == iconify.ICONIFY.spec
    excluded = {r["licence"] for r in table["excluded_by_licence"]}
    assert {"CC-BY-SA-4.0", "CC-BY-NC-4.0", "GPL-3.0", "OFL-1.1"} <= excluded
    assert not any(iconify.licence_allowed(x) for x in excluded)


def test_licence_rule():
    for ok in ("MIT", "Apache-2.0", "CC-BY-4.0", "CC0-1.0", "ISC"):
        assert iconify.licence_allowed(ok)
    for bad in ("CC-BY-SA-4.0", "CC-BY-NC-4.0", "CC-BY-ND-4.0", "GPL-2.0-only", "MPL-2.0", "OFL-1.1", None, "unknown"):
        assert not iconify.licence_allowed(bad)
    with pytest.raises(ConfigError, match="licence"):
        iconify.check_roles({p: {"licence": "CC-BY-SA-4.0"} for p in iconify.ROLES})


def test_concept_table(concepts):
    assert len(concepts) >= 1000
    assert len({c.name for c in concepts}) == len(concepts)
    roles = iconify.ROLES
    claimed = Counter()
    for c in concepts:
        assert sum(map(len, c.photos.values())) >= MIN_PHOTOS and c.n_drawings >= MIN_DRAWINGS, c.name
        assert all(roles[p].role == "photo" for p in c.photos) and all(roles[p].role == "drawing" for p in c.drawings)
        claimed.update(f"{p}:{i}" for g in (c.photos, c.drawings) for p, v in g.items() for i in v)
    assert max(claimed.values()) == 1  # an icon belongs to one concept only


def test_fixed_split_is_what_the_rule_computes(concepts):
    fixed = load_split()
    again = make_split(list(reversed(concepts)))
    for key in ("seen", "unseen", "validation", "counts"):
        assert fixed[key] == again[key], key


def test_split_is_disjoint_stratified_and_keeps_families_together(concepts):
    split = load_split()
    seen, unseen = set(split["seen"]), set(split["unseen"])
    assert not seen & unseen and seen | unseen == {c.name for c in concepts}
    per_group = Counter(c.group for c in concepts)
    for group, n in per_group.items():
        u = split["counts"][group]["unseen"]
        assert 0 < u < n and abs(u - UNSEEN_FRACTION * n) <= 0.1 * n + 3, group
    fam = families(concepts)
    sides = {}
    for name, f in fam.items():
        assert sides.setdefault(f, name in unseen) == (name in unseen), f
    by_name = {c.name: c for c in concepts}
    for name, held in split["validation"].items():
        assert name in seen
        c = by_name[name]
        icons = {f"{p}:{i}" for p, v in c.drawings.items() for i in v}
        assert set(held) <= icons and len(icons) - len(held) >= 2  # some drawings left to train on


def _fake_iconify(cache):
    """Two tiny sets in the package layout: one stroke drawing set, one colour emoji set."""
    folder = package_dir(cache, iconify.ICONIFY) / "json"
    folder.mkdir(parents=True)
    draw = {
        "prefix": "tabler",
        "width": 24,
        "height": 24,
        "icons": {
            "cat": {"body": '<path fill="none" stroke="currentColor" stroke-width="2" d="M4 4h16v16H4z"/>'},
            "dog": {"body": '<circle cx="12" cy="12" r="8" fill="none" stroke="currentColor" stroke-width="2"/>'},
        },
    }
    photo = {
        "prefix": "twemoji",
        "width": 36,
        "height": 36,
        "icons": {
            "cat-face": {"body": '<circle cx="18" cy="18" r="14" fill="#f4900c"/>'},
            "dog-face": {"body": '<rect x="4" y="4" width="28" height="28" fill="#99aab5"/>'},
        },
    }
    (folder / "tabler.json").write_text(json.dumps(draw))
    (folder / "twemoji.json").write_text(json.dumps(photo))
    iconify.load_set.cache_clear()
    return cache


def test_pack_round_trip(tmp_path):
    pytest.importorskip("resvg_py")
    from tools.pack import load_pack, pack

    cache = _fake_iconify(tmp_path / "cache")
    concepts = [
        Concept("cat", "Animals", photos={"twemoji": ["cat-face"]}, drawings={"tabler": ["cat"]}),
        Concept("dog", "Animals", photos={"twemoji": ["dog-face"]}, drawings={"tabler": ["dog"]}),
    ]
    split = {"seen": ["cat"], "unseen": ["dog"], "validation": {"cat": ["tabler:cat"]}}
    summary = pack(cache, concepts, split, "zse_demo", tmp_path / "pack.npz")
    iconify.load_set.cache_clear()
    n_draw = 2 * len(STROKE_SCALES)
    assert summary["drawings"] == n_draw and summary["photos"] == 2 and summary["skipped"] == 0
    renders, codes = load_pack(tmp_path / "pack.npz")
    assert renders.images.shape == (n_draw + 2, 112, 112, 3) and renders.images.dtype == np.uint8
    assert list(renders.modality) == ["sketch"] * n_draw + ["photo"] * 2
    assert set(renders.concept[codes == 2]) == {"dog"} and set(renders.concept[codes == 1]) == {"cat"}
    # Thinner strokes, less ink: the stroke variants differ.
    ink = [(renders.images[i] < 128).sum() for i in range(len(STROKE_SCALES))]
    assert ink == sorted(ink) and ink[0] < ink[-1]
    assert renders.images[-1].std() > 0  # a photo is not blank


def test_items_list_photos_then_stroke_variants():
    c = Concept("cat", "Animals", photos={"twemoji": ["cat-face"]}, drawings={"tabler": ["cat"], "ph": ["cat-light"]})
    got = [(i.role, i.prefix, i.variant) for i in items(c)]
    assert got[0] == ("photo", "twemoji", "")
    assert got[1:] == [("drawing", "ph", "")] + [("drawing", "tabler", f"s{s:g}") for s in STROKE_SCALES]


def test_fetch_packs_iconify_into_the_cache(tmp_path, monkeypatch):
    import io
    import tarfile

    from tools import fetch

    packed = []

    def fake_npm_pack(spec, into):
        packed.append(spec)
        with tarfile.open(into / iconify.ICONIFY.tarball, "w:gz") as tar:
            data = b'{"prefix": "tabler", "icons": {}}'
            info = tarfile.TarInfo("package/json/tabler.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    monkeypatch.setattr(fetch, "_npm_pack", fake_npm_pack)
    out = fetch.fetch(tmp_path)
    assert packed == ["@iconify/json@2.2.535"]
    assert (out["@iconify/json@2.2.535"] / "json" / "tabler.json").is_file()
    fetch.fetch(tmp_path)  # already unpacked: nothing packed again
    assert packed == ["@iconify/json@2.2.535"]
