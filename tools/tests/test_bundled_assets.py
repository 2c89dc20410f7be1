"""The bundled demo assets against the tables they were made from: every file's icon set and
licence, unseen concepts only, no query meeting its own design, weights trained on seen concepts."""

import json

import pytest

from tools import DATA
from tools.bundle import attribution_md, checkpoint_metadata
from tools.iconify import ICONIFY, ROLES, family, licence_allowed
from tools.quickdraw import FAMILY
from tools.split import load_split
from zse_infer.demo.assets import load_demo_assets


@pytest.fixture(scope="module")
def assets():
    return load_demo_assets(verify=True)


def test_every_file_carries_its_set_licence(assets):
    sets = {r["prefix"]: r for r in json.loads((DATA / "icon_sets.json").read_text())["kept"]}
    attribution = (assets.root / "ATTRIBUTION.md").read_text()
    for item in assets.gallery + assets.queries:
        assert item.record["package"] == ICONIFY.spec
        assert item.licence == sets[item.source]["licence"] and licence_allowed(item.licence), item.source
        assert assets.licences[item.source]["licence"] == item.licence
    for prefix, rec in assets.licences.items():
        assert f"`{prefix}`" in attribution, prefix
        if rec["licence"] in ("MIT", "ISC"):  # their text travels with the copies
            text = (assets.root / "LICENSES" / f"{prefix}-{rec['licence']}.txt").read_text()
            assert len(text) > 500 and (rec["author"] or rec["name"]) in text, prefix
    assert (assets.root / "LICENSES" / "Apache-2.0.txt").stat().st_size > 500


def test_attribution_file_is_what_the_bundle_writes(assets):
    manifest = json.loads((assets.root / "manifest.json").read_text())
    assert (assets.root / "ATTRIBUTION.md").read_text() == attribution_md(manifest["licences"], manifest["model"])


def test_gallery_is_unseen_and_no_query_meets_its_own_design(assets):
    unseen = set(load_split()["unseen"])
    assert {i.label for i in assets.gallery + assets.queries} <= unseen
    assert all(ROLES[i.source].role == "photo" for i in assets.gallery)
    assert all(ROLES[i.source].role == "drawing" for i in assets.queries)
    assert not {family(i.source) for i in assets.queries} & {family(i.source) for i in assets.gallery}
    # every query has its class in the gallery
    assert {i.label for i in assets.queries} <= {i.label for i in assets.gallery}


def test_bundled_checkpoint_was_trained_on_seen_concepts_only(assets):
    pytest.importorskip("safetensors")
    meta = checkpoint_metadata(assets.checkpoint)
    assert meta["concepts"] <= len(load_split()["seen"])
    assert all(s == FAMILY or ROLES[s].role == "drawing" for s in meta["sketch_sources"])  # FAMILY: Quick, Draw!
    assert all(ROLES[s].role == "photo" for s in meta["photo_sources"])


def test_weights_trained_on_quick_draw_credit_it(assets):
    """Quick, Draw! (CC BY 4.0) asks for credit wherever a model trained on it is published."""
    pytest.importorskip("safetensors")
    manifest = json.loads((assets.root / "manifest.json").read_text())
    trained_on_it = FAMILY in checkpoint_metadata(assets.checkpoint)["sketch_sources"]
    attribution = (assets.root / "ATTRIBUTION.md").read_text()
    credited = "Quick, Draw!" in attribution and "Creative Commons Attribution 4.0" in attribution
    assert credited == trained_on_it == ("Quick, Draw!" in manifest["model"]["trained_on"])
