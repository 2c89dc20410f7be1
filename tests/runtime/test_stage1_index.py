import numpy as np

from zse_infer.runtime.gallery.stage1_index import RetIndex
from zse_infer.vectors import l2_normalize, top_k_desc


def test_top_k_breaks_ties_by_index():
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1])
    assert top_k_desc(scores, 3).tolist() == [1, 3, 0]
    assert top_k_desc(scores, 10).tolist() == [1, 3, 0, 2, 4]


def test_exact_and_faiss_agree():
    rng = np.random.default_rng(0)
    vectors = l2_normalize(rng.standard_normal((500, 16)))
    queries = l2_normalize(rng.standard_normal((3, 16)))
    exact = RetIndex(vectors, kind="exact")
    flat = RetIndex(vectors, kind="faiss-flat")
    s1, r1 = exact.search(queries, 10)
    s2, r2 = flat.search(queries, 10)
    assert np.array_equal(r1, r2) and np.allclose(s1, s2, atol=1e-5)
    hnsw = RetIndex(vectors, kind="faiss-hnsw")
    _, r3 = hnsw.search(queries, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(r1, r3)]) >= 0.9


def test_kind_by_size():
    assert RetIndex.choose_kind(10) == "exact"
    assert RetIndex.choose_kind(60_000) == "faiss-flat"
    assert RetIndex.choose_kind(2_000_000) == "faiss-hnsw"


def test_normalize_keeps_zero_vectors():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0, 0]])
