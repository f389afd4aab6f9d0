"""Speed of the graph simulator (issue 4): tokens per second and synaptic events per second.

Cases, all float32 on random-weight models (``torch.manual_seed(0)``, eval mode), each timed token by token
(median over ``--tokens`` tokens of a text after ``--warmup`` tokens; the state keeps growing, as in use):

- ``tensor``: the tensor recurrent form ``BDH.step`` at the released default size (n = 32768, d = 256, L = 6),
  with torch's default threads and with one thread (the faster is the reference of the ratios);
- ``hub``: hub wiring at the released size (exact);
- ``topk16``, ``topk64``: neuron wiring at the released size, graphs pruned to the top 16 / 64 inputs per neuron
  and circuit, sigma on a synapse graph = the edges of the pruned G_x (``synapses="wiring"``);
- ``dense2048``: dense neuron wiring (every edge, every synapse) at n = 2048 (d = 256, 4 heads, L = 6), next to
  the tensor recurrent form of that model (``tensor2048``).

Synaptic events (docs/model.md 6): messages sent along edges plus synapse updates, counted by the kernels.
Memory bandwidth: a numpy copy of a 512 MiB array (bytes read + written per second), at the start and the end.
The bytes moved per event are compared with a floor of 4 bytes (one float32 weight or synapse value per message;
updates move 8), and the events per second with what the bus allows at 8 bytes per event (a float32 value and
its index), ``bus_events_per_s``.

The pruned event-driven path (issue 16): the bundled (trained) model, ``load_model()`` (L = 4, d = 128, h = 4,
n = 4096), as the neuron wiring pruned to the top 16 / 64 inputs per neuron and circuit with sigma on the pruned
G_x (``bundled_topk16``, ``bundled_topk64``), next to its tensor recurrent form (``bundled_tensor``) and its hub
wiring (``bundled``). For every network case a second pass over the text times each kernel call and splits the
time of a token into the events (inside the kernels) and the fixed costs (everything else: vector operations,
gains, RoPE, Python), e.g. Where a layer runs as one fused call (Numba: ``neuron_layer``, ``hub_layer``), that
call counts as a kernel, the layer's own vector work in it included.

    python benchmarks/bench_network.py --cases bundled_tensor bundled bundled_topk64 bundled_topk16 --threads 1

    python benchmarks/bench_network.py [--tokens 20] [--warmup 3] [--cases hub topk64 ...] [--json FILE]
                                       [--backend numba|torch|numpy] [--device cpu|cuda] [--threads N]

``--backend``/``--device`` choose where the networks run (the tensor cases stay on the CPU).

Every network case also steps the tensor recurrent form of its model in turn with it (torch on the threads of
``--threads``), token by token, so that ``speed_vs_tensor_in_turn`` is a ratio from one time window.

Spike mode (issues 7, 11): ``--spike-steps K [K ...]`` runs every network case once more per K in spike mode
(``mode="spike"``, rate scale ``"max"``, seed 0) and reports spikes per second and synaptic events per second
(each spike along each edge is one event, plus the coincidence updates) next to rate mode. The rate network and
the spiking ones step the same text token by token in turn, so that the load of a shared machine falls on all
of them alike and the ratio ``ms_per_token_vs_rate`` comes from one time window. The case ``bundled`` is the
hub wiring of the bundled model (``load_model()``: 4 layers, d = 128, n = 4096), e.g.

    python benchmarks/bench_network.py --cases hub bundled --spike-steps 4 16 --tokens 8 --warmup 2

Kernels against a commit (issue 16): ``--against COMMIT`` builds every network case once more on the Numba kernels
of that commit (``git show COMMIT:bdh_graph/kernels/numba_kernels.py``, compiled beside this checkout's) and
steps it in turn with the network and the tensor form, so that ``speed_vs_against_in_turn`` (the commit's time
over this checkout's) comes from one time window, e.g.

    python benchmarks/bench_network.py --cases bundled_topk64 hub --against 93699ab --threads 1

Monitors (issue 11): the case ``monitors`` steps one hub network at the released size over the text, each token
once per monitor set in turn (none; an EventMonitor; a SparsityMonitor; an ActivityMonitor, which copies x and
y to the host), and reports each set's per-token median against the unmonitored one, e.g.

    python benchmarks/bench_network.py --cases monitors --tokens 8 --warmup 2

Damping (issue 22): ``--damping`` builds every network case once more from its model's weights with the damping
toggled (an undamped model's twin is damped at the initial damping, time constants 32 .. 2048 tokens; a damped
model's twin is undamped) and steps it in turn with the network, so that ``speed_vs_damped_in_turn`` (the damped
twin's time over the network's) or ``speed_vs_undamped_in_turn`` (the undamped twin's over the damped network's)
comes from one time window, e.g.

    python benchmarks/bench_network.py --cases bundled --damping --threads 1 --tokens 40
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
import torch

from bdh_graph import (BDH, ActivityMonitor, BDHConfig, EventMonitor, SparsityMonitor, TopK, build_network,
                       load_model)
from bdh_graph.kernels import available_backends, get_backend
from bdh_graph.text import default_corpus, encode

BYTES_PER_EVENT_FLOOR = 4
RELEASED = BDHConfig(dropout=0.0)
N2048 = BDHConfig(n_embd=256, n_head=4, mlp_internal_dim_multiplier=8, dropout=0.0)  # N = 512, n = 2048


def random_model(config: BDHConfig) -> BDH:
    torch.manual_seed(0)
    return BDH(config).eval()


def per_token_seconds(step, tokens, warmup: int) -> list[float]:
    for t in tokens[:warmup]:
        step(int(t))
    times = []
    for t in tokens[warmup:]:
        start = time.perf_counter()
        step(int(t))
        times.append(time.perf_counter() - start)
    return times


def bench_tensor(model, tokens, warmup: int, threads: int | None = None) -> dict:
    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    state = model.init_state(1)
    try:
        times = per_token_seconds(lambda t: model.step(torch.tensor([t]), state), tokens, warmup)
    finally:
        torch.set_num_threads(default)
    median = statistics.median(times)
    return {"threads": threads or default, "ms_per_token": 1e3 * median, "tokens_per_s": 1 / median}


KERNELS = ("push", "pull", "rows_combine", "rows_dot", "outer_add", "graph_outer_add", "product_add",
           "graph_product_add", "graph_read_write", "rows_read_write", "neuron_layer", "hub_layer")


def time_split(net, tokens) -> dict:
    """Per token (medians over ``tokens``, stepped once more): the time inside the kernels, which send the messages
    and update the synapses (the events), and the rest (the fixed costs), with the kernels' calls and time each."""
    backend = net.backend
    spent = {name: [0, 0.0] for name in KERNELS if hasattr(backend, name)}  # (a backend of an older bdh_graph)

    def timed(name, kernel):
        def run(*args):
            start = time.perf_counter()
            events = kernel(*args)
            spent[name][0] += 1
            spent[name][1] += time.perf_counter() - start
            return events
        return run

    for name in spent:  # an instance attribute shadows the backend's method until it is deleted
        setattr(backend, name, timed(name, getattr(backend, name)))
    totals, inside = [], []
    try:
        for t in tokens:
            before = sum(seconds for _, seconds in spent.values())
            start = time.perf_counter()
            net.step(int(t))
            totals.append(time.perf_counter() - start)
            inside.append(sum(seconds for _, seconds in spent.values()) - before)
    finally:
        for name in spent:
            delattr(backend, name)
    total, events = statistics.median(totals), statistics.median(inside)
    return {"ms_per_token": 1e3 * total, "events_ms": 1e3 * events, "fixed_ms": 1e3 * (total - events),
            "kernels": {name: {"calls_per_token": calls / len(tokens), "ms_per_token": 1e3 * seconds / len(tokens)}
                        for name, (calls, seconds) in spent.items() if calls}}


