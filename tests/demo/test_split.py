"""The seen/unseen split is fixed in the repo, deterministic, balanced across groups and disjoint."""

from collections import Counter

import pytest

from zse_infer.demo.concepts import load_concepts
from zse_infer.demo.split import UNSEEN_FRACTION, load_split, make_split
from zse_infer.errors import ConfigError


@pytest.fixture(scope="module")
def concepts():
    return load_concepts()


def test_concept_table_is_valid(concepts):
    assert len(concepts) == 249
    for c in concepts:
        assert c.hex and all(part.isalnum() and part.upper() == part for h in c.hex for part in h.split("-")), c.name
        assert set(c.icons) <= {"tabler", "lucide", "phosphor"}


def test_fixed_split_is_what_the_rule_computes(concepts):
    fixed = load_split()
    again = make_split(concepts)
    assert fixed["seen"] == again["seen"] and fixed["unseen"] == again["unseen"]
    assert fixed["counts"] == again["counts"]
    # Input order does not matter.
    shuffled = make_split(list(reversed(concepts)))
    assert shuffled["unseen"] == again["unseen"]


def test_split_is_disjoint_complete_and_balanced(concepts):
    split = load_split()
    seen, unseen = set(split["seen"]), set(split["unseen"])
    assert not seen & unseen
    assert seen | unseen == {c.name for c in concepts}
    per_group = Counter(c.cat for c in concepts)
    unseen_per_group = Counter(c.cat for c in concepts if c.name in unseen)
    for cat, n in per_group.items():
        assert unseen_per_group[cat] == max(1, round(UNSEEN_FRACTION * n)), cat
        assert 0 < unseen_per_group[cat] < n, cat  # every group on both sides


def test_icon_less_concepts_are_unseen(concepts):
    unseen = set(load_split()["unseen"])
    assert all(c.name in unseen for c in concepts if c.n_icons == 0)


def test_split_rejects_overlap(tmp_path):
    bad = tmp_path / "split.json"
    bad.write_text('{"seen": ["cat", "dog"], "unseen": ["dog"]}')
    with pytest.raises(ConfigError, match="dog"):
        load_split(bad)
