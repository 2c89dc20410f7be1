import pytest

from zse_infer.config import ModelConfig, get_config, list_configs
from zse_infer.errors import ConfigError, ZseError


def test_named_configs_load():
    assert {"zse_vit_b16", "tiny"} <= set(list_configs())
    cfg = get_config("zse_vit_b16")
    assert cfg.encoder.num_tokens == 197 and cfg.width == 768
    assert cfg.relation_head.anchors(cfg.encoder) == 49
    assert cfg.preprocess["sketch"].ink_threshold == 300


def test_round_trip_through_dict():
    cfg = get_config("tiny")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_name_lists_known():
    with pytest.raises(ConfigError, match="zse_vit_b16"):
        get_config("nope")


def test_unknown_field_is_named():
    data = get_config("tiny").to_dict()
    data["encoder"]["widht"] = 3
    with pytest.raises(ConfigError, match="widht"):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize(
    "section, field, value, match",
    [
        ("encoder", "patch_size", 16, "scale_channels"),
        ("encoder", "heads", 5, "divisible"),
        ("relation_head", "anchor_kernel", 3, "anchor_kernel"),
    ],
)
def test_inconsistent_configs_rejected(section, field, value, match):
    data = get_config("tiny").to_dict()
    data[section][field] = value
    with pytest.raises(ZseError, match=match):
        ModelConfig.from_dict(data)