def in_turn(steps: dict, tokens, warmup: int) -> dict[str, list[float]]:
    """Seconds per token of each ``steps[name](token)``: every token is stepped by each in turn (the order rotating
    from token to token), so that a shared machine's changing load falls on all of them alike."""
    names, times = list(steps), {name: [] for name in steps}
    for i, t in enumerate(tokens):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            steps[name](int(t))
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def bench_network(model, tokens, warmup: int, spike_steps=(), against=None, damping: bool = False,
                  **kwargs) -> dict:
    """The network of ``kwargs`` in rate mode and, stepped in turn with it, in spike mode for each K of
    ``spike_steps``, in rate mode on the backend ``against`` and built from a damped copy of ``model``
    (``damping``): ``{"rate": ..., "spike<K>": ..., "against": ..., "damped": ...}``."""
    modes = {"rate": {}} | {f"spike{K}": dict(mode="spike", spike_steps=K, seed=0) for K in spike_steps}
    if against is not None:
        modes["against"] = dict(backend=against)
    if damping:
        modes["undamped" if model.config.damping else "damped"] = dict(
            model=model.with_damping(not model.config.damping).eval())
    nets, build, events, spikes = {}, {}, {}, {}
    for name, options in modes.items():
        options = dict(options)
        start = time.perf_counter()
        nets[name] = build_network(options.pop("model", model), dtype=np.float32, progress=False,
                                   **(kwargs | options))
        build[name] = time.perf_counter() - start
        events[name], spikes[name] = [], []

    def stepper(name):
        net = nets[name]

        def step(t):
            before, spikes_before = net.events, net.spikes
            net.step(t)
            events[name].append(net.events - before)
            spikes[name].append(net.spikes - spikes_before)
        return step

    state = model.init_state(1)  # the tensor recurrent form steps in turn too: its ratio comes from one time window
    steps = {name: stepper(name) for name in nets} | {"tensor": lambda t: model.step(torch.tensor([t]), state)}
    times = in_turn(steps, tokens, warmup)
    tensor = statistics.median(times["tensor"])
    results = {}
    for name, net in nets.items():
        median = statistics.median(times[name])
        per_token = statistics.median(events[name][warmup:])
        spikes_per_token = statistics.median(spikes[name][warmup:])
        synapses = net.synapse_graph
        split = time_split(net, tokens[warmup:]) if net.mode == "rate" else None
        activity = SparsityMonitor()  # how much of the network fires, on a few more tokens
        net.run(tokens[:warmup], monitors=[activity], progress=False)
        results[name] = {
            "build_s": build[name], "ms_per_token": 1e3 * median, "tokens_per_s": 1 / median,
            "tensor_ms_per_token_in_turn": 1e3 * tensor, "speed_vs_tensor_in_turn": tensor / median,
            "x_active": float(activity.x.mean()), "y_active": float(activity.y.mean()),
            "events_per_token": per_token, "events_per_s": per_token / median, "edges": net.n_edges,
            "synapses": "all" if synapses is None else f"synapse graph of {synapses.nnz} pairs",
            "synapse_count": net.synapses.n_synapses, "mode": net.mode,
            **({"time_split": split} if split else {}),
            **({"spike_steps": net.spike_options["spike_steps"], "spikes_per_token": spikes_per_token,
                "spikes_per_s": spikes_per_token / median,
                "ms_per_token_vs_rate": median / statistics.median(times["rate"]),
                "events_per_token_vs_rate": per_token / results["rate"]["events_per_token"]}
               if net.mode == "spike" else {})}
    for other in ("against", "damped", "undamped"):
        if other in results:
            results["rate"][f"speed_vs_{other}_in_turn"] = (statistics.median(times[other])
                                                            / statistics.median(times["rate"]))
    return results


