"""Reserved concepts (../shared/demo-data/reserved.json) never reach the training concepts.

The normaliser and the matching rules are tested on made-up hashes (always
run); the concept tables are checked against the real list, read from the
shared folder beside the repository (skipped with a reason where it is absent).
"""

import hashlib
import json

import pytest

from zse_infer.demo.concepts import load_concepts
from zse_infer.demo.concepts_v2 import ConceptV2, load_concepts_v2, reserved_hits
from zse_infer.demo.reserved import DEFAULT_PATH, Reserved, name_variants, normalise_code_points, normalise_name
from zse_infer.demo.split import load_split
from zse_infer.demo.split_v2 import load_split_v2
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


def test_every_name_icon_and_code_point_of_the_v2_table_is_checked():
    concept = ConceptV2("cat", "Animals & Nature", ["cat face"], ["kitty"], ["1F431"],
                        {"twemoji": ["cat-face"]}, {"tabler": ["cat"], "ph": ["pet-light"]})
    for listed, expected in (("cat", "cat: cat (reserved)"), ("kitty", "cat: kitty (reserved)"),
                             ("pet", "cat: ph:pet-light (form)")):
        r = Reserved(frozenset({sha(listed)}), frozenset())
        assert expected in reserved_hits([concept], r)
    assert reserved_hits([concept], Reserved(frozenset(), frozenset({sha("1F431")}))) == ["cat: 1F431 (code point)"]
    assert reserved_hits([concept], Reserved(frozenset({sha("dog")}), frozenset({sha("1F436")}))) == []


def test_v2_table_and_split_hold_no_reserved_concept(reserved):
    concepts = load_concepts_v2()
    assert reserved_hits(concepts, reserved) == []
    split = load_split_v2()
    names = {c.name for c in concepts}
    assert set(split["seen"]) | set(split["unseen"]) == names
    assert not any(reserved.name_match(n) for n in split["seen"])


# The first model's (v1) table predates the check. Its concept names, member emoji and code
# points are clean; a few of its icons have a reserved name used in another sense (a
# homonym), listed here by hash so the test does not reveal the name. The v2 table drops them.
V1_KNOWN_ICON_HITS = {
    "2c93ffee315295cb7b163a82d90096be18282b4c42fa8b0ee987acec553611de",
    "34a94c011c283eaf521afb99ea8e871046fee234b47b4ca814b1d54462d3639f",
    "9348093b89d0562b36d4881391d9f3243773fb09e6e9ff441deb74b5f58243e8",
}


def test_v1_training_concepts_hold_no_reserved_concept(reserved):
    """The first bundled model's concepts (the shipped model's are v2: checked above)."""
    seen = set(load_split()["seen"])
    icon_hits = set()
    for c in load_concepts():
        if c.name not in seen:
            continue
        assert not reserved.name_exact(c.name), "a trained concept of the v1 model is reserved"
        assert not any(reserved.name_exact(m) for m in c.members)
        assert not any(reserved.code_point_match(h) for h in c.hex)
        icon_hits |= {sha(f"{s}:{i}") for s, icons in c.icons.items() for i in icons if reserved.name_exact(i)}
    assert icon_hits <= V1_KNOWN_ICON_HITS


def test_reserved_file_is_read_with_a_clear_error(tmp_path):
    bad = tmp_path / "reserved.json"
    bad.write_text(json.dumps({"about": "x"}))
    with pytest.raises(ConfigError, match="reserved"):
        Reserved.load(bad)
