import logging
import pickle

import numpy as np
import pytest
import torch

from zse_infer.errors import CheckpointError
from zse_infer.model import ZseModel, checkpoint_filter_fn, load_model, to_official_state_dict


def _official(model):
    return to_official_state_dict(model.state_dict())


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_official_key_layout_matches_the_release(data_dir):
    """Our model in official layout has exactly the released keys and shapes."""
    from tests.support.parity import read_key_list

    expected = dict(read_key_list(data_dir / "official_state_dict.tsv"))
    ours = {k: tuple(v.shape) for k, v in to_official_state_dict(ZseModel("zse_vit_b16").state_dict()).items()}
    assert ours == expected


def test_released_file_format(tiny_model, tmp_path):
    path = tmp_path / "best_checkpoint.pth"
    torch.save({"model": _official(tiny_model), "epoch": 7, "map_all": np.float64(0.5), "precision_100": 0.6}, path)
    assert _same_weights(load_model(path, "tiny"), tiny_model)


def test_bare_native_and_safetensors(tiny_model, tmp_path):
    from safetensors.torch import save_file

    assert _same_weights(load_model(_official(tiny_model), "tiny"), tiny_model)
    assert _same_weights(load_model(tiny_model.state_dict(), "tiny"), tiny_model)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_model.state_dict().items()}, str(path))
    assert _same_weights(load_model(path, "tiny"), tiny_model)


def test_module_prefix_and_half(tiny_model):
    state = {f"module.{k}": v.half() for k, v in _official(tiny_model).items()}
    loaded = load_model(state, "tiny")
    for k, v in loaded.state_dict().items():
        assert v.dtype == torch.float32
        assert torch.allclose(v, tiny_model.state_dict()[k], atol=1e-2)


def test_backbone_only_file_warns(tiny_model, caplog):
    backbone = {k[len("sa.model.") :]: v for k, v in _official(tiny_model).items() if k.startswith("sa.model.")}
    backbone = {k: v for k, v in backbone.items() if not k.startswith("scale.")}
    backbone["mlp_head.weight"] = torch.zeros(10, 32)  # the ImageNet classifier is ignored
    with caplog.at_level(logging.WARNING):
        loaded = load_model(backbone, "tiny")
    assert "backbone-only" in caplog.text and "relation head" in caplog.text
    assert torch.equal(loaded.encoder.pos_embed, tiny_model.encoder.pos_embed)


def test_filter_drops_unused_copy_and_strips_module():
    out = checkpoint_filter_fn(
        {"module.ca.encoder.layers.0.feed_forward.w_1.weight": torch.zeros(1), "module.conv2d.bias": torch.zeros(1)}
    )
    assert out.layout == "official"
    assert list(out.state_dict) == ["relation_head.anchor_conv.bias"]
    assert out.ignored == ["ca.encoder.layers.0.feed_forward.w_1.weight"]


def test_mismatch_names_missing_unexpected_and_misshaped(tiny_model):
    state = _official(tiny_model)
    del state["rn.rn.0.bias"]
    state["sa.model.bogus"] = torch.zeros(3)
    state["conv2d.weight"] = torch.zeros(1, 2, 3, 4)
    with pytest.raises(CheckpointError) as err:
        load_model(state, "tiny")
    msg = str(err.value)
    assert "1 key missing (relation_head.mlp.0.bias)" in msg
    assert "1 key unexpected (sa.model.bogus)" in msg
    assert "relation_head.anchor_conv.weight (checkpoint (1, 2, 3, 4)" in msg
    assert "looks like" not in msg  # fits no known config


def test_wrong_config_is_a_shape_error(tiny_model):
    with pytest.raises(CheckpointError, match="of another shape"):
        load_model(_official(tiny_model), "zse_vit_b16")


def test_wrong_config_is_summarised_and_the_fitting_config_named(tmp_path):
    from zse_infer.demo.assets import load_demo_assets

    with pytest.raises(CheckpointError) as err:
        load_model(load_demo_assets().checkpoint, "zse_vit_b16")
    msg = str(err.value)
    assert len(msg) < 800, msg  # a summary, not every key name
    assert "keys missing" in msg and "... (" in msg and "more)" in msg
    assert msg.endswith("This looks like a zse_demo checkpoint: pass --config zse_demo (config='zse_demo' in Python)")
    with pytest.raises(CheckpointError, match="looks like a tiny checkpoint: pass --config tiny"):
        load_model(_official(ZseModel("tiny")), "zse_demo")


def test_foreign_and_broken_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pth", "tiny")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_model(empty, "tiny")
    junk = tmp_path / "junk.pth"
    junk.write_text("hello")
    with pytest.raises(CheckpointError, match=r"junk\.pth"):
        load_model(junk, "tiny")
    foreign = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(CheckpointError, match="does not look like a ZSE-SBIR checkpoint"):
        load_model(foreign, "tiny")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_untrusted_pickle_is_refused(tmp_path):
    """weights_only loading: a checkpoint carrying code is rejected, not executed."""
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": {"conv2d.bias": _Evil()}}, f)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_model(path, "tiny")
