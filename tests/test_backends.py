"""Every backend against independent references: each kernel against its definition written out on dense matrices
here, and whole networks against a dense numpy step of the graph form (docs/model.md 4; SPEC 3.1) written here.

The ``backend`` fixture (conftest.py) runs each test on numpy, numba, torch on the CPU and, where a GPU is
present, torch on CUDA (marked ``gpu``, skipped with the reason otherwise). Networks are compared in float64:
a network must agree with the dense step within round-off (1e-12 of each array's largest entry) and count
exactly its synaptic events.
"""
import functools
import json
import sys

import numpy as np
import pytest
import torch

from bdh_graph import BDHConfig
from bdh_graph.model.checkpoints import save_model
from bdh_graph.cli import build_parser, main
from bdh_graph.graphs import Threshold, TopK, graph_factors, neuron_graph
from bdh_graph.kernels import check_device, get_backend, reference, set_backend
from bdh_graph.model.tensor import LN_EPS, rope_cos_sin
from bdh_graph.network import build_network
from helpers import assert_kernels_equal_their_dense_definition, random_csr, random_model, sparse_vector

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
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.3, 1.0])  # few rows apart, many, all: each path
def test_kernels_equal_their_dense_definition(backend, fraction, dtype):
    assert_kernels_equal_their_dense_definition(backend, fraction, dtype)


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