def numba_backend_at(commit: str):
    """The Numba backend of ``bdh_graph/kernels/numba_kernels.py`` as it was at ``commit`` (``git show``), loaded
    beside this checkout's: its kernels compile from that source, with this checkout's ``backend.py``."""
    path = "bdh_graph/kernels/numba_kernels.py"
    shown = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parent)
    if shown.returncode != 0:
        raise SystemExit(f"--against {commit}: git show found no {path} there: {shown.stderr.strip()}")
    folder = Path(tempfile.mkdtemp(prefix="bdh-kernels-"))  # Numba caches the compiled kernels beside the source
    source = folder / "numba_kernels_against.py"
    source.write_text(shown.stdout)
    spec = importlib.util.spec_from_file_location("bdh_graph.kernels.numba_kernels_against", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NumbaBackend()


MONITOR_SETS = {"none": list, "events": lambda: [EventMonitor()], "sparsity": lambda: [SparsityMonitor()],
                "activity": lambda: [ActivityMonitor()]}


def bench_monitors(model, tokens, warmup: int, **kwargs) -> dict:
    """One hub network stepped token by token with each monitor set in turn: per-token medians and their ratio
    to the unmonitored step."""
    net = build_network(model, wiring="hub", dtype=np.float32, progress=False, **kwargs)
    monitors = {name: make() for name, make in MONITOR_SETS.items()}
    steps = {name: (lambda t, attached=attached: net.run([t], monitors=attached, progress=False))
             for name, attached in monitors.items()}
    times = in_turn(steps, tokens, warmup)
    unmonitored = statistics.median(times["none"])
    return {name: {"ms_per_token": 1e3 * statistics.median(t), "vs_unmonitored": statistics.median(t) / unmonitored,
                   "record": sorted(set().union(*(m.variables for m in monitors[name])))}
            for name, t in times.items()}


def memory_bandwidth(repeats: int = 5) -> float:
    src = np.ones(64 * 2**20)  # 512 MiB of float64
    dst = np.empty_like(src)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return 2 * src.nbytes / statistics.median(times)


def machine(numba_threads) -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "")
    load = open("/proc/loadavg").read().split()[:3]
    return {"cpu": model, "cores": len(__import__("os").sched_getaffinity(0)), "load_average": load,
            "numba_threads": numba_threads, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "torch": torch.__version__}


