"""The Retriever on the full-size parity export reproduces the official rankings and scores."""

import numpy as np
import pytest

from zse_infer import Retriever

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("relation", ["compat", "fast"])
def test_exhaustive_and_ret_token_rankings_match_the_official_code(full_export, golden, golden_images, relation):
    out, _ = full_export
    r = Retriever.load(out, relation=relation)
    assert r.backend == "onnxruntime-cpu"
    r.index(golden_images["photo"], progress=False)
    rows = {str(p): i for i, p in enumerate(golden_images["photo"])}
    for i, sketch in enumerate(golden_images["sketch"]):
        official = golden["rn_scores"][i]
        hits = r.search(sketch, k=3, rerank="all")
        assert [rows[h.id] for h in hits] == list(np.argsort(-official, kind="stable"))
        assert max(abs(h.score - official[rows[h.id]]) for h in hits) <= 1e-4
        # rerank >= gallery size is the exhaustive ranking
        assert [(h.id, h.score) for h in r.search(sketch, k=3, rerank=3)] == [(h.id, h.score) for h in hits]
        # "sa": ascending L2 distance of L2-normalised ret-tokens, from the golden tokens
        s = golden["sketch_tokens"][i, 0] / np.linalg.norm(golden["sketch_tokens"][i, 0])
        p = golden["photo_tokens"][:, 0] / np.linalg.norm(golden["photo_tokens"][:, 0], axis=1, keepdims=True)
        official_sa = np.argsort(np.linalg.norm(p - s, axis=1), kind="stable")
        assert [rows[h.id] for h in r.search(sketch, k=3, rerank=0)] == list(official_sa)
