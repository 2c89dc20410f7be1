import numpy as np
import pytest

from zse_infer.errors import InputError
from zse_infer.manifest import BatchRange, GraphSpec, TensorSpec
from zse_infer.runtime.runners.base import Runner


class RecordingRunner(Runner):
    """Our own batching logic under test: records the batch sizes it is handed, doubles the input."""

    backend = "test"

    def __init__(self, graph, max_batch=None):
        super().__init__(graph, max_batch)
        self.calls = []

    def _run_batch(self, inputs):
        x = inputs["x"]
        self.calls.append(len(x))
        return {"y": x[:, 0] * 2}


GRAPH = GraphSpec(
    id="g",
    role="encoder",
    precision="fp32",
    variant="plain",
    file="g.onnx",
    inputs=(TensorSpec("x", "float32", ("batch", 3)),),
    outputs=(TensorSpec("y", "float32", ("batch",)),),
    batch=BatchRange(1, 2, 4),
)


def test_batches_never_exceed_the_profile():
    r = RecordingRunner(GRAPH)
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    out = r.run({"x": x})
    assert r.calls == [4, 4, 2]
    assert np.array_equal(out["y"], x[:, 0] * 2)


def test_requested_max_batch_is_capped_by_profile():
    assert RecordingRunner(GRAPH, max_batch=100).max_batch == 4
    assert RecordingRunner(GRAPH, max_batch=3).max_batch == 3


def test_empty_batch_gives_empty_outputs():
    out = RecordingRunner(GRAPH).run({"x": np.zeros((0, 3), np.float32)})
    assert out["y"].shape == (0,) and out["y"].dtype == np.float32


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"z": np.zeros((1, 3), np.float32)}, r"received inputs \['z'\], expected \['x'\]"),
        ({"x": np.zeros((1, 3), np.float64)}, "received dtype float64, expected float32"),
        ({"x": np.zeros((1, 4), np.float32)}, r"received shape \(1, 4\), expected \(batch, 3\)"),
        ({"x": [[1.0, 2.0, 3.0]]}, "received list, expected a numpy array"),
    ],
)
def test_inputs_are_checked_against_the_graph(inputs, message):
    with pytest.raises(InputError, match=message):
        RecordingRunner(GRAPH).run(inputs)


BROADCAST = GraphSpec(
    id="b",
    role="relation_pair",
    precision="fp32",
    variant="plain",
    file="b.onnx",
    inputs=(TensorSpec("x", "float32", ("batch", 3)), TensorSpec("q", "float32", (1, 3))),
    outputs=(TensorSpec("y", "float32", ("batch",)),),
    batch=BatchRange(1, 2, 4),
)


class DotRunner(Runner):
    def _run_batch(self, inputs):
        return {"y": inputs["x"] @ inputs["q"][0]}


def test_fixed_leading_dims_are_broadcast_not_split():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    q = np.array([[1, 0, 2]], np.float32)
    out = DotRunner(BROADCAST).run({"x": x, "q": q})
    assert np.array_equal(out["y"], x @ q[0])
    with pytest.raises(InputError, match=r"received shape \(2, 3\), expected \(1, 3\)"):
        DotRunner(BROADCAST).run({"x": x, "q": np.zeros((2, 3), np.float32)})
