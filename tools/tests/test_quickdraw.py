"""Quick, Draw! categories onto concepts: by name and by the hand table, the split respected,
reserved categories left out whatever they map to, the reserved drawings never read."""

import gzip
import hashlib
import json

import numpy as np
import pytest

from tools import quickdraw
from tools.concepts import Concept
from tools.quickdraw import Drawing, load_drawings, load_names, map_categories, side_of
from tools.reserved import Reserved
from zse_infer.errors import ConfigError, InputError


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


CONCEPTS = [
    Concept("cat", "Animals", aliases=["kitty"]),
    Concept("dog", "Animals"),
    Concept("drum", "Objects"),
    Concept("mobile phone", "Objects"),
    Concept("table", "Objects"),
    Concept("eye", "People"),
    Concept("eyes", "People"),
    Concept("knife block", "Objects"),
]
SPLIT = {"seen": ["cat", "drum", "table", "eye", "eyes", "knife block"], "unseen": ["dog", "mobile phone"]}
NAMES = {
    "same_as": {"cell phone": "mobile phone", "eye": "eye", "dagger": "knife block"},
    "not_the_same": {"table": "furniture, not a data table"},
}
RESERVED = Reserved(frozenset({sha("knife")}), frozenset(), frozenset({sha("puppy")}))


def test_categories_map_by_name_forms_and_the_hand_table_onto_their_side():
    cats = ["cat", "dogs", "drums", "cell phone", "table", "eye", "unicorn", "kitty"]
    table = map_categories(cats, CONCEPTS, SPLIT, RESERVED, NAMES)
    assert table["cat"] == {"concept": "cat", "side": "seen", "how": "name"}
    assert table["kitty"] == {"concept": "cat", "side": "seen", "how": "name"}  # a short name
    assert table["dogs"] == {"concept": "dog", "side": "unseen", "how": "name"}  # plural form
    assert table["drums"]["concept"] == "drum"
    assert table["cell phone"] == {"concept": "mobile phone", "side": "unseen", "how": "hand"}
    assert table["eye"] == {
        "concept": "eye",
        "side": "seen",
        "how": "hand",
    }  # 'eye' and 'eyes' both match: the table picks
    assert table["table"]["excluded"].startswith("not the same thing")
    assert table["unicorn"] == {"excluded": "matches no concept"}


def test_reserved_categories_are_left_out_whatever_they_map_to():
    table = map_categories(["knife", "knives", "puppies", "dagger", "pocket knife"], CONCEPTS, SPLIT, RESERVED, NAMES)
    assert table["knife"] == {"excluded": "reserved (reserved)"}
    assert table["knives"] == {"excluded": "reserved (form)"} and table["pocket knife"] == {
        "excluded": "reserved (form)"
    }
    assert table["puppies"] == {"excluded": "reserved (synonym)"}
    assert "reserved" in table["dagger"]["excluded"]  # its concept's name holds a reserved word
    assert not any("concept" in v for v in table.values())


def test_the_hand_table_is_checked():
    with pytest.raises(ConfigError, match="not in the table"):
        map_categories(["x"], CONCEPTS, SPLIT, RESERVED, {"same_as": {"x": "unicorn"}, "not_the_same": {}})
    with pytest.raises(ConfigError, match="neither side"):
        map_categories(["cat"], CONCEPTS, {"seen": [], "unseen": []}, RESERVED, NAMES)


def test_names_file_is_read_with_a_clear_error(tmp_path):
    bad = tmp_path / "names.json"
    bad.write_text(json.dumps({"same_as": {"a": "b"}, "not_the_same": {"a": "why"}}))
    with pytest.raises(ConfigError, match="both mapped and rejected"):
        load_names(bad)
    bad.write_text("{")
    with pytest.raises(ConfigError, match="name table"):
        load_names(bad)