# -- networks: every backend equals a dense step of the graph form --------------------------------------------
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
def dense_run(name: str):
    """The records (x, y, k, w, u, logits, events) of every token and the synapse state after them, from the graph
    form stepped on dense float64 matrices (SPEC 3.1): the network's graphs (pruned where it is) as they come from
    ``bdh_graph.graphs``, sigma as one dense (n+V, N) matrix per layer and head; the hub wiring is the same
    computation through its d hubs (docs/model.md 4.5), with its own events."""
    config, kwargs = NETWORKS[name]
    cfg, scale = CONFIGS[config]
    model = random_model(cfg, seed=3, scale=scale)
    hub, prune = kwargs["wiring"] == "hub", kwargs.get("prune")
    n, V, N, H, d = cfg.n_neurons, cfg.vocab_size, cfg.N, cfg.n_head, cfg.n_embd
    G_x, G_y = (neuron_graph(model, f, "exact", prune=prune) for f in "xy")
    Gx, Gy = G_x.signed().toarray(), G_y.signed().toarray()  # (n+V, n): edge i -> j
    synapses = ((Gx != 0) if kwargs.get("synapses") == "wiring" else np.ones_like(Gx, bool))  # (n+V, n)
    E_ext = graph_factors(model, "x", "exact").pre  # (n+V, d)
    lm_head = model.lm_head.detach().double().numpy()  # (d, V)
    freqs = model.attn.freqs.detach().double().reshape(-1)
    def gain(u):  # the divisor of LayerNorm, per row; 1 in the Normfree variant
        return np.sqrt(np.var(u, axis=-1) + LN_EPS) if cfg.layer_norm else np.ones(u.shape[:-1])

    sigma = np.zeros((cfg.n_layer, n + V, n))  # every head's block side by side: head h is columns h*N:(h+1)*N
    records = []
    for t, token in enumerate(TOKENS):
        cos, sin = (a.numpy() for a in rope_cos_sin(torch.tensor(float(t), dtype=torch.float64), freqs))
        w = np.zeros(n + V)
        w[n + token] = 1 / gain(E_ext[n + token])
        record = {name: [] for name in ("x", "y", "k", "w", "u")}
        events = 0
        for layer in range(cfg.n_layer):
            u = E_ext.T @ w
            x = np.maximum(Gx.T @ w, 0)
            k = np.concatenate([x[h * N:(h + 1) * N] * cos + np.stack([-x[h * N + 1:(h + 1) * N:2],
                                                                       x[h * N:(h + 1) * N:2]], 1).ravel() * sin
                                for h in range(H)])  # R_t x, head by head
            A = np.stack([sigma[layer][:, h * N:(h + 1) * N] @ k[h * N:(h + 1) * N] for h in range(H)])  # (H, n+V)
            sigma[layer] += np.outer(w, k) * synapses  # Hebbian write, after the read
            potential = np.array([Gy[:, j] @ A[j // N] for j in range(n)]) / np.repeat(gain(A @ E_ext), N)
            y = np.maximum(potential, 0) * x
            x_ids, k_ids, pre_ids = np.flatnonzero(x), np.flatnonzero(k), np.flatnonzero(w)
            if hub:  # D_x u to every neuron; rho of the active x-neurons read and written at every hub; D_y a
                events += n * d + len(k_ids) * 2 * d + len(x_ids) * d
            else:  # out-edges of the active pre; the synapses read, those written; the in-edges with a read
                events += sum(np.count_nonzero(Gx[i]) for i in pre_ids)
                events += sum(np.count_nonzero(synapses[:, j]) + np.count_nonzero(synapses[pre_ids, j])
                              for j in k_ids)
                events += sum(np.count_nonzero((Gy[:, j] != 0) & (A[j // N] != 0)) for j in x_ids)
                events += np.count_nonzero(A) * d if cfg.layer_norm else 0  # the gain control
            for name, value in (("x", x), ("y", y), ("k", k), ("w", w.copy()), ("u", u)):
                record[name].append(value)
            z = E_ext[:n].T @ y  # y joins the trace (trace_add)
            events += np.count_nonzero(y) * d
            w[:n] += y / gain(z)
            w /= gain(E_ext.T @ w)
        record["u"].append(E_ext.T @ w)
        events += V * d if hub else np.count_nonzero(w) * V  # the readout
        records.append({name: np.stack(v) for name, v in record.items()}
                       | {"logits": lm_head.T @ (E_ext.T @ w), "events": events})
    if hub:  # rho = E_ext^T sigma, (h, d, N)
        state = [np.stack([E_ext.T @ sigma[layer][:, h * N:(h + 1) * N] for h in range(H)])
                 for layer in range(cfg.n_layer)]
    else:
        state = [sigma[layer][:, h * N:(h + 1) * N] for layer in range(cfg.n_layer) for h in range(H)]
    return records, state, sum(r["events"] for r in records)


def assert_round_off(actual, expected, what):
    scale = float(np.abs(expected).max(initial=0.0))
    err = float(np.abs(np.asarray(actual) - expected).max(initial=0.0))
    assert err <= ROUND_OFF * scale, f"{what}: max error {err:.3g}, {err / max(scale, 1e-300):.3g} of the largest entry"


@pytest.mark.parametrize("name", list(NETWORKS))
def test_network_equals_the_dense_graph_form(backend, name):
    expected_records, expected_state, expected_events = dense_run(name)
    net = network(name, backend)
    for t, token in enumerate(TOKENS):
        record = {}
        net.step(int(token), record)
        for key in ("x", "y", "k", "w", "u", "logits"):
            assert_round_off(record[key], expected_records[t][key], f"{name} token {t} {key}")
        assert record["events"] == expected_records[t]["events"], f"{name} token {t} events"
    for i, (state, expected) in enumerate(zip(synapse_state(net), expected_state, strict=True)):
        assert_round_off(state, expected, f"{name} synapse state {i}")
    assert net.events == expected_events
    assert max(np.abs(r["y"]).max() for r in expected_records) > 0  # not vacuous: y fires


@pytest.mark.parametrize("name", ["neuron-dense", "neuron-threshold-wiring-synapses", "hub"])
def test_state_file_moves_between_backends(backend, name, tmp_path):
    """A state saved by Numba resumes on ``backend``, and one saved there resumes on Numba (numpy arrays), each
    where the dense graph form goes on."""
    expected_records = dense_run(name)[0]
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
