"""Every backend against the others: kernels against their numpy twins, whole networks against Numba.

The ``backend`` fixture (conftest.py) runs each test on numpy, numba, torch on the CPU and, where a GPU is
present, torch on CUDA (marked ``gpu``, skipped with the reason otherwise). Networks are compared in float64:
the same network on two backends must agree within round-off (1e-12 of each array's largest entry) and count
exactly the same synaptic events.
"""
import functools
import json
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from bdh_graph import BDHConfig
from bdh_graph.model.checkpoints import save_model
from bdh_graph.cli import build_parser, main
from bdh_graph.graphs import Threshold, TopK
from bdh_graph.kernels import check_device, get_backend, reference, set_backend
from bdh_graph.network import build_network
from helpers import random_model

TOL = {np.float64: 1e-12, np.float32: 1e-5}
ROUND_OFF = 1e-12
TOKENS = np.random.default_rng(5).integers(0, 256, 16)
CONFIGS = {
    "layernorm": (BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=8, dropout=0.0), 15.0),
    "normfree": (BDHConfig(n_layer=2, n_embd=24, n_head=3, mlp_internal_dim_multiplier=4, dropout=0.0,
                           layer_norm=False), 5.0),
}
NETWORKS = {  # name: (config, build_network arguments)
    "neuron-dense": ("layernorm", dict(wiring="neuron")),
    "neuron-dense-normfree": ("normfree", dict(wiring="neuron")),
    "neuron-topk": ("layernorm", dict(wiring="neuron", prune=TopK(64))),
    "neuron-threshold-wiring-synapses": ("layernorm", dict(wiring="neuron", prune=Threshold(0.5), synapses="wiring")),
    "hub": ("layernorm", dict(wiring="hub")),
    "hub-normfree": ("normfree", dict(wiring="hub")),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- kernels ---------------------------------------------------------------------------------------------------
def random_csr(rng, shape, density):
    g = sp.random_array(shape, density=density, format="csr", rng=rng)
    g.data = rng.normal(size=g.nnz)
    return g


def sparse_vector(rng, n, fraction):
    return rng.normal(size=n) * (rng.random(n) < fraction)


def kernel_cases(rng, fraction):
    """``case: arguments`` on the host (a case is a kernel's name, then what varies): a scipy graph stands for its
    CSR arrays, int arrays are neuron ids. "heads": an output or signal with one row per block of the graph's rows
    (3 heads of 100 rows, 4 of 50 in ``M``), so that one call serves every head."""
    w = sparse_vector(rng, 300, fraction)
    M = rng.normal(size=(200, 67))
    rows = np.flatnonzero(sparse_vector(rng, 200, fraction))
    pre, post = sparse_vector(rng, 50, fraction), sparse_vector(rng, 90, fraction)
    g = random_csr(rng, (300, 257), 0.05)
    K = 5  # steps of a sum of outer products: each step has its own active rows and columns
    steps = lambda n: np.stack([sparse_vector(rng, n, fraction) for _ in range(K)])  # noqa: E731
    R, C, C_graph = steps(90), steps(50), steps(257)
    post_ids, pre_ids = np.flatnonzero(abs(R).sum(0)), np.flatnonzero(abs(C).sum(0))
    heads = sparse_vector(rng, 3 * 257, 0.5).reshape(3, 257)  # with silent entries, as a read of A is
    return {
        "push": (g, np.flatnonzero(w), w[w != 0], np.ones(257)),
        "push heads": (g, np.flatnonzero(w), w[w != 0], np.ones((3, 257))),
        "pull": (g, np.flatnonzero(w), sparse_vector(rng, 257, 0.5), np.full(np.count_nonzero(w), np.nan)),
        "pull heads": (g, np.flatnonzero(w), heads, np.full(np.count_nonzero(w), np.nan)),
        "rows_combine": (M, rows, rng.normal(size=len(rows)), np.ones(67)),
        "rows_combine heads": (M, rows, sparse_vector(rng, 3 * len(rows), 0.5).reshape(3, -1), np.ones((3, 67))),
        "rows_dot": (M, rows, rng.normal(size=67), np.full(len(rows), np.nan)),
        "rows_dot heads": (M, rows, rng.normal(size=(4, 67)), np.full(len(rows), np.nan)),
        "outer_add": (rng.normal(size=(50, 90)), np.flatnonzero(pre), pre[pre != 0], np.flatnonzero(post),
                      post[post != 0]),
        "graph_outer_add": (g, np.flatnonzero(w), w[w != 0], sparse_vector(rng, 257, 0.5)),
        "product_add": (rng.normal(size=(90, 50)), post_ids, R[:, post_ids], pre_ids, C[:, pre_ids]),
        "graph_product_add": (g, np.flatnonzero(w), steps(300)[:, np.flatnonzero(w)], C_graph),
        "graph_read_write": (g, np.flatnonzero(w), w[w != 0], sparse_vector(rng, 257, 0.5), np.ones(257)),
        "graph_read_write heads": (g, np.flatnonzero(w), w[w != 0], sparse_vector(rng, 257, 0.5),
                                   np.ones((3, 257))),
        "rows_read_write heads": (M, rows, rng.normal(size=len(rows)), np.flatnonzero(post[:67]),
                                  post[:67][post[:67] != 0], np.ones((4, 67))),
    }


def run_kernel(backend, case, host_args, dtype):
    """Run the kernel of ``case`` on ``backend`` with its own copies of ``host_args``; its events and every array
    after."""
    args = []
    for a in host_args:
        if sp.issparse(a):
            args.extend(backend.graph(a, dtype)[:3])
        elif a.dtype.kind == "i":
            args.append(backend.index_array(a))
        else:
            args.append(backend.asarray(a, dtype))
    events = getattr(backend, case.split()[0])(*args)
    return events, [backend.to_numpy(a).copy() for a in args]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.3, 1.0])  # few rows apart, many, all: each path