def test_the_reserved_drawings_are_never_opened(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(
        gzip, "open", lambda *a, **k: opened.append(a) or (_ for _ in ()).throw(AssertionError("opened"))
    )
    with pytest.raises(InputError, match="independent evaluation"):
        load_drawings(tmp_path / "reserved.ndjson.gz")
    assert opened == []


def test_drawings_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "drawings.ndjson.gz"
    with gzip.open(path, "wt") as f:
        f.write(
            json.dumps(
                {"category": "cat", "key_id": 7, "source": "s", "recognized": False, "drawing": [[[0, 1], [0, 1]]]}
            )
            + "\n"
        )
    (d,) = load_drawings(path)
    assert (d.category, d.key_id, d.recognized, d.strokes) == ("cat", "7", False, [[[0, 1], [0, 1]]])
    with pytest.raises(InputError, match="no Quick, Draw!"):
        load_drawings(tmp_path / "absent.ndjson.gz")
    path.write_bytes(b"not gzip")
    with pytest.raises(InputError, match="cannot read"):
        load_drawings(path)


def test_a_drawing_in_both_versions_is_read_once_as_drawn(tmp_path):
    """The shared file holds many drawings twice (simplified and raw, one key_id): one copy, the raw one."""
    path = tmp_path / "drawings.ndjson.gz"
    rows = [
        {"category": "cat", "key_id": 1, "source": "x (simplified)", "drawing": [[[0, 9], [0, 9]]]},
        {"category": "cat", "key_id": 1, "source": "y (raw)", "drawing": [[[0, 5, 9], [0, 4, 9]]]},
        {"category": "dog", "key_id": 1, "source": "x (simplified)", "drawing": [[[0, 1], [0, 1]]]},
        {"category": "cat", "key_id": 2, "source": "x (simplified)", "drawing": [[[0, 1], [0, 1]]]},
    ]
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    got = [(d.category, d.key_id, d.source) for d in load_drawings(path)]
    assert got == [("cat", "1", "y (raw)"), ("dog", "1", "x (simplified)"), ("cat", "2", "x (simplified)")]


def test_seen_drawings_hold_out_a_stable_validation_share():
    seen, unseen = {"concept": "cat", "side": "seen"}, {"concept": "dog", "side": "unseen"}
    drawings = [Drawing("cat", str(i), "s", [], True) for i in range(2000)]
    sides = [side_of(d, seen) for d in drawings]
    assert abs(sides.count("validation") / 2000 - quickdraw.VALIDATION_FRACTION) < 0.03
    assert sides == [side_of(d, seen) for d in drawings]  # deterministic
    assert {side_of(d, unseen) for d in drawings} == {"unseen"}
    assert side_of(drawings[0], {"excluded": "reserved (form)"}) is None


def test_freehand_set_draws_what_the_mapping_uses():
    from zse_infer.config import get_config

    table = {
        "cat": {"concept": "cat", "side": "seen"},
        "dog": {"concept": "dog", "side": "unseen"},
        "knife": {"excluded": "reserved (reserved)"},
    }
    square = [[[0, 10, 10, 0, 0], [0, 0, 10, 10, 0]]]
    drawings = [Drawing(c, str(i), "s", square, True) for i, c in enumerate(["cat", "dog", "knife"])]
    renders, codes, strokes = quickdraw.freehand_set(get_config("tiny"), table, drawings)
    assert list(renders.concept) == ["cat", "dog"] and list(codes) == [
        side_of(drawings[0], table["cat"]) == "validation",
        2,
    ]
    assert renders.images.shape == (2, 64, 64, 3) and set(renders.source) == {quickdraw.FAMILY}
    assert strokes == [square, square] and (renders.images < 128).any()


@pytest.fixture(scope="module")
def shared_mapping():
    if not (quickdraw.DRAWINGS.is_file() and (quickdraw.SHARED / "demo-data" / "reserved.json").is_file()):
        pytest.skip(f"{quickdraw.QUICKDRAW} or the reserved list absent: the shared data sits beside the checkout")
    return quickdraw.mapping(), load_drawings()


def test_shared_mapping_respects_the_split_and_the_reserved_list(shared_mapping):
    from tools.reserved import load_reserved
    from tools.split import load_split

    table, drawings = shared_mapping
    reserved, split = load_reserved(), load_split()
    mapped = {k: v for k, v in table.items() if "concept" in v}
    for category, entry in mapped.items():
        assert reserved.name_reason(category) is None and reserved.name_reason(entry["concept"]) is None, category
        assert entry["concept"] in split[entry["side"]]
    assert all("reserved" in table[c].get("excluded", "") for c in table if reserved.name_reason(c))
    names = load_names()
    assert set(names["same_as"]) | set(names["not_the_same"]) <= set(table)  # the hand table names real categories
    counts = quickdraw.counts(drawings, table)
    assert counts["mapped"] == {"seen": 162, "unseen": 36} and counts["concepts"] == {"seen": 161, "unseen": 35}
    assert counts["drawings"] == {"seen": 4097, "validation": 721, "unseen": 1031}  # docs/freehand.md
    used = {d.category for d, _, _ in quickdraw.labelled(drawings, table)}
    assert used == set(mapped)
    assert not np.isin(list(used), [c for c in table if reserved.name_reason(c)]).any()
