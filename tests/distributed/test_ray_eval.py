import json

import pytest
from click.testing import CliRunner

from zse_infer import Retriever
from zse_infer.cli.main import main
from zse_infer.distributed.ray_eval import evaluate_on_ray
from zse_infer.distributed.ray_index import RayOptions
from zse_infer.evaluation.datasets import load_image_folders
from zse_infer.evaluation.protocol import evaluate
from zse_infer.testing.images import make_shape_dataset

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    return make_shape_dataset(tmp_path_factory.mktemp("shapes") / "shapes", sketches=4)


def test_eval_on_ray_gives_the_single_process_metrics(ray_cluster, tiny_export, shapes_root, tmp_path):
    shapes = load_image_folders(shapes_root)
    single = evaluate(Retriever.load(tiny_export), shapes, ranking="two-stage", rerank=4, ks=(5,), progress=False)
    # the CLI, on Ray: photos indexed by encoder actors, 12 sketches spread over actors in batches
    result = CliRunner().invoke(main, ["eval", str(tiny_export), "--dataset", "folder", "--root", str(shapes_root),
                                       "--ranking", "two-stage", "--rerank", "4", "--k", "5", "--ray"])
    assert result.exit_code == 0, result.output
    on_ray = json.loads(result.stdout[result.stdout.index("{"):])
    assert on_ray["metrics"] == single["metrics"]  # exactly: the same distances, the same metrics code
    assert on_ray["queries_skipped"] == single["queries_skipped"] == 0 and on_ray["ray"]["actors"] >= 1
    # the API, with small batches over two actors and the exhaustive ranking
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    rn = evaluate_on_ray(r, shapes, ranking="rn", batch_size=3, progress=False, options=RayOptions(actors=2, cpus_per_actor=0.5))
    assert rn["metrics"] == evaluate(r, shapes, ranking="rn", index=False, progress=False)["metrics"]