def test_kernels_equal_numpy_twins(backend, fraction, dtype):
    numpy_backend = get_backend("numpy")
    for case, host_args in kernel_cases(np.random.default_rng(int(fraction * 10)), fraction).items():
        events, arrays = run_kernel(backend, case, host_args, dtype)
        expected_events, expected = run_kernel(numpy_backend, case, host_args, dtype)
        assert events == expected_events and isinstance(events, int), case
        for actual, want in zip(arrays, expected):
            scale = max(1.0, float(np.abs(want).max(initial=0.0)))
            np.testing.assert_allclose(actual, want, rtol=0, atol=TOL[dtype] * scale, err_msg=case)


def test_sums_of_outer_products_are_their_definition():
    """The numpy twins of the K-step writes against a loop of K outer products, written out by hand."""
    rng = np.random.default_rng(1)
    R, C = rng.normal(size=(3, 4)) * (rng.random((3, 4)) < 0.5), rng.normal(size=(3, 5)) * (rng.random((3, 5)) < 0.5)
    M, rows, cols = np.zeros((6, 7)), np.array([0, 2, 3, 5]), np.array([1, 2, 4, 5, 6])
    events = reference.product_add(M, rows, R, cols, C)
    expected = np.zeros((6, 7))
    for m in range(3):
        expected[np.ix_(rows, cols)] += np.outer(R[m], C[m])
    np.testing.assert_allclose(M, expected, rtol=1e-15)
    assert events == sum(np.count_nonzero(R[m]) * np.count_nonzero(C[m]) for m in range(3))
    g = random_csr(rng, (4, 5), 0.6)
    data = g.data.copy()
    events = reference.graph_product_add(g.indptr, g.indices, data, np.array([1, 3]), R[:, [0, 1]], C)
    dense = g.toarray()
    for m in range(3):
        for q, row in enumerate([1, 3]):
            dense[row] += (g.toarray()[row] != 0) * R[m, q] * C[m]
    np.testing.assert_allclose(sp.csr_array((data, g.indices, g.indptr), shape=g.shape).toarray(), dense, rtol=1e-15)
    assert events == sum(int(R[m, q] != 0) * np.count_nonzero((g.toarray()[row] != 0) & (C[m] != 0))
                         for m in range(3) for q, row in enumerate([1, 3]))


