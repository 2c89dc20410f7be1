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


def test_ivf_keeps_each_querys_own_results_when_lists_run_short():
    """A batch of queries whose probed lists hold fewer than k rows, each a different number:
    every query keeps what it found (row id -1 only in its own tail), and the searcher's
    single-query path drops the -1s."""
    import faiss

    from zse_infer.runtime.gallery.stage1 import IvfIndex

    rng = np.random.default_rng(1)
    centres = l2_normalize(rng.standard_normal((4, 16)))
    sizes = [5, 40, 12, 80]
    vectors = l2_normalize(
        np.concatenate([c + 0.05 * rng.standard_normal((m, 16)) for c, m in zip(centres, sizes, strict=False)])
    )
    quantizer = faiss.IndexFlatIP(16)
    quantizer.add(np.ascontiguousarray(centres, np.float32))  # one list per cluster (no k-means: nlist centroids given)
    ivf = faiss.IndexIVFFlat(quantizer, 16, 4, faiss.METRIC_INNER_PRODUCT)
    ivf.train(np.ascontiguousarray(vectors, np.float32))
    rowids = np.arange(1000, 1000 + len(vectors))
    ivf.add_with_ids(np.ascontiguousarray(vectors, np.float32), rowids)
    index = IvfIndex(ivf, version=1, meta={"nprobe": 1})
    _scores, rows = index.search(centres, 50)
    for q, m in enumerate(sizes):
        found = rows[q][rows[q] >= 0]
        assert len(found) == min(m, 50) and len(set(found.tolist())) == len(found)
        assert (rows[q][len(found) :] == -1).all()  # missing only in its own tail


def test_kind_by_size():
    assert RetIndex.choose_kind(10) == "exact"
    assert RetIndex.choose_kind(60_000) == "faiss-flat"
    assert (
        RetIndex.choose_kind(2_000_000) == "faiss-flat"
    )  # in memory: exact at every size (IVF is the stored gallery's)


def test_normalize_keeps_zero_vectors():
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0, 0]])
