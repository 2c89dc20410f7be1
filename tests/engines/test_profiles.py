"""Optimisation profiles from batch ranges."""

import pytest

from zse_infer.engines.profiles import profile_shapes, profile_to_json
from zse_infer.errors import ExportError
from zse_infer.manifest import BatchRange, TensorSpec


def test_profile_covers_the_batch_range_and_keeps_other_dims():
    specs = [TensorSpec(n, "float32", ("batch", 197, 768)) for n in ("sketch_tokens", "photo_tokens")]
    shapes = profile_shapes(specs, BatchRange(1, 64, 256))
    assert shapes["photo_tokens"] == ((1, 197, 768), (64, 197, 768), (256, 197, 768))
    assert profile_to_json(shapes)["sketch_tokens"] == {
        "min": [1, 197, 768],
        "opt": [64, 197, 768],
        "max": [256, 197, 768],
    }


def test_static_inputs_get_no_profile_entry():
    """relation_pair's one-query sketch side has a fixed leading 1: TensorRT needs no profile for it."""
    specs = [TensorSpec("sketch_q", "float32", (1, 196, 768)), TensorSpec("photo_q", "float32", ("batch", 196, 768))]
    assert set(profile_shapes(specs, BatchRange(1, 8, 32))) == {"photo_q"}


@pytest.mark.parametrize("shape", [(3, "batch"), ("batch", "tokens", 768)])
def test_only_a_leading_batch_dim_may_be_dynamic(shape):
    with pytest.raises(ExportError, match="leading 'batch' dimension"):
        profile_shapes([TensorSpec("x", "float32", shape)], BatchRange())