def test_fused_read_writes_and_heads_are_their_definition():
    """The numpy twins of the fused read-writes and of the kernels that serve every head at once, against dense
    matrices and loops written out by hand (each synapse read before it is written)."""
    rng = np.random.default_rng(2)
    n_head, N, n_pre = 2, 3, 5
    S = rng.normal(size=(n_head * N, n_pre)) * (rng.random((n_head * N, n_pre)) < 0.6)  # post-major synapses
    g = sp.csr_array(S)
    k, w = np.array([0.5, 0, -1.0, 2.0, 0, 0.25]), np.array([0, 1.5, 0, -0.5, 2.0])
    ids = np.flatnonzero(k)
    A_expected, S_expected = np.zeros((n_head, n_pre)), S.copy()
    for j in ids:
        A_expected[j // N] += k[j] * S[j]  # the read sees sigma before the write
        S_expected[j] += k[j] * w * (S[j] != 0)  # Hebbian write on the synapses that exist
    A, data = np.zeros((n_head, n_pre)), g.data.copy()
    events = reference.graph_read_write(g.indptr, g.indices, data, ids, k[ids], w, A)
    np.testing.assert_allclose(A, A_expected, rtol=1e-15)
    np.testing.assert_allclose(sp.csr_array((data, g.indices, g.indptr), shape=g.shape).toarray(), S_expected,
                               rtol=1e-15)
    assert events == np.count_nonzero(S[ids]) + np.count_nonzero((S[ids] != 0) & (w != 0))
    dense, A = S.copy(), np.zeros((n_head, n_pre))
    pre_ids = np.flatnonzero(w)
    events = reference.rows_read_write(dense, ids, k[ids], pre_ids, w[pre_ids], A)
    S_dense = S.copy()
    for j in ids:
        S_dense[j] += k[j] * w
    np.testing.assert_allclose(A, A_expected, rtol=1e-15)
    np.testing.assert_allclose(dense, S_dense, rtol=1e-15)
    assert events == len(ids) * (n_pre + len(pre_ids))
    # every head at once: a row of head h sends to, gathers from or meets row h
    out = np.zeros((n_head, n_pre))
    assert reference.push(g.indptr, g.indices, g.data, ids, k[ids], out) == np.count_nonzero(S[ids])
    np.testing.assert_allclose(out, A_expected, rtol=1e-15)
    signal, pulled = rng.normal(size=(n_head, n_pre)) * (rng.random((n_head, n_pre)) < 0.5), np.zeros(len(ids))
    events = reference.pull(g.indptr, g.indices, g.data, ids, signal, pulled)
    np.testing.assert_allclose(pulled, [S[j] @ signal[j // N] for j in ids], rtol=1e-15)
    assert events == sum(np.count_nonzero((S[j] != 0) & (signal[j // N] != 0)) for j in ids)
    dotted = np.zeros(len(ids))
    assert reference.rows_dot(S, ids, signal, dotted) == len(ids) * n_pre
    np.testing.assert_allclose(dotted, [S[j] @ signal[j // N] for j in ids], rtol=1e-15)
    combined, val = np.zeros((n_head, n_pre)), np.array([[1.0, 0, 2.0, 0], [0, 0, -1.0, 3.0]])
    assert reference.rows_combine(S, ids, val, combined) == 4 * n_pre  # the non-zero values times the columns
    np.testing.assert_allclose(combined, [val[h] @ S[ids] for h in range(n_head)], rtol=1e-15)


def test_head_blocks_that_do_not_divide_the_rows_are_refused(backend):
    g = backend.graph(random_csr(np.random.default_rng(0), (10, 4), 0.5), np.float64)
    idx = backend.index_array(np.arange(3))
    with pytest.raises(ValueError, match="push: out has 3 rows, which must divide the 10 rows of the graph"):
        backend.push(*g[:3], idx, backend.asarray(np.ones(3), np.float64), backend.zeros((3, 4), np.float64))
    with pytest.raises(ValueError, match="graph_read_write: out has 4 rows, which must divide the 10 rows"):
        backend.graph_read_write(*g[:3], idx, backend.asarray(np.ones(3), np.float64),
                                 backend.zeros(4, np.float64), backend.zeros((4, 4), np.float64))


def test_array_operations_equal_numpy(backend):
    rng = np.random.default_rng(0)
    host = get_backend("numpy")
    v, cos, sin = sparse_vector(rng, 64, 0.4), rng.normal(size=64), rng.normal(size=64)
    b = {name: backend.asarray(a, np.float64) for name, a in (("v", v), ("cos", cos), ("sin", sin))}
    idx, val = backend.active(b["v"])
    np.testing.assert_array_equal(backend.to_numpy(idx), np.flatnonzero(v))
    np.testing.assert_array_equal(backend.to_numpy(val), v[v != 0])
    np.testing.assert_array_equal(backend.to_numpy(backend.relu(b["v"])), host.relu(v))
    rotated = v * cos + np.stack([-v[1::2], v[0::2]], axis=1).ravel() * sin  # R_t v, pair by pair
    np.testing.assert_allclose(backend.to_numpy(backend.rope(b["v"], b["cos"], b["sin"])), rotated, rtol=1e-15)
    rows = np.stack([v, 2 * v, -v])  # a matrix rotates row by row
    np.testing.assert_allclose(backend.to_numpy(backend.rope(backend.asarray(rows, np.float64), b["cos"], b["sin"])),
                               np.stack([rotated, 2 * rotated, -rotated]), rtol=1e-15)
    np.testing.assert_allclose(float(backend.gain(b["v"], 0.25)), np.sqrt(v.var() + 0.25), rtol=1e-14)
    assert backend.all_finite(b["v"]) and not backend.all_finite(backend.asarray([1.0, np.nan], np.float64))
    assert not backend.all_finite(backend.asarray([[1.0, 2.0], [-np.inf, 0.0]], np.float32))
    assert backend.to_numpy(backend.zeros((2, 3), np.float32)).dtype == np.float32


# -- networks: every backend equals Numba ----------------------------------------------------------------------
def network(name: str, backend):
    config, kwargs = NETWORKS[name]
    cfg, scale = CONFIGS[config]
    return build_network(random_model(cfg, seed=3, scale=scale), backend=backend, dtype=np.float64, **kwargs)


def synapse_state(net) -> list[np.ndarray]:
    """The Hebbian state of every layer and head as dense numpy arrays (sigma, or rho in the hub wiring)."""
    c = net.config
    if net.wiring == "hub":
        return [net.rho(layer) for layer in range(c.n_layer)]
    return [net.sigma(layer, head).toarray() for layer in range(c.n_layer) for head in range(c.n_head)]


@functools.cache
def numba_run(name: str):
    """Numba's records of every token (x, y, k, w, u, logits, events) and the synapse state after them."""
    net = network(name, "numba")
    records = []
    for token in TOKENS:
        records.append({})
        net.step(int(token), records[-1])
    return records, synapse_state(net), net.events


def assert_round_off(actual, expected, what):
    scale = float(np.abs(expected).max(initial=0.0))
    err = float(np.abs(np.asarray(actual) - expected).max(initial=0.0))
    assert err <= ROUND_OFF * scale, f"{what}: max error {err:.3g}, {err / max(scale, 1e-300):.3g} of the largest entry"


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_equals_numba(backend, name):
    expected_records, expected_state, expected_events = numba_run(name)
    net = network(name, backend)
    for t, token in enumerate(TOKENS):
        record = {}
        net.step(int(token), record)
        for key in ("x", "y", "k", "w", "u", "logits"):
            assert_round_off(record[key], expected_records[t][key], f"{name} token {t} {key}")
        assert record["events"] == expected_records[t]["events"], f"{name} token {t} events"
    for i, (state, expected) in enumerate(zip(synapse_state(net), expected_state)):
        assert_round_off(state, expected, f"{name} synapse state {i}")
    assert net.events == expected_events
    assert max(np.abs(r["y"]).max() for r in expected_records) > 0  # not vacuous: y fires


@pytest.mark.parametrize("name", ["neuron-dense", "neuron-threshold-wiring-synapses", "hub"])
def test_state_file_moves_between_backends(backend, name, tmp_path):
    """A state saved by Numba resumes on ``backend``, and one saved there resumes on Numba (numpy arrays)."""
    expected_records = numba_run(name)[0]
    half = len(TOKENS) // 2
    for saver, loader in ((network(name, "numba"), network(name, backend)),
                          (network(name, backend), network(name, "numba"))):
        saver.run(TOKENS[:half], progress=False)
        loader.load_state(saver.save_state(tmp_path / "state.npz"))
        assert loader.position == half and loader.events == saver.events
        logits = loader.run(TOKENS[half:], progress=False)
        assert_round_off(logits, np.stack([r["logits"] for r in expected_records[half:]]), f"{name} resumed")


def test_validate_command_takes_backend_and_device(backend, tmp_path, capsys):
    checkpoint = save_model(random_model(CONFIGS["layernorm"][0], seed=1), tmp_path / "tiny.safetensors")
    text = tmp_path / "text.txt"
    text.write_text("Every backend, token by token.", encoding="utf-8")
    assert main(["validate", str(checkpoint), "--text", str(text), "--wiring", "hub", "--backend", backend.name,
                 "--device", str(backend.device), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["backend"] == backend.name and summary["max_rel"] < 1e-9 and summary["tokens"] == 30


# -- choosing a backend and a device ---------------------------------------------------------------------------
def test_set_backend_is_the_default_of_build_network(monkeypatch):
    import bdh_graph.kernels as kernels

    monkeypatch.setattr(kernels, "_default", kernels._default)
    set_backend("torch", "cpu")
    net = network("hub", None)
    assert net.backend is get_backend("torch", "cpu") and isinstance(net.trace.u, torch.Tensor)
    assert get_backend("torch").device == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_missing_cuda_says_what_to_install():
    message = r"device 'cuda' is not available: torch.cuda.is_available\(\) is False; install a CUDA build of torch"
    with pytest.raises(ValueError, match=message):
        get_backend("torch", "cuda")
    with pytest.raises(ValueError, match=message):
        build_network(random_model(CONFIGS["layernorm"][0], seed=0), wiring="hub", backend="torch", device="cuda")
    for command in (["train"], ["generate"], ["demo"]):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(command + ["--device", "cuda"])
        assert exit_info.value.code == 2


def test_bad_backend_or_device_is_refused(monkeypatch, capsys):
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'cuda'\).*got 'tpu'"):
        check_device("tpu")
    with pytest.raises(ValueError, match="backend 'numpy' runs on the CPU only, got device 'cuda:0'"):
        reference.NumpyBackend("cuda:0")
    # numba missing: the import fails and the error says what to install
    import bdh_graph.kernels as kernels

    monkeypatch.setattr(kernels, "_instances", {})
    monkeypatch.delitem(sys.modules, "bdh_graph.kernels.numba_kernels", raising=False)
    monkeypatch.setitem(sys.modules, "numba", None)
    with pytest.raises(ValueError, match=r"backend 'numba' is not available: .*install it with `pip install numba`"):
        get_backend("numba")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["generate", "--device", "tpu"])
    assert "argument --device: device must be one of" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: torch.cuda.is_available() is False")
def test_backend_instance_on_another_device_is_refused():
    with pytest.raises(ValueError, match="backend 'torch' runs on 'cpu', not on device 'cuda'"):
        get_backend(get_backend("torch", "cpu"), "cuda")
