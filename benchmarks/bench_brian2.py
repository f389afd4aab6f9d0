"""The same network in bdh_graph and in Brian2 (issue 16): one message round plus the Hebbian write.

The network: the bundled model's G_x pruned to the top 64 inputs per neuron and circuit (``neuron_graph(model, "x",
"exact", prune=TopK(64))``, both circuits as one signed graph: n+V presynaptic neurons -> n x-neurons), a synapse
``sigma`` on every edge, 10% of the presynaptic neurons active with rates ``r`` in [0.1, 1), and the rotated activity
``k`` of the x-neurons, half of them non-zero (numpy seed 0). One round: every active presynaptic neuron sends its
rate along its out-edges (``x_j += G_x[i -> j] r_i``) and the Hebbian write grows its synapses (``sigma_ij += r_i
k_j``). Events per round: the messages (the out-degrees of the active neurons) plus the synapse updates (those of
their synapses whose x-neuron is active), as bdh_graph counts them.

- bdh_graph: the Numba backend's ``push`` and ``graph_outer_add`` on the graph's CSR arrays (one index array serves
  the weights and sigma, both float32, sorted by presynaptic neuron); median per round over ``--rounds`` rounds, on
  1 and 2 Numba threads.
- Brian2: a ``NeuronGroup`` of presynaptic neurons that spike at every time step where active, a ``NeuronGroup`` of
  x-neurons, and ``Synapses(on_pre="x_post += g * r_pre; sigma += r_pre * k_post")``, float64 (Brian2's
  default). Runtime mode (Cython and numpy code generation, one thread): seconds per round from two runs of
  different length (the difference, so that a run's set-up is left out; the median of three such pairs). C++
  standalone on 1 and 2 OpenMP threads: its own timer of the simulation loop divided by the rounds (compilation
  and set-up left out); each C++ project is built in a folder of its own.

After the rounds the x and sigma of every Brian2 run are checked against bdh_graph's (``same_result``: relative
error < 1e-4, float32 against float64). Brian2 runs in a child process, ``--brian2-python`` (default: this
interpreter), so that it can live in its own environment: Brian2 2.9 does not import with numpy 2.4 (it wraps
``ndarray.ptp``; 2.2.6 works), e.g.

    python -m venv /tmp/brian && /tmp/brian/bin/pip install brian2 "numpy<2.3"
    python benchmarks/bench_brian2.py --brian2-python /tmp/brian/bin/python [--rounds 2000] [--json FILE]

With 200 rounds the runtime difference of two run lengths came out once at 0.011 ms a round for Cython (against
0.16 ms with 2000): the default is 2000 (about 40 s for every run here).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ACTIVE_FRACTION, K_FRACTION, SEED = 0.1, 0.5, 0
THREADS = (1, 2)
REPEATS = 3  # runtime mode: the median of three differences


def same_network(top_k: int) -> dict:
    """The pruned G_x of the bundled model (pre-major CSR), the active presynaptic neurons and their rates, k."""
    from bdh_graph import TopK, load_model
    from bdh_graph.graphs import neuron_graph

    G_x = neuron_graph(load_model(dropout=0.0), "x", "exact", prune=TopK(top_k)).signed()
    G_x.sort_indices()
    rng = np.random.default_rng(SEED)
    n_pre, n = G_x.shape
    active = np.sort(rng.choice(n_pre, size=round(ACTIVE_FRACTION * n_pre), replace=False))
    rates = rng.uniform(0.1, 1.0, size=len(active))
    k = rng.normal(size=n) * (rng.random(n) < K_FRACTION)
    return {"indptr": G_x.indptr.astype(np.int64), "indices": G_x.indices.astype(np.int64), "weights": G_x.data,
            "shape": np.array(G_x.shape), "active": active, "rates": rates, "k": k}


def bdh_rounds(net: dict, rounds: int, threads: int) -> dict:
    """``rounds`` rounds on the Numba backend: per-round median, events, and the x and sigma they leave."""
    import numba
    import scipy.sparse as sp

    from bdh_graph.kernels import get_backend

    b = get_backend("numba")
    numba.set_num_threads(threads)
    n_pre, n = net["shape"]
    graph = b.graph(sp.csr_array((net["weights"], net["indices"], net["indptr"]), shape=(n_pre, n)), np.float32)
    sigma = np.zeros(graph.nnz, np.float32)  # beside the weights: same index array, same order
    ids, rates, k = b.index_array(net["active"]), net["rates"].astype(np.float32), net["k"].astype(np.float32)
    x = np.zeros(n, np.float32)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        events = b.push(graph.indptr, graph.indices, graph.data, ids, rates, x)
        events += b.graph_outer_add(graph.indptr, graph.indices, sigma, ids, rates, k)
        times.append(time.perf_counter() - start)
    per_round = statistics.median(times)
    return {"threads": threads, "ms_per_round": 1e3 * per_round, "events_per_round": events,
            "events_per_s": events / per_round, "x": x, "sigma": sigma}


def brian2_child(path: str, target: str, threads: int, rounds: int, out: str) -> None:
    """Run the network of ``path`` in Brian2 (``target``: "cython" or "numpy" runtime, or "cpp_standalone") and
    write per-round seconds, x and sigma (in the graph's edge order) to ``out``."""
    import brian2 as b2

    net = dict(np.load(path))
    n_pre, n = (int(v) for v in net["shape"])
    pre_of_edge = np.repeat(np.arange(n_pre), np.diff(net["indptr"]))
    project = str(Path(out).with_suffix(""))  # the C++ project, beside the network's file
    if target == "cpp_standalone":
        b2.set_device("cpp_standalone", build_on_run=False)
        b2.prefs.devices.cpp_standalone.openmp_threads = threads
    else:
        b2.prefs.codegen.target = target

    def build():
        pre = b2.NeuronGroup(n_pre, "r : 1\nactive : boolean", threshold="active", reset="", name="pre")
        post = b2.NeuronGroup(n, "x : 1\nk : 1", name="post")
        synapses = b2.Synapses(pre, post, "g : 1\nsigma : 1", on_pre="x_post += g * r_pre\nsigma += r_pre * k_post",
                               name="synapses")
        synapses.connect(i=pre_of_edge, j=net["indices"])
        synapses.g = net["weights"]
        active = np.zeros(n_pre, bool)
        active[net["active"]] = True
        pre.active = active
        rates = np.zeros(n_pre)
        rates[net["active"]] = net["rates"]
        pre.r = rates
        post.k = net["k"]
        return b2.Network(pre, post, synapses), post, synapses

    dt = b2.defaultclock.dt
    if target == "cpp_standalone":
        network, post, synapses = build()
        network.run(rounds * dt)
        b2.device.build(directory=project, run=True, compile=True)
        per_round = b2.device._last_run_time / rounds
    else:  # runtime: the difference of two runs leaves out what a run() costs before its first step
        network, post, synapses = build()
        network.run(dt)  # code generation and compilation
        short, differences = rounds // 4, []
        for _ in range(REPEATS):
            seconds = []
            for length in (short, short + rounds):
                start = time.perf_counter()
                network.run(length * dt)
                seconds.append(time.perf_counter() - start)
            differences.append((seconds[1] - seconds[0]) / rounds)
        per_round = statistics.median(differences)
        rounds = 1 + REPEATS * (2 * short + rounds)  # every round run, for the check of x and sigma
    order = np.lexsort((np.asarray(synapses.j[:]), np.asarray(synapses.i[:])))  # back to the graph's edge order
    np.savez(out, per_round=per_round, rounds=rounds, x=np.asarray(post.x[:]),
             sigma=np.asarray(synapses.sigma[:])[order])


def run_brian2(python: str, path: Path, target: str, threads: int, rounds: int) -> dict:
    out = path.with_name(f"brian2-{target}-{threads}.npz")
    subprocess.run([python, __file__, "--child", str(path), "--target", target, "--threads", str(threads),
                    "--rounds", str(rounds), "--out", str(out)], check=True)
    result = dict(np.load(out))
    return {"target": target, "threads": threads, "ms_per_round": 1e3 * float(result["per_round"]),
            "rounds_run": int(result["rounds"]), "x": result["x"], "sigma": result["sigma"]}


def relative_error(actual, expected) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000, help="rounds per timing")
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--brian2-python", default=sys.executable, help="a Python interpreter with brian2")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        brian2_child(args.child, args.target, args.threads, args.rounds, args.out)
        return
    if args.rounds < 4:
        parser.error(f"argument --rounds: must be >= 4, got {args.rounds}")
    net = same_network(args.top_k)
    version = subprocess.run([args.brian2_python, "-c", "import brian2; print(brian2.__version__)"],
                             capture_output=True, text=True)
    if version.returncode:
        parser.error(f"argument --brian2-python: {args.brian2_python} cannot import brian2 "
                     f"({version.stderr.strip().splitlines()[-1]}); see --help")
    results = {"network": {"presynaptic": int(net["shape"][0]), "x_neurons": int(net["shape"][1]),
                           "edges": len(net["indices"]), "active": len(net["active"]),
                           "k_active": int(np.count_nonzero(net["k"])), "top_k": args.top_k},
               "brian2": version.stdout.strip(), "load_average": open("/proc/loadavg").read().split()[:3]}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "network.npz"
        np.savez(path, **net)
        bdh = {t: bdh_rounds(net, args.rounds, t) for t in THREADS}
        brian = [run_brian2(args.brian2_python, path, target, 1, args.rounds) for target in ("cython", "numpy")]
        brian += [run_brian2(args.brian2_python, path, "cpp_standalone", t, args.rounds) for t in THREADS]
    reference = bdh[1]
    for run in brian:  # the same network: Brian2's x and sigma after its rounds, scaled to bdh_graph's
        scale = args.rounds / run["rounds_run"]
        run["x_rel_error"] = relative_error(run.pop("x") * scale, reference["x"])
        run["sigma_rel_error"] = relative_error(run.pop("sigma") * scale, reference["sigma"])
        run["same_result"] = run["x_rel_error"] < 1e-4 and run["sigma_rel_error"] < 1e-4
        for t, ours in bdh.items():
            run[f"bdh_graph_{t}_thread_speedup"] = run["ms_per_round"] / ours["ms_per_round"]
    for ours in bdh.values():
        del ours["x"], ours["sigma"]
    results.update(bdh_graph=list(bdh.values()), brian2_runs=brian)
    results["load_average_after"] = open("/proc/loadavg").read().split()[:3]
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
