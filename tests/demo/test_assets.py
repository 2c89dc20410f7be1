"""The bundled demo assets: manifest matches the files, tampering is caught, the checkpoint loads.

How they were made (licences of each set, the split) is checked in tools/tests/test_bundled_assets.py."""

import json

import pytest

from zse_infer.demo.assets import assets_dir, load_demo_assets
from zse_infer.errors import IntegrityError


@pytest.fixture(scope="module")
def assets():
    return load_demo_assets(verify=True)


def test_manifest_lists_exactly_the_image_files(assets):
    listed = {item.path.relative_to(assets.root).as_posix() for item in assets.gallery + assets.queries}
    on_disk = {
        p.relative_to(assets.root).as_posix() for sub in ("gallery", "queries") for p in (assets.root / sub).iterdir()
    }
    assert listed == on_disk
    assert len(assets.gallery) >= 100 and len(assets.queries) >= 62


def test_tampered_file_is_detected(tmp_path, assets):
    import shutil

    copy = tmp_path / "demo"
    shutil.copytree(assets.root, copy)
    first = copy / assets.gallery[0].path.relative_to(assets.root)
    first.write_bytes(first.read_bytes() + b"x")
    with pytest.raises(IntegrityError, match=first.name):
        load_demo_assets(copy)


def test_bundled_checkpoint_loads_small(assets):
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


def test_assets_dir_is_inside_the_package():
    assert assets_dir().parts[-3:] == ("zse_infer", "assets", "demo")
