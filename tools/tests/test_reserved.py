"""Reserved concepts (../shared/demo-data/reserved.json) never reach the training concepts.

The normaliser and the matching rules are tested on made-up hashes (always
run); the concept tables are checked against the real list, read from the
shared folder beside the repository (skipped with a reason where it is absent).
"""

import hashlib
import json

import pytest

from tools.concepts import Concept, load_concepts, reserved_hits
from tools.reserved import DEFAULT_PATH, Reserved, name_variants, normalise_code_points, normalise_name
from tools.split import load_split
from zse_infer.errors import ConfigError


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def reserved():
    if not DEFAULT_PATH.is_file():
        pytest.skip(f"{DEFAULT_PATH} absent: the shared demo data sits beside the repository checkout")
    return Reserved.load()


def test_normaliser_matches_the_documented_examples():
    assert normalise_name("Party_Popper") == "party popper"
    assert normalise_name("  Cat--Face__:x  y ") == "cat face x y"
    assert normalise_code_points("1f389") == "1F389"
    assert normalise_code_points("1f468_200d_1f373") == "1F468-200D-1F373"
    with pytest.raises(ConfigError, match="hexadecimal"):
        normalise_code_points("cat")


def test_names_match_by_word_runs_and_simple_plural_forms():
    r = Reserved(frozenset({sha("cat"), sha("party popper"), sha("berry")}), frozenset(), frozenset({sha("kitten")}))
    assert r.name_reason("Party_Popper") == "reserved"
    assert r.name_reason("cat-face") == "form"  # a run of its words is listed
    assert r.name_reason("Cats") == "form" and r.name_reason("berries") == "form"
    assert r.name_reason("kittens") == "synonym"
    assert r.name_reason("partypopper") == "form"  # words run together, as icon names do
    assert r.name_reason("catalog") is None and r.name_reason("dog") is None
    assert {"cat", "cats", "cat face", "face"} <= name_variants("cats face")


def test_code_points_match_whole_sequences_and_single_code_points():
    r = Reserved(frozenset(), frozenset({sha("1F389"), sha("A9")}))
    assert r.code_point_match("1f389") == "1F389"
    assert r.code_point_match("1F468-200D-1F389") == "1F389"  # one code point of a sequence
    assert r.code_point_match("00A9-FE0F") is not None  # zero padding and selectors do not hide it
    assert r.code_point_match("1F431") is None


def test_every_name_icon_and_code_point_of_the_table_is_checked():
    concept = Concept(
        "cat",
        "Animals & Nature",
        ["cat face"],
        ["kitty"],
        ["1F431"],
        {"twemoji": ["cat-face"]},
        {"tabler": ["cat"], "ph": ["pet-light"]},
    )
    for listed, expected in (
        ("cat", "cat: cat (reserved)"),
        ("kitty", "cat: kitty (reserved)"),
        ("pet", "cat: ph:pet-light (form)"),
    ):
        r = Reserved(frozenset({sha(listed)}), frozenset())
        assert expected in reserved_hits([concept], r)
    assert reserved_hits([concept], Reserved(frozenset(), frozenset({sha("1F431")}))) == ["cat: 1F431 (code point)"]
    assert reserved_hits([concept], Reserved(frozenset({sha("dog")}), frozenset({sha("1F436")}))) == []


def test_table_and_split_hold_no_reserved_concept(reserved):
    concepts = load_concepts()
    assert reserved_hits(concepts, reserved) == []
    split = load_split()
    names = {c.name for c in concepts}
    assert set(split["seen"]) | set(split["unseen"]) == names
    assert not any(reserved.name_match(n) for n in split["seen"])


def test_reserved_file_is_read_with_a_clear_error(tmp_path):
    bad = tmp_path / "reserved.json"
    bad.write_text(json.dumps({"about": "x"}))
    with pytest.raises(ConfigError, match="reserved"):
        Reserved.load(bad)
