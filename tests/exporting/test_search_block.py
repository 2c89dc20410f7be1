"""The recipe's "search" block: validated, and copied into the manifest the runtime reads."""

import json

import pytest

from zse_infer.errors import ConfigError
from zse_infer.exporting.recipes import list_recipes, load_recipe, recipe_from_dict
from zse_infer.manifest import Manifest


def test_every_packaged_recipe_records_a_depth_and_why():
    for name in list_recipes():
        block = load_recipe(name).search
        assert isinstance(block["rerank"], int) and block["rerank"] >= 0 and block["source"].strip(), name
        assert load_recipe(name).to_dict()["search"] == block


@pytest.mark.parametrize(
    "block",
    [
        {"rerank": -1, "source": "x"},
        {"rerank": True, "source": "x"},
        {"rerank": 20},
        {"rerank": 20, "source": " "},
        {"rerank": 20, "blend": 1.5, "source": "x"},
        {"rerank": 20, "blend": True, "source": "x"},
        {"rerank": 20, "blend": 0.5, "source": "x", "other": 1},
        [20],
    ],
)
def test_malformed_search_block_is_refused(block):
    data = {**load_recipe("tiny").to_dict(), "search": block}
    with pytest.raises(ConfigError, match="search"):
        recipe_from_dict(data, "test.json")


def test_export_writes_the_search_block(tiny_export):
    manifest = Manifest.load(tiny_export)
    assert manifest.default_rerank == load_recipe("tiny").search["rerank"]
    assert json.loads((tiny_export / "manifest.json").read_text())["search"] == load_recipe("tiny").search
