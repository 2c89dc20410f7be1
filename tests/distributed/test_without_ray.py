"""Ray is optional: the package runs without it, and asking for it names the extra."""

import sys

import pytest
from click.testing import CliRunner

from tests.support.images import make_photo_files
from zse_infer import Retriever
from zse_infer.cli.main import main
from zse_infer.errors import DependencyError


@pytest.fixture
def no_ray(monkeypatch):
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError


def test_ray_flag_without_ray_names_the_extra(no_ray, tiny_export, tmp_path):
    photos = make_photo_files(tmp_path / "photos", 3, size=32)
    from zse_infer.distributed.ray_index import RayIndexExecutor  # the package imports without Ray

    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    with pytest.raises(DependencyError, match=r"zse-infer\[ray\]"):
        r.index(photos, progress=False, executor=RayIndexExecutor())
    assert len(r) == 0
    r.index(photos[:2], progress=False)  # without the Ray executor, Ray is never imported
    assert len(r) == 2
    result = CliRunner().invoke(
        main, ["index", str(tiny_export), str(tmp_path / "photos"), "--gallery", str(tmp_path / "g"), "--ray"]
    )
    assert result.exit_code == 1 and "pip install 'zse-infer[ray]'" in result.output
    assert len(Retriever.load(tiny_export, gallery=tmp_path / "g")) == 2
