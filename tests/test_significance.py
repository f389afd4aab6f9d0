"""Q against many draws of each null model (``structure.significance``): the p-value and z by hand, each draw
equal to the null graph drawn as the module doc says and measured alone, and bad input refused."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from scipy import sparse

from bdh_graph.distributed import task_rng
from bdh_graph.structure import NULL_MODELS, louvain, low_rank_null, null_distribution
from bdh_graph.structure.significance import SIGNIFICANCE, NullDistribution
from bdh_graph.structure.sweep import null_graph
from helpers import test_seed


def planted(seed: int) -> sparse.csr_array:
    """A directed graph of 4 planted modules of 25 nodes: Q far above every null."""
    return sparse.csr_array(nx.to_scipy_sparse_array(
        nx.planted_partition_graph(4, 25, 0.25, 0.01, seed=seed, directed=True), dtype=np.float64))


def test_p_and_z_by_hand():
    drawn = np.array([0.10, 0.20, 0.30, 0.40])
    d = NullDistribution(0.30, {"gnm": drawn, "rewired": np.full(4, 0.05)}, 10, 20, 5, False, False)
    assert d.draws == 4
    assert d.p("gnm") == (1 + 2) / 5  # 0.30 and 0.40 are at least Q
    assert d.z("gnm") == pytest.approx((0.30 - 0.25) / np.std(drawn, ddof=1), rel=1e-12)
    assert d.p("rewired") == 1 / 5 and d.z("rewired") == np.inf  # every draw equal, below Q
    assert not d.above("gnm") and d.above("rewired") == (1 / 5 <= SIGNIFICANCE)
    report = d.to_dict()
    assert report["nulls"]["gnm"]["Q"] == drawn.tolist() and report["nulls"]["gnm"]["p"] == 0.6
    assert "above no null" in d.verdict() and "gnm p = 0.6" in d.verdict()


def test_each_draw_is_the_documented_null_measured_alone():
    A, seed, draws = planted(test_seed(1)), test_seed(2), 3
    d = null_distribution(A, rank=4, draws=draws, seeds=2, seed=seed)
    assert d.Q == louvain(A, 2).Q and (d.nodes, d.edges) == (100, A.nnz)
    for name in NULL_MODELS:
        for draw in range(draws):
            rng = task_rng(seed, 0, NULL_MODELS.index(name), draw)
            product = low_rank_null(100, 4, A.nnz, int(rng.integers(2**31))) if name == "low_rank" else None
            G = null_graph(name, A, product, False, rng)
            assert G.nnz == A.nnz
            assert d.nulls[name][draw] == louvain(G, 2).Q
    assert len(set(d.nulls["gnm"])) == draws  # the draws differ
    # planted modules stand above every draw of every null: the smallest p-value the draws allow
    assert all(d.p(name) == 1 / (draws + 1) and d.z(name) > 5 for name in NULL_MODELS)


def test_the_draws_are_seeded():
    A = planted(test_seed(3))
    runs = [null_distribution(A, rank=4, draws=2, seeds=1, seed=s).to_dict() for s in (5, 5, 6)]
    assert runs[0] == runs[1] and runs[0]["nulls"] != runs[2]["nulls"]


@pytest.mark.parametrize("kwargs, message", [
    ({"draws": 1}, "draws must be an integer >= 2"),
    ({"nulls": ("gnm", "lattice")}, r"null models must be among .* got \['lattice'\]"),
    ({"rank": None}, "the low-rank null needs rank"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        null_distribution(planted(0), **{"rank": 4, **kwargs})


def test_a_graph_without_edges_is_refused():
    with pytest.raises(ValueError, match="without edges"):
        null_distribution(sparse.csr_array((5, 5)), rank=2)
