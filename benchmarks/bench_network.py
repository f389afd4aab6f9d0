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

Synaptic events (SPEC.md 6): messages sent along edges plus synapse updates, counted by the kernels.
Memory bandwidth: a numpy copy of a 512 MiB array (bytes read + written per second). The bytes moved per event
are compared with a floor of 4 bytes (one float32 weight or synapse value per message; updates move 8).

    python benchmarks/bench_network.py [--tokens 20] [--warmup 3] [--cases hub topk64 ...] [--json FILE]
                                       [--backend numba|torch|numpy] [--device cpu|cuda]

``--backend``/``--device`` choose where the networks run (the tensor cases stay on the CPU).

Spike mode (issue 7): ``--spike-steps K [K ...]`` runs every network case once more per K in spike mode
(``mode="spike"``, rate scale ``"max"``, seed 0) and reports spikes per second and synaptic events per second
(each spike along each edge is one event, plus the coincidence updates) next to rate mode, e.g.

    python benchmarks/bench_network.py --cases hub dense2048 --spike-steps 4 16
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time

import numba
import numpy as np
import torch

from bdh_graph import BDH, BDHConfig, SparsityMonitor, TopK, build_network
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


def bench_network(model, tokens, warmup: int, **kwargs) -> dict:
    start = time.perf_counter()
    net = build_network(model, dtype=np.float32, progress=False, **kwargs)
    build = time.perf_counter() - start
    events, spikes = [], []

    def step(t):
        before, spikes_before = net.events, net.spikes
        net.step(t)
        events.append(net.events - before)
        spikes.append(net.spikes - spikes_before)

    times = per_token_seconds(step, tokens, warmup)
    median = statistics.median(times)
    per_token = statistics.median(events[warmup:])
    spikes_per_token = statistics.median(spikes[warmup:])
    synapses = net.synapse_graph
    activity = SparsityMonitor()  # how much of the network fires, on a few more tokens
    net.run(tokens[:warmup], monitors=[activity], progress=False)
    return {"build_s": build, "ms_per_token": 1e3 * median, "tokens_per_s": 1 / median,
            "x_active": float(activity.x.mean()), "y_active": float(activity.y.mean()),
            "events_per_token": per_token, "events_per_s": per_token / median, "edges": net.n_edges,
            "synapses": "all" if synapses is None else f"synapse graph of {synapses.nnz} pairs",
            "synapse_count": net.synapses.n_synapses, "mode": net.mode,
            **({"spike_steps": net.spike_options["spike_steps"], "spikes_per_token": spikes_per_token,
                "spikes_per_s": spikes_per_token / median} if net.mode == "spike" else {})}


def memory_bandwidth(repeats: int = 5) -> float:
    src = np.ones(64 * 2**20)  # 512 MiB of float64
    dst = np.empty_like(src)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return 2 * src.nbytes / statistics.median(times)


def machine() -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "")
    load = open("/proc/loadavg").read().split()[:3]
    return {"cpu": model, "cores": len(__import__("os").sched_getaffinity(0)), "load_average": load,
            "numba_threads": numba.get_num_threads(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "torch": torch.__version__}


CASES = ("tensor", "hub", "topk16", "topk64", "tensor2048", "dense2048")


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
    args = parser.parse_args()
    backend = get_backend(args.backend, args.device)
    tokens = encode(default_corpus()).numpy()[: args.warmup + args.tokens]
    results = {"machine": machine(), "memory_bandwidth_GBps": memory_bandwidth() / 1e9}
    results["machine"].update(backend=args.backend, device=str(backend.device))
    if str(backend.device).startswith("cuda"):
        results["machine"]["gpu"] = torch.cuda.get_device_name(backend.device)
    print(json.dumps(results, indent=2), flush=True)
    models = {}
    for case in args.cases:
        size = N2048 if case.endswith("2048") else RELEASED
        model = models.setdefault(size, random_model(size))
        if case.startswith("tensor"):
            results[case] = {"default_threads": bench_tensor(model, tokens, args.warmup),
                             "one_thread": bench_tensor(model, tokens, args.warmup, threads=1)}
        else:
            kwargs = {"hub": dict(wiring="hub"), "topk16": dict(prune=TopK(16), synapses="wiring"),
                      "topk64": dict(prune=TopK(64), synapses="wiring"), "dense2048": dict()}[case]
            results[case] = bench_network(model, tokens, args.warmup, backend=backend, **kwargs)
            r = results[case]
            r["bytes_per_event_at_bandwidth"] = results["memory_bandwidth_GBps"] * 1e9 / r["events_per_s"]
            r["effective_GBps_at_floor"] = r["events_per_s"] * BYTES_PER_EVENT_FLOOR / 1e9
            for K in args.spike_steps:
                spiking = bench_network(model, tokens, args.warmup, backend=backend, mode="spike", spike_steps=K,
                                        seed=0, **kwargs)
                spiking["ms_per_token_vs_rate"] = spiking["ms_per_token"] / r["ms_per_token"]
                spiking["events_per_token_vs_rate"] = spiking["events_per_token"] / r["events_per_token"]
                results[f"{case}_spike{K}"] = spiking
                print(f"{case}_spike{K}", json.dumps(spiking, indent=2), flush=True)
        print(case, json.dumps(results[case], indent=2), flush=True)
    for case, reference in (("hub", "tensor"), ("topk16", "tensor"), ("topk64", "tensor"),
                            ("dense2048", "tensor2048")):
        if case in results and reference in results:
            fastest = min(v["ms_per_token"] for v in results[reference].values())
            results[case]["speed_vs_tensor"] = fastest / results[case]["ms_per_token"]
            print(f"{case}: {results[case]['speed_vs_tensor']:.2f}x the tensor recurrent form", flush=True)
    results["machine"]["load_average_after"] = open("/proc/loadavg").read().split()[:3]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
