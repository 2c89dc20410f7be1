"""``evaluate``'s ranking arguments: the export's recorded depth by default, clear errors otherwise."""

from types import SimpleNamespace

import pytest

from zse_infer.errors import InputError
from zse_infer.evaluation.protocol import RANKINGS, checked_ranking, ranking_name

RETRIEVER = SimpleNamespace(manifest=SimpleNamespace(default_rerank=10))


def test_two_stage_defaults_to_the_recorded_depth():
    assert checked_ranking(RETRIEVER, "two-stage", None) == 10
    assert checked_ranking(RETRIEVER, "two-stage", 0) == 0
    assert checked_ranking(RETRIEVER, "sa", 50) is None and checked_ranking(RETRIEVER, "rn", None) is None


@pytest.mark.parametrize(
    "ranking, rerank, words",
    [
        ("two-stage", -1, "rerank"),
        ("two-stage", True, "rerank"),
        ("two-stage", "all", "rerank"),
        ("nope", None, "ranking"),
    ],
)
def test_bad_ranking_arguments_name_the_argument(ranking, rerank, words):
    with pytest.raises(InputError, match=words):
        checked_ranking(RETRIEVER, ranking, rerank)


def test_official_names_are_aliases_of_the_one_name_shown():
    assert ranking_name("sa") == "ret-token" and ranking_name("rn") == "exhaustive"
    assert [ranking_name(r) for r in RANKINGS] == list(RANKINGS) == ["ret-token", "two-stage", "exhaustive"]
    assert (
        checked_ranking(RETRIEVER, "ret-token", 50) is None and checked_ranking(RETRIEVER, "exhaustive", None) is None
    )
    with pytest.raises(InputError, match="received 'ret_token'"):
        ranking_name("ret_token")


def test_a_gallery_without_a_committed_version_is_named(tmp_path):
    import numpy as np

    from zse_infer.evaluation.protocol import ranking_distances

    retriever = SimpleNamespace(gallery=SimpleNamespace(snapshot=None, root=tmp_path / "g"))
    with pytest.raises(InputError, match="the gallery has no committed version; index photos first"):
        ranking_distances(retriever, np.zeros((1, 5, 8), np.float32), "ret-token", None)
