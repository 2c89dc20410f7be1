"""The bundled demo assets: manifest matches the files, licences are recorded, the checkpoint loads."""

import json

import pytest

from zse_infer.demo.assets import assets_dir, load_demo_assets
from zse_infer.demo.iconify import ICONIFY, ROLES, family, licence_allowed
from zse_infer.demo.split_v2 import load_split_v2
from zse_infer.errors import IntegrityError


@pytest.fixture(scope="module")
def assets():
    return load_demo_assets(verify=True)


def test_manifest_lists_exactly_the_image_files(assets):
    listed = {item.path.relative_to(assets.root).as_posix() for item in assets.gallery + assets.queries}
    on_disk = {p.relative_to(assets.root).as_posix() for sub in ("gallery", "queries") for p in (assets.root / sub).iterdir()}
    assert listed == on_disk
    assert len(assets.gallery) >= 100 and len(assets.queries) >= 62


def test_every_file_carries_its_set_licence(assets):
    sets = {r["prefix"]: r for r in json.loads((assets.root.parent.parent / "demo" / "icon_sets.json").read_text())["kept"]}
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


def test_gallery_is_unseen_and_no_query_meets_its_own_design(assets):
    unseen = set(load_split_v2()["unseen"])
    assert {i.label for i in assets.gallery + assets.queries} <= unseen
    assert all(ROLES[i.source].role == "photo" for i in assets.gallery)
    assert all(ROLES[i.source].role == "drawing" for i in assets.queries)
    assert not {family(i.source) for i in assets.queries} & {family(i.source) for i in assets.gallery}
    # every query has its class in the gallery
    assert {i.label for i in assets.queries} <= {i.label for i in assets.gallery}


def test_tampered_file_is_detected(tmp_path, assets):
    import shutil

    copy = tmp_path / "demo"
    shutil.copytree(assets.root, copy)
    first = copy / assets.gallery[0].path.relative_to(assets.root)
    first.write_bytes(first.read_bytes() + b"x")
    with pytest.raises(IntegrityError, match=first.name):
        load_demo_assets(copy)


def test_bundled_checkpoint_loads_small_and_was_trained_on_seen_concepts_only(assets):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors import safe_open

    from zse_infer.model import load_model

    assert assets.config == "zse_demo"
    assert assets.checkpoint.stat().st_size < 20 * 10**6  # the bound for shipped weights
    model = load_model(assets.checkpoint, config="zse_demo")
    with torch.no_grad():
        tokens = model.encode(torch.zeros(2, 3, 112, 112))
        score = model.relate(tokens[:1], tokens[1:])
    assert tokens.shape == (2, 197, model.config.width) and torch.isfinite(score).all()
    with safe_open(str(assets.checkpoint), "pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    assert meta["config"] == "zse_demo"
    assert meta["concepts"] <= len(load_split_v2()["seen"])
    assert all(ROLES[s].role == "drawing" for s in meta["sketch_sources"])
    assert all(ROLES[s].role == "photo" for s in meta["photo_sources"])


def test_assets_dir_is_inside_the_package():
    assert assets_dir().parts[-3:] == ("zse_infer", "assets", "demo")
