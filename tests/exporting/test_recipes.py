"""Recipes: lookup by name (packaged or repo export/ folder) or path, and validation of their content."""

import json
from pathlib import Path

import pytest

from zse_infer.errors import ConfigError
from zse_infer.exporting import recipes
from zse_infer.exporting.recipes import list_recipes, load_recipe, recipe_from_dict

REPO_EXPORT = Path(__file__).resolve().parents[2] / "export"


def test_every_repo_recipe_loads_and_names_its_config():
    from zse_infer.config import get_config

    names = sorted(p.stem for p in REPO_EXPORT.glob("*.json"))
    assert {"zse_vit_b16", "tiny"} <= set(names)
    assert set(names) <= set(list_recipes())
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name
        get_config(recipe.config)  # the config it names exists
        assert recipe.tolerances["fp32"] == {"tokens": 1e-3, "score": 1e-4}
        assert recipe.tolerances["fp16"] == {"tokens": 2e-2, "score": 1e-3}
        assert recipe.validation_batch_sizes == (1, 5)


def test_load_by_path(tmp_path):
    data = json.loads((REPO_EXPORT / "tiny.json").read_text())
    data["name"] = "mine"
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    assert load_recipe(path).name == "mine"
    assert load_recipe(str(path)).source == str(path)


def test_unknown_name_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown recipe 'nope'.*tiny"):
        load_recipe("nope")


def test_missing_path_and_bad_json(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_recipe(bad)


def _tiny() -> dict:
    return json.loads((REPO_EXPORT / "tiny.json").read_text())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"precisions": ["fp16"]}, "precisions received"),
        ({"variants": ["trt"]}, "variants received"),
        ({"opset": 13}, "opset received 13"),
        ({"colour": "red"}, "unknown field"),
        ({"tolerances": {"fp32": {"tokens": 1e-3}}}, "no tolerances for precision"),
        ({"batch": {"encoder": {"min": 4, "opt": 2, "max": 8}, "relation_head": {}}}, "malformed"),
    ],
)
def test_invalid_recipes_are_refused_with_the_field_named(change, message):
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict({**_tiny(), **change}, "test.json")


def test_missing_field_is_named():
    data = _tiny()
    del data["opset"]
    with pytest.raises(ConfigError, match="missing field 'opset'"):
        recipe_from_dict(data)


def test_with_max_batch_clamps_opt_and_checks_roles():
    recipe = load_recipe("zse_vit_b16")
    smaller = recipe.with_max_batch({"encoder": 8})
    assert smaller.batch["encoder"].to_dict() == {"min": 1, "opt": 8, "max": 8}
    assert smaller.batch["relation_head"] == recipe.batch["relation_head"]
    with pytest.raises(ConfigError, match="role 'decoder'"):
        recipe.with_max_batch({"decoder": 8})
    with pytest.raises(ConfigError, match="positive integer"):
        recipe.with_max_batch({"encoder": 0})


def test_falls_back_to_repo_folder_when_not_packaged(monkeypatch):
    # Editable installs have no zse_infer.recipes package; wheels have it. Both must resolve names.
    dirs = recipes.recipe_dirs()
    assert any(Path(str(d)) == REPO_EXPORT for d in dirs)
    monkeypatch.setattr(recipes, "_REPO_RECIPES", REPO_EXPORT / "absent")
    if not any("recipes" in str(d) for d in recipes.recipe_dirs()):
        with pytest.raises(ConfigError, match="unknown recipe"):
            load_recipe("tiny")


def test_recipe_round_trips_through_dict():
    recipe = load_recipe("tiny")
    again = recipe_from_dict(recipe.to_dict(), "roundtrip")
    assert again.to_dict() == recipe.to_dict()
