"""Optimisation profiles from batch ranges."""

import pytest

from zse_infer.engines.profiles import profile_shapes, profile_to_json
from zse_infer.errors import ExportError
from zse_infer.manifest import BatchRange, TensorSpec


def test_profile_covers_the_batch_range_and_keeps_other_dims():
    specs = [TensorSpec(n, "float32", ("batch", 197, 768)) for n in ("sketch_tokens", "photo_tokens")]
    shapes = profile_shapes(specs, BatchRange(1, 64, 256))
    assert shapes["photo_tokens"] == ((1, 197, 768), (64, 197, 768), (256, 197, 768))
    assert profile_to_json(shapes)["sketch_tokens"] == {"min": [1, 197, 768], "opt": [64, 197, 768], "max": [256, 197, 768]}


@pytest.mark.parametrize("shape", [(3, "batch"), ("batch", "tokens", 768), (1, 3)])
def test_only_a_leading_batch_dim_may_be_dynamic(shape):
    with pytest.raises(ExportError, match="leading 'batch' dimension"):
        profile_shapes([TensorSpec("x", "float32", shape)], BatchRange())
