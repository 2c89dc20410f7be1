"""The evaluation loop's executor seam: one loop, and where its batches run is the caller's choice."""

import pickle
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.images import make_shape_dataset
from zse_infer import Retriever
from zse_infer.errors import InputError
from zse_infer.evaluation.datasets import load_image_folders
from zse_infer.evaluation.executor import LocalExecutor
from zse_infer.evaluation.protocol import SketchDistances, evaluate


@pytest.fixture
def shapes(tmp_path):
    return load_image_folders(make_shape_dataset(tmp_path / "shapes"))


class WorkerPool:
    """An executor as a cluster's would be: workers open their own runtime and gallery, tasks
    travel pickled, batches finish out of order (two threads) and come back in order (map)."""

    where = " on 2 workers"

    def __init__(self):
        self.batches: list[list[str]] = []

    def index(self, retriever, photos, progress):
        retriever.index(list(photos), ids=list(photos), progress=progress)

    def map(self, retriever, task, batches):
        worker = Retriever.load(retriever.export_dir, gallery=retriever.gallery.root)
        shipped = pickle.dumps(task)
        self.batches = [list(b) for b in batches]
        with ThreadPoolExecutor(2) as pool:
            yield from pool.map(lambda batch: pickle.loads(shipped)(worker, batch), batches)

    def report(self):
        return {"workers": 2}


def test_another_executor_gives_the_same_metrics(tiny_export, shapes, tmp_path, capsys):
    r = Retriever.load(tiny_export, gallery=tmp_path / "g", create=True)
    local = evaluate(r, shapes, ranking="two-stage", rerank=3, ks=(5,), batch_size=4, progress=False)
    pool = WorkerPool()
    other = evaluate(
        r, shapes, ranking="two-stage", rerank=3, ks=(5,), batch_size=4, index=False, progress=True, executor=pool
    )
    assert other["metrics"] == local["metrics"] and other["workers"] == 2 and "workers" not in local
    # the loop cut the batches and named the executor in its progress bar
    assert pool.batches == [[str(p) for p in shapes.sketch_paths[i : i + 4]] for i in range(0, 6, 4)]
    assert "evaluating (two-stage) on 2 workers" in capsys.readouterr().err
    assert (
        evaluate(r, shapes, ranking="sa", index=False, progress=False, executor=LocalExecutor())["metrics"]
        == evaluate(r, shapes, ranking="sa", index=False, progress=False)["metrics"]
    )


def test_the_task_is_picklable_and_is_the_loops_ranking(tiny_export, shapes):
    r = Retriever.load(tiny_export)
    r.index([str(p) for p in shapes.photo_paths], ids=[str(p) for p in shapes.photo_paths], progress=False)
    task = pickle.loads(pickle.dumps(SketchDistances("exhaustive", None)))
    distances = task(r, [str(p) for p in shapes.sketch_paths[:2]])
    assert distances.shape == (2, len(r))


class DropsABatch(LocalExecutor):
    def map(self, retriever, task, batches):
        yield from list(super().map(retriever, task, batches))[:-1]


def test_an_executor_that_loses_a_batch_fails_instead_of_scoring_fewer_queries(tiny_export, shapes):
    r = Retriever.load(tiny_export)
    with pytest.raises(ValueError, match="shorter"):
        evaluate(r, shapes, ranking="sa", batch_size=2, progress=False, executor=DropsABatch())


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_batch_size_is_checked(tiny_export, shapes, batch_size):
    with pytest.raises(InputError, match=r"batch_size: received .*expected an integer >= 1"):
        evaluate(Retriever.load(tiny_export), shapes, batch_size=batch_size, progress=False)


def test_an_empty_gallery_is_a_clear_error(tiny_export, shapes):
    """It was an AttributeError (no snapshot before the first commit) deep in the ranking."""
    with pytest.raises(InputError, match=r"the gallery holds no photos; index evaluation set .* first"):
        evaluate(Retriever.load(tiny_export), shapes, index=False, progress=False)
