"""zse-demo's choices: the cut-down export recipe, and random weights through the PyTorch backend."""

import numpy as np
import pytest

from zse_infer.demo.cli import RANKINGS, _evaluate, cpu_seconds, demo_recipe
from zse_infer.exporting.recipes import load_recipe
from zse_infer.testing.images import make_photo_files


def test_demo_recipe_keeps_only_what_the_demo_runs():
    full, demo = load_recipe("zse_demo"), demo_recipe("zse_demo")
    assert demo.variants == ("plain",) and demo.validation_batch_sizes == (2,)
    assert demo.search == full.search and demo.tolerances == full.tolerances and demo.config == full.config


def test_cpu_seconds_count_work():
    before = cpu_seconds()
    sum(i * i for i in range(300_000))
    assert cpu_seconds() > before


def test_pytorch_backend_gives_the_onnx_metrics(tiny_export, tmp_path, golden_images):
    """The demo evaluates random weights with backend='torch' on another model's export folder
    (same graph contract, explicit checkpoint): its metrics must equal the ONNX Runtime ones."""
    pytest.importorskip("torch")
    from zse_infer.evaluation.datasets import EvalSet
    from zse_infer.runtime.retriever import Retriever

    photos = make_photo_files(tmp_path / "photos", 6)
    sketches = [*golden_images["sketch"], *golden_images["sketch"]][:4]
    eval_set = EvalSet(
        name="t", sketch_paths=tuple(sketches), sketch_labels=np.array([0, 1, 0, 1]),
        photo_paths=tuple(photos), photo_labels=np.array([0, 1, 0, 1, 0, 1]), class_names=("a", "b"),
    )
    checkpoint = tiny_export.parent / "tiny.pth"
    onnx = _evaluate(Retriever.load(tiny_export, gallery=None, backend="onnxruntime-cpu"), eval_set, rerank=3)
    torch_ = _evaluate(Retriever.load(tiny_export, gallery=None, backend="torch", checkpoint=checkpoint), eval_set, rerank=3)
    assert set(onnx) == set(RANKINGS) and onnx == torch_
