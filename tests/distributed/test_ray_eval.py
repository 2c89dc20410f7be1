import json

import pytest
from click.testing import CliRunner

from tests.support.images import make_shape_dataset
from zse_infer import Retriever
from zse_infer.cli.main import main
from zse_infer.distributed.ray_eval import RayExecutor, RayOptions
from zse_infer.evaluation.datasets import load_image_folders
from zse_infer.evaluation.protocol import evaluate

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    return make_shape_dataset(tmp_path_factory.mktemp("shapes") / "shapes", sketches=4)


def test_eval_on_ray_gives_the_single_process_metrics(ray_cluster, tiny_export, shapes_root, tmp_path):
    shapes = load_image_folders(shapes_root)
    single = evaluate(Retriever.load(tiny_export), shapes, ranking="two-stage", rerank=4, ks=(5,), progress=False)
    # the CLI, on Ray: photos indexed by encoder actors, 12 sketches spread over actors in batches
    result = CliRunner().invoke(
        main,
        [
            "eval",
            str(tiny_export),
            "--dataset",
            "folder",
            "--root",
            str(shapes_root),
            "--ranking",
            "two-stage",
            "--rerank",
            "4",
            "--k",
            "5",
            "--ray",
        ],
    )
    assert result.exit_code == 0, result.output
    on_ray = json.loads(result.stdout[result.stdout.index("{") :])
    assert on_ray["metrics"] == single["metrics"]  # exactly: the same distances, the same metrics code
    assert on_ray["queries_skipped"] == single["queries_skipped"] == 0 and on_ray["ray"]["actors"] >= 1
    assert "ray" not in single
    # the API: the same loop with a Ray executor, small batches over two actors and the exhaustive ranking
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    rn = evaluate(
        r,
        shapes,
        ranking="rn",
        batch_size=3,
        progress=False,
        executor=RayExecutor(RayOptions(actors=2, cpus_per_actor=0.5)),
    )
    assert rn["metrics"] == evaluate(r, shapes, ranking="rn", index=False, progress=False)["metrics"]
    assert rn["ray"]["actors"] == 2


def test_a_bad_sketch_on_ray_is_the_same_clear_error(ray_cluster, tiny_export, shapes_root, tmp_path):
    import shutil

    from zse_infer.errors import ImageError

    root = tmp_path / "shapes"
    shutil.copytree(shapes_root, root)
    bad = next((root / "sketch").rglob("*.png"))
    bad.write_bytes(b"not a png")
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    with pytest.raises(ImageError) as local:
        evaluate(r, load_image_folders(root), ranking="ret-token", progress=False)
    with pytest.raises(ImageError) as on_ray:
        evaluate(
            r,
            load_image_folders(root),
            ranking="ret-token",
            progress=False,
            index=False,
            executor=RayExecutor(RayOptions(actors=1, cpus_per_actor=0.5)),
        )
    assert on_ray.value.source == local.value.source == str(bad)