CASES = ("tensor", "hub", "topk16", "topk64", "tensor2048", "dense2048", "bundled", "bundled_tensor", "bundled_topk64",
         "bundled_topk16", "monitors")
NETWORK_CASES = {"hub": dict(wiring="hub"), "topk16": dict(prune=TopK(16), synapses="wiring"),
                 "topk64": dict(prune=TopK(64), synapses="wiring"), "dense2048": dict(), "bundled": dict(wiring="hub"),
                 "bundled_topk64": dict(prune=TopK(64), synapses="wiring"),
                 "bundled_topk16": dict(prune=TopK(16), synapses="wiring")}
RATIOS = (("hub", "tensor"), ("topk16", "tensor"), ("topk64", "tensor"), ("dense2048", "tensor2048"),
          ("bundled", "bundled_tensor"), ("bundled_topk64", "bundled_tensor"), ("bundled_topk16", "bundled_tensor"))
BYTES_PER_INDEXED_EVENT = 8  # a float32 value and its index: what the bus allows, bus_events_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=20, help="timed tokens per case")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--backend", choices=available_backends(), default="numba", help="where the networks run")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the torch backend")
    parser.add_argument("--spike-steps", type=int, nargs="*", default=[], metavar="K",
                        help="also run each network case in spike mode with K micro-steps per round")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of torch and Numba (default: theirs, one per core)")
    parser.add_argument("--damping", action="store_true",
                        help="also step every network case, in turn with it, built from a damped copy of its model")
    parser.add_argument("--against", metavar="COMMIT", default=None,
                        help="also step every network case, in turn with it, on the Numba kernels of this git commit")
    args = parser.parse_args()
    if args.against and args.backend != "numba":
        parser.error(f"--against compares Numba kernels; it needs --backend numba, not {args.backend}")
    against = numba_backend_at(args.against) if args.against else None
    backend = get_backend(args.backend, args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
        if args.backend == "numba":  # (starting Numba's threads only where its kernels run)
            numba.set_num_threads(args.threads)
    tokens = encode(default_corpus()).numpy()[: args.warmup + args.tokens]
    # numba.get_num_threads() starts Numba's thread pool: only where its kernels run (in its default OpenMP layer
    # the pool's spinning threads slow torch down)
    numba_threads = numba.get_num_threads() if args.backend == "numba" else "not used"
    results = {"machine": machine(numba_threads), "memory_bandwidth_GBps": memory_bandwidth() / 1e9}
    results["machine"].update(backend=args.backend, device=str(backend.device))
    if str(backend.device).startswith("cuda"):
        results["machine"]["gpu"] = torch.cuda.get_device_name(backend.device)
    print(json.dumps(results, indent=2), flush=True)
    models = {}
    for case in args.cases:
        if case.startswith("bundled"):
            model = models.setdefault("bundled", load_model(dropout=0.0).float())
        else:
            size = N2048 if case.endswith("2048") else RELEASED
            model = models.setdefault(size, random_model(size))
        if case.startswith("tensor") or case.endswith("tensor"):
            results[case] = {"default_threads": bench_tensor(model, tokens, args.warmup),
                             "one_thread": bench_tensor(model, tokens, args.warmup, threads=1)}
        elif case == "monitors":
            results[case] = bench_monitors(model, tokens, args.warmup, backend=backend)
        else:
            modes = bench_network(model, tokens, args.warmup, args.spike_steps, against, args.damping,
                                  backend=backend, **NETWORK_CASES[case])
            results[case] = r = modes.pop("rate")
            r["bytes_per_event_at_bandwidth"] = results["memory_bandwidth_GBps"] * 1e9 / r["events_per_s"]
            r["effective_GBps_at_floor"] = r["events_per_s"] * BYTES_PER_EVENT_FLOOR / 1e9
            r["bus_events_per_s"] = results["memory_bandwidth_GBps"] * 1e9 / BYTES_PER_INDEXED_EVENT
            r["fraction_of_bus"] = r["events_per_s"] / r["bus_events_per_s"]
            for name, other in modes.items():
                results[f"{case}_{name}"] = other
                print(f"{case}_{name}", json.dumps(other, indent=2), flush=True)
        print(case, json.dumps(results[case], indent=2), flush=True)
    for case, reference in RATIOS:
        if case in results and reference in results:
            fastest = min(v["ms_per_token"] for v in results[reference].values())
            results[case]["speed_vs_tensor"] = fastest / results[case]["ms_per_token"]
            print(f"{case}: {results[case]['speed_vs_tensor']:.2f}x the tensor recurrent form "
                  f"({results[case]['speed_vs_tensor_in_turn']:.2f}x stepped in turn)", flush=True)
        if "speed_vs_damped_in_turn" in results.get(case, {}):
            print(f"{case}: damped {results[case]['speed_vs_damped_in_turn']:.3f}x the undamped time (stepped in "
                  "turn)", flush=True)
        if "speed_vs_against_in_turn" in results.get(case, {}):
            print(f"{case}: {results[case]['speed_vs_against_in_turn']:.2f}x the kernels of {args.against} "
                  "(stepped in turn)", flush=True)
    results["machine"]["load_average_after"] = open("/proc/loadavg").read().split()[:3]
    results["memory_bandwidth_GBps_after"] = memory_bandwidth() / 1e9
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
