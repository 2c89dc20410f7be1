"""Choosing what the demo bundle holds: unseen concepts, one per family, groups in proportion,
no query from the design family of a bundled photo."""

import random

import pytest

from tools.bundle import TEMPLATES, _photos, _queries, choose
from tools.concepts import Concept
from zse_infer.errors import InputError


def _concept(name, group, photos=("twemoji", "noto"), drawings=("tabler",)):
    return Concept(name, group, photos={p: [f"{name}-{p}"] for p in photos}, drawings={d: [name] for d in drawings})


def test_choose_takes_unseen_concepts_in_group_proportion_and_one_per_family():
    concepts = [_concept(f"animal {i}", "Animals") for i in range(30)] + [
        _concept(f"food {i}", "Food") for i in range(10)
    ]
    concepts += [_concept("one oclock", "Travel"), _concept("two oclock", "Travel")]  # one split family (head word)
    concepts.append(_concept("lonely", "Food", photos=("twemoji",)))  # one photo: not bundled
    unseen = {c.name for c in concepts} - {"animal 0"}
    picked = choose(concepts, unseen, n=8, seed=0)
    names = [c.name for c in picked]
    assert len(picked) == 8 and "animal 0" not in names and "lonely" not in names
    assert sum(n.startswith("animal") for n in names) >= 5  # 29 of 40 usable concepts are animals
    assert sum(n.endswith("oclock") for n in names) <= 1
    assert choose(concepts, unseen, n=8, seed=0) == picked  # seeded
    with pytest.raises(InputError, match="can be bundled"):
        choose(concepts, unseen, n=100, seed=0)


def test_photos_prefer_emoji_one_per_family_and_queries_avoid_photo_families():
    c = _concept(
        "cat",
        "Animals",
        photos=("streamline-color", "fluent-emoji", "fluent-emoji-flat", "noto", "twemoji"),
        drawings=("fluent-emoji-high-contrast", "tabler", "ph"),
    )
    photos = _photos(c)
    assert [p for p, _ in photos] == ["fluent-emoji-flat", "noto", "twemoji"]  # fluent-emoji: same family as flat
    queries = _queries(c, random.Random(0), excluded_families={"fluent-emoji", "noto", "twemoji"})
    assert {p for p, _ in queries} == {"tabler", "ph"}


def test_licence_texts_name_the_holder():
    for text in TEMPLATES.values():
        assert "Copyright (c) ACME" in text.format(author="ACME") and len(text) > 500
