"""Helpers shared by the test modules (import them with ``from helpers import ...``); fixtures live in conftest.py."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from bdh_graph import BDH, BDHConfig, save_model
from bdh_graph.cli import main
from bdh_graph.graphs import neuron_graph
from bdh_graph.kernels import available_backends, numba_kernels
from bdh_graph.network import build_network
from bdh_graph.text import encode

TINY = BDHConfig(n_layer=2, n_embd=16, n_head=2, mlp_internal_dim_multiplier=4, dropout=0.0)  # the CLI tests' model

# Set by conftest.py from ``--fresh-seeds``: statistical tests then draw new seeds (a sweep, not for CI).
FRESH_SEEDS = False


def test_seed(fixed: int) -> int:
    """``fixed``, or with ``pytest --fresh-seeds`` a new random seed (print it in the failure message)."""
    return int(np.random.SeedSequence().entropy % 2**31) if FRESH_SEEDS else fixed


test_seed.__test__ = False  # not a test, despite its name


def random_model(config: BDHConfig, seed: int, dtype=torch.float64, scale: float = 15.0) -> BDH:
    """A fresh random model in eval mode; init weights (std 0.02) scaled by ``scale`` so that x and y fire."""
    torch.manual_seed(seed)
    model = BDH(config).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.mul_(scale)
    return model


def tiny_checkpoint(folder, seed: int, scale: float) -> str:
    """``TINY`` with random weights (``random_model``, float32) saved as ``folder/tiny.safetensors``."""
    model = random_model(TINY, seed, dtype=torch.float32, scale=scale)
    return str(save_model(model, Path(folder) / "tiny.safetensors"))


def tiny_run(folder, steps=(0, 3, 6), config: BDHConfig = TINY) -> Path:
    """A run folder as ``train --snapshot-every K`` leaves it: ``config`` (TINY) trained with AdamW on a short text,
    saved at ``steps`` as snapshots/step-NNNNNN.safetensors, and its final model.safetensors."""
    folder = Path(folder)
    (folder / "snapshots").mkdir(parents=True)
    model = random_model(config, 0, dtype=torch.float32, scale=5.0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    tokens = encode("Dragons hatch from eggs. " * 8).view(1, -1)
    for step in range(max(steps) + 1):
        if step in steps:
            save_model(model, folder / "snapshots" / f"step-{step:06d}.safetensors")
        if step == max(steps):
            break
        logits, _ = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 256), tokens[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_model(model, folder / "model.safetensors")
    return folder


def run_json(capsys, *argv) -> dict:
    """Run ``bdh-graph ARGV --json``, expect exit code 0, and return the printed JSON."""
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# -- networks and kernels, shared by test_network, test_backends and test_network_kernels ------------------------
NETWORK_CONFIGS = {  # name: (config, weight scale) of the network tests
    "layernorm": (BDHConfig(n_layer=3, n_embd=16, n_head=2, mlp_internal_dim_multiplier=8, dropout=0.0), 15.0),
    "normfree": (BDHConfig(n_layer=2, n_embd=24, n_head=3, mlp_internal_dim_multiplier=4, dropout=0.0,
                           layer_norm=False), 5.0),
    "one_head": (BDHConfig(n_layer=2, n_embd=32, n_head=1, mlp_internal_dim_multiplier=2, dropout=0.0), 15.0),
}
TOKENS_LENGTH = 48  # the fastest RoPE pair turns once per 2 pi tokens: its phase wraps ~7 times
KERNEL_TOL = {np.float64: 1e-12, np.float32: 1e-5}  # of each array's largest entry


def random_tokens(seed, length=TOKENS_LENGTH, vocab=256):
    return np.random.default_rng(seed).integers(0, vocab, length)


def random_csr(rng, shape, density):
    g = sp.random_array(shape, density=density, format="csr", rng=rng)
    g.sum_duplicates()
    g.sort_indices()
    g.data = rng.normal(size=g.nnz)  # no edge of weight zero: the edges are the non-zero entries of g.toarray()
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


def dense_definition(case, host_args):
    """The kernel of ``case`` written out on dense matrices, row by row, in float64: its events and every array
    after, laid out as :func:`run_kernel` lays them out (a graph as indptr, indices, data)."""
    kernel, args = case.split()[0], [a.copy() for a in host_args]
    events = 0
    if sp.issparse(args[0]):  # S: the graph as a dense matrix; an edge is a non-zero entry
        g, *rest = args
        S = g.toarray()
        n_rows = S.shape[0]
    else:
        S, *rest = args
        n_rows = S.shape[0]
    if kernel == "push":
        idx, val, out = rest
        blocks = out.reshape(-1, out.shape[-1])
        for q, r in enumerate(idx):
            blocks[r // (n_rows // len(blocks))] += val[q] * S[r]
            events += np.count_nonzero(S[r])
    elif kernel == "pull":
        idx, signal, out = rest
        signal = signal.reshape(-1, signal.shape[-1])
        for q, r in enumerate(idx):
            source = signal[r // (n_rows // len(signal))]
            out[q] = S[r] @ source
            events += np.count_nonzero((S[r] != 0) & (source != 0))
    elif kernel == "rows_combine":
        idx, val, out = rest
        val, blocks = val.reshape(1, -1) if val.ndim == 1 else val, out.reshape(-1, out.shape[-1])
        for q, r in enumerate(idx):
            for b in range(len(blocks)):
                blocks[b] += val[b, q] * S[r]
        events = np.count_nonzero(val) * S.shape[1]
    elif kernel == "rows_dot":
        idx, vec, out = rest
        vec = vec.reshape(-1, vec.shape[-1])
        for q, r in enumerate(idx):
            out[q] = S[r] @ vec[r // (n_rows // len(vec))]
        events = len(idx) * S.shape[1]
    elif kernel == "outer_add":
        row_idx, row_val, col_idx, col_val = rest
        for q, r in enumerate(row_idx):
            for c, col in enumerate(col_idx):
                S[r, col] += row_val[q] * col_val[c]
        events = len(row_idx) * len(col_idx)
    elif kernel == "product_add":
        row_idx, R, col_idx, C = rest
        for m in range(len(R)):
            for q, r in enumerate(row_idx):
                for c, col in enumerate(col_idx):
                    S[r, col] += R[m, q] * C[m, c]
            events += np.count_nonzero(R[m]) * np.count_nonzero(C[m])
    elif kernel in ("graph_outer_add", "graph_product_add", "graph_read_write"):
        edges, before = S != 0, S.copy()
        if kernel == "graph_read_write":
            idx, val, pre, out = rest
            blocks = out.reshape(-1, out.shape[-1])
            for q, r in enumerate(idx):  # the read sees the synapses before the write
                blocks[r // (n_rows // len(blocks))] += val[q] * before[r]
                events += np.count_nonzero(edges[r])
            R, C = val[None], pre[None]
        elif kernel == "graph_outer_add":
            idx, val, col = rest
            R, C = val[None], col[None]
        else:
            idx, R, C = rest
        for m in range(len(R)):
            for q, r in enumerate(idx):
                S[r] += R[m, q] * C[m] * edges[r]
                if R[m, q] != 0:
                    events += np.count_nonzero(edges[r] & (C[m] != 0))
        g.data = S[edges]  # row by row, columns sorted: the CSR order
    elif kernel == "rows_read_write":
        idx, val, pre_idx, pre_val, out = rest
        blocks, before = out.reshape(-1, out.shape[-1]), S.copy()
        for q, r in enumerate(idx):
            blocks[r // (n_rows // len(blocks))] += val[q] * before[r]
            S[r, pre_idx] += val[q] * pre_val
        events = len(idx) * (S.shape[1] + len(pre_idx))
    else:
        raise AssertionError(f"no definition for {case}")
    first = [g.indptr, g.indices, g.data] if sp.issparse(args[0]) else [S]
    return int(events), first + rest


def assert_kernels_equal_their_dense_definition(backend, fraction: float, dtype) -> None:
    """Every kernel case (``kernel_cases``) on ``backend`` gives the events and arrays of its dense definition."""
    for case, host_args in kernel_cases(np.random.default_rng(int(fraction * 10)), fraction).items():
        events, arrays = run_kernel(backend, case, host_args, dtype)
        expected_events, expected = dense_definition(case, host_args)
        assert events == expected_events and isinstance(events, int), case
        for actual, want in zip(arrays, expected, strict=True):
            scale = max(1.0, float(np.abs(want).max(initial=0.0)))
            np.testing.assert_allclose(actual, want, rtol=0, atol=KERNEL_TOL[dtype] * scale, err_msg=case)


DAMPED_CONFIG = BDHConfig(n_layer=2, n_embd=16, n_head=3, mlp_internal_dim_multiplier=6, dropout=0.0, damping=True)
DAMPING_GAMMAS = (0.35, 0.8, 0.97)


def damped_model(config: BDHConfig = DAMPED_CONFIG, gammas=DAMPING_GAMMAS, seed: int = 0):
    """``random_model`` of ``config`` with the damping factors ``gammas`` (one per head)."""
    model = random_model(config, seed)
    with torch.no_grad():
        g = torch.tensor(gammas, dtype=torch.float64)
        model.attn.damping.copy_(torch.log(g) - torch.log1p(-g))
    return model


def assert_events_are_their_definition(small_model, backend, wiring, kwargs) -> None:
    """Each token's synaptic events, counted by the kernels, against docs/model.md's definition recomputed from the
    record and the graphs: messages along edges (drive, read, gain control, gate, output, readout) plus the
    synapse updates of the Hebbian write (active presynaptic x active x-neuron pairs that are synapses)."""
    c = small_model.config
    n, d, V, H, N = c.n_neurons, c.n_embd, c.vocab_size, c.n_head, c.N
    net = build_network(small_model, wiring=wiring, backend=backend, **kwargs)
    if wiring == "neuron":
        G_x, G_y = (neuron_graph(small_model, f, "exact", prune=kwargs.get("prune")) for f in "xy")
        x_out = (G_x.excitatory + G_x.inhibitory != 0).sum(1)  # out-degree of each presynaptic neuron
        y_in = (G_y.excitatory + G_y.inhibitory != 0).T.toarray()  # (n, n+V): the in-edges of each y-neuron
        pattern = np.ones((n + V, n), bool) if net.synapse_graph is None else net.synapse_graph.toarray() != 0
    fired = 0
    for token in random_tokens(9, 6):
        sigma = ([[net.sigma(layer, h).toarray() for h in range(H)] for layer in range(c.n_layer)]
                 if wiring == "neuron" else None)
        record = {}
        net.step(int(token), record)
        expected = 0
        for layer in range(c.n_layer):
            w, x, k, y = (record[key][layer] for key in ("w", "x", "k", "y"))
            if wiring == "hub":
                expected += n * d + 2 * np.count_nonzero(k) * d + np.count_nonzero(x) * d  # drive, read, write, gate
            else:
                A = np.stack([sigma[layer][h] @ k[h * N:(h + 1) * N] for h in range(H)])  # the reads, before the write
                expected += x_out[w != 0].sum()  # drive
                expected += pattern[:, k != 0].sum() + pattern[np.ix_(w != 0, k != 0)].sum()  # read, write
                expected += np.count_nonzero(A) * d  # gain control: every read seen through the d hubs
                expected += sum(np.count_nonzero(y_in[j] & (A[j // N] != 0)) for j in np.flatnonzero(x))  # gate
            expected += np.count_nonzero(y) * d  # y -> hubs
        last = np.count_nonzero((record["w"][-1] != 0) | np.r_[record["y"][-1] != 0, np.zeros(V, bool)])
        expected += V * d if wiring == "hub" else last * V  # readout
        assert record["events"] == expected, (wiring, token)
        fired += np.count_nonzero(record["y"])
    assert fired > 0  # not vacuous


class OneByOne(numba_kernels.NumbaBackend):
    """The Numba backend without its fused layers: the network runs a layer's kernels one call at a time."""

    def fuses_layer(self, indexed: int, dense: int) -> bool:
        return False


# -- every backend, so that one test suite runs against all of them ---------------------------------------------
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                             reason="needs a CUDA GPU: torch.cuda.is_available() is False")
BACKEND_PARAMS = [pytest.param((name, "cpu"), id="torch-cpu" if name == "torch" else name)
                  for name in available_backends()]
BACKEND_PARAMS.append(pytest.param(("torch", "cuda"), id="torch-cuda", marks=[pytest.mark.gpu, NO_CUDA]))

# The device of test_gpu.py: cuda, unless BDH_GPU_TEST_DEVICE names another (e.g. ``cpu``, to run those tests' code
# paths on a machine without a GPU: each then compares the CPU with itself, a smoke run and not a check of CUDA).
GPU_DEVICE = os.environ.get("BDH_GPU_TEST_DEVICE", "cuda")
ON_GPU_DEVICE = pytest.mark.skipif(GPU_DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                   reason="needs a CUDA GPU: torch.cuda.is_available() is False (BDH_GPU_TEST_DEVICE"
                                          "=cpu runs these tests' code paths on the CPU)")
