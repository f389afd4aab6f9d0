"""NEST runs BDH's exported circuit (issue 21): what the stand-in neurons do on a text, beside the BDH network.

The bundled model's G_x, exact form, whole graph, each neuron's ``--top-k`` strongest inputs per circuit (as
``bdh-graph export --form exact --head all --top-k 8 --format sonata``), driven by the default 256-byte held-out
passage on the default clock (10 ms per token), with the stand-in's parameters of ``interop.sonata``
(``stand_in_parameters``). Reports the times of writing, ``BuildNetwork`` and ``Simulate``; NEST's spikes (per
head, the neurons that fired, the rates of the most active); and, on the same text, the BDH network's x-neurons
(hub wiring, exact): the share active per token in layer 0 (the layer the input neurons drive directly, as G_x's
input edges do), and how often BDH's x activates the neurons NEST fires most, fires at all, and leaves silent.

Needs a NEST built with HDF5 (``tools/build_nest_hdf5.sh``).

    python benchmarks/bench_nest.py [--top-k 8] [--most 20] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py  # noqa: F401  before nest: a wheel's h5py carries its own HDF5, which clashes with NEST's if loaded after
import nest
import numpy as np

from bdh_graph import load_model
from bdh_graph.graphs import extract
from bdh_graph.interop.clock import Clock
from bdh_graph.interop.sonata import write_circuit
from bdh_graph.network import build_network
from bdh_graph.network.monitors import ActivityMonitor
from bdh_graph.text import default_passage, encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--most", type=int, default=20, help="how many of NEST's most active neurons to report")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if not nest.build_info["have_hdf5"]:
        parser.error("this NEST has no HDF5, so nest.SonataNetwork cannot connect: run tools/build_nest_hdf5.sh")
    model, clock = load_model(), Clock()
    tokens = encode(default_passage(256)).numpy()
    c, seconds = model.config, clock.duration_ms(len(tokens)) / 1000
    results = {"nest": nest.__version__, "top_k": args.top_k, "tokens": len(tokens), "token_ms": clock.token_ms}

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        circuits = extract(model, "x", "exact", None, top_k=args.top_k).circuits
        written = write_circuit(circuits, Path(folder) / "circuit", tokens=tokens, clock=clock)
        results["write_s"] = time.perf_counter() - started
        stand_in = json.loads((Path(folder) / "circuit/components/point_neuron_models/bdh_stand_in.json").read_text())
        nest.ResetKernel()
        nest.set_verbosity("M_ERROR")
        network = nest.SonataNetwork(written["circuit_config"], written["simulation_config"])
        started = time.perf_counter()
        nodes = network.BuildNetwork()
        results["build_s"] = time.perf_counter() - started
        results.update(nodes=sum(len(p) for p in nodes.values()), connections=nest.num_connections)
        recorder = nest.Create("spike_recorder")
        nest.Connect(nodes["neurons"], recorder)
        started = time.perf_counter()
        network.Simulate()
        results["simulate_s"] = time.perf_counter() - started
    results["stand_in"] = stand_in
    first = nodes["neurons"][0].global_id
    events = recorder.get("events")
    neuron = np.asarray(events["senders"]) - first  # node id = global neuron id (the whole graph)
    counts = np.bincount(neuron, minlength=c.n_neurons)
    most = np.argsort(counts, kind="stable")[::-1][:args.most]
    results["nest_spikes"] = {
        "total": int(counts.sum()), "input_spikes": len(tokens),
        "per_head": np.bincount(neuron // c.N, minlength=c.n_head).tolist(),
        "neurons_that_fired": int((counts > 0).sum()), "mean_rate_hz": float(counts.mean() / seconds),
        "most_active": [{"neuron": int(j), "rate_hz": float(counts[j] / seconds)} for j in most]}

    activity = ActivityMonitor(which=("x",))
    build_network(model, wiring="hub").run(tokens, monitors=[activity], progress=False)
    layer0 = np.zeros(c.n_neurons)
    steps, ids, _ = activity.raster(0, "x")
    np.add.at(layer0, ids, 1)
    share = layer0 / len(tokens)  # of the tokens on which each x-neuron is active
    results["bdh_x_layer0"] = {  # (many neurons are active on nearly every token: a top-N list would be ties)
        "active_per_token": float(share.mean()), "neurons_ever_active": int((layer0 > 0).sum()),
        "share_of_tokens_active": {"nest_most_active": float(share[most].mean()),
                                   "nest_fired": float(share[counts > 0].mean()),
                                   "nest_silent": float(share[counts == 0].mean())}}
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
