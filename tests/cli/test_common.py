"""The commands' shared pieces: the rerank note they print."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from zse_infer.cli.common import rerank_note, rerank_source

RECIPES = sorted((Path(__file__).resolve().parents[2] / "export").glob("*.json"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_rerank_note_is_one_short_line(recipe):
    """Issue 20: zse-demo printed a 330-character rerank line (the recipe's whole measurement note).
    The note says the depth and the first clause of why; the whole note stays in the manifest."""
    search = json.loads(recipe.read_text()).get("search")
    manifest = SimpleNamespace(
        extra={"search": search} if search else {}, default_rerank=(search or {}).get("rerank", 100)
    )
    note = rerank_note(manifest, None)
    assert len(note) <= 110 and "\n" not in note, note
    blend = f" blend {search['blend']:g}" if search and search.get("blend") else ""
    assert note.startswith(f"rerank {manifest.default_rerank}{blend} (")
    if search:
        assert search["source"].startswith(note.split("recorded in the export: ")[1].split(";")[0])
        assert rerank_source(manifest) == search["source"]


def test_rerank_note_without_a_recorded_depth_or_with_the_callers():
    bare = SimpleNamespace(extra={}, default_rerank=100)
    assert rerank_note(bare, None) == "rerank 100 (this export records none: the default 100)"
    assert rerank_note(bare, 7) == "rerank 7 (--rerank)"
    blended = SimpleNamespace(extra={"search": {"rerank": 50, "blend": 0.9, "source": "x"}}, default_rerank=50)
    assert rerank_note(blended, 7) == "rerank 7 blend 0.9 (--rerank)"
