"""``bdh-graph validate`` and ``bdh-graph step``: the graph network against the tensor model, and a recorded run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..files import atomic_path
from ..graphs import Threshold, TopK, graph_factors
from ..network.monitors import ActivityMonitor, EventMonitor, SparsityMonitor, SpikeMonitor, SynapseMonitor
from ..network import build_network
from ..plots.network import plot_layer_sparsity, plot_raster, plot_synapse_traces
from ..plots.spikes import plot_population_rate, plot_spike_raster
from ..text import encode
from ..network.validation import validate
from .common import (add_backend_arguments, add_json_flag, add_model_argument, add_text_argument, model_from_args,
                     print_result, text_from_args)

DEFAULT_TRACED = 4  # synapses traced by `step` when none are named


def add_network_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wiring", choices=("neuron", "hub"), default="neuron",
                   help="neuron: n+V neurons on the graphs G_x, G_y (SPEC 3.1); hub: neurons and d hubs (SPEC 3.3)")
    prune = p.add_mutually_exclusive_group()
    prune.add_argument("--top-k", type=int, default=None, help="neuron wiring: keep the k strongest inputs per "
                                                               "neuron and circuit (an approximation)")
    prune.add_argument("--beta", type=float, default=None, help="neuron wiring: keep the edges with |G| >= beta")
    p.add_argument("--synapses", choices=("all", "wiring"), default="all",
                   help="neuron wiring: sigma on every pair, or only where G_x has an edge")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    add_backend_arguments(p)
    p.add_argument("--mode", choices=("rate", "spike"), default="rate",
                   help="rate: messages carry rates (exact); spike: Bernoulli spikes over --spike-steps micro-steps")
    p.add_argument("--spike-steps", type=int, default=16, metavar="K", help="spike mode: micro-steps per round")
    p.add_argument("--seed", type=int, default=0, help="spike mode: seed of the spikes")
    p.add_argument("--rate-scale", default="max", metavar="S",
                   help="spike mode: the rate that fires at every micro-step: 'max' (per round, the population's "
                        "largest), a number, or per population, e.g. 'x=4,y=2,w=max'")


def parse_rate_scale(text: str):
    """``max``, a number, or ``population=value,...`` (values ``max`` or numbers)."""
    def value(v: str):
        try:
            return v if v == "max" else float(v)
        except ValueError:
            raise ValueError(f"--rate-scale values must be 'max' or numbers, got {v!r}") from None
    if "=" not in text:
        return value(text)
    pairs = [item.split("=", 1) for item in text.split(",")]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"--rate-scale must be 'max', a number or 'population=value,...', got {text!r}")
    return {k.strip(): value(v.strip()) for k, v in pairs}


def network_options(args) -> dict:
    prune = TopK(args.top_k) if args.top_k is not None else Threshold(args.beta) if args.beta is not None else None
    options = dict(wiring=args.wiring, prune=prune, synapses=args.synapses, dtype=args.dtype, backend=args.backend,
                   device=args.device, mode=args.mode)
    if args.mode == "spike":
        options.update(spike_steps=args.spike_steps, seed=args.seed, rate_scale=parse_rate_scale(args.rate_scale))
    return options


def register(sub) -> None:
    v = sub.add_parser("validate", help="step the graph network and the tensor model side by side; report errors",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_argument(v)
    add_text_argument(v)
    add_network_arguments(v)
    v.add_argument("--state-every", type=int, default=16,
                   help="compare the synaptic state after every this many tokens and the last (0: never)")
    add_json_flag(v)
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("step", help="step the graph network over a text; write raster, sparsity, synapse traces "
                                    "and the recordings", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_argument(s)
    add_text_argument(s)
    add_network_arguments(s)
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument("--synapse", action="append", default=None, metavar="L,H,I,J",
                   help="trace sigma[L, H][I, J] (presynaptic I: neuron < n or input neuron n + byte; x-neuron J "
                        f"< N of head H); repeatable. Default: {DEFAULT_TRACED} synapses from the input neuron "
                        "of the text's commonest byte onto the x-neurons of head 0 it excites most, last layer")
    add_json_flag(s)
    s.set_defaults(func=cmd_step)


def format_summary(s: dict) -> str:
    mode = f", spike mode K = {s['spike_steps']}" if s.get("mode") == "spike" else ""
    lines = [f"{s['wiring']} wiring ({s['backend']}, {s['dtype']}, prune {s['prune']}, synapses {s['synapses']}"
             f"{mode}) against the tensor model over {s['tokens']} tokens:"]
    for q in ("x", "y", "v", "state", "logits"):
        if s[f"{q}_max_rel"] is not None:
            lines.append(f"  {q:7s} max abs error {s[f'{q}_max_abs']:.3e}   max rel error {s[f'{q}_max_rel']:.3e}")
    lines.append(f"  KL(tensor || graph) mean {s['kl_mean']:.3e} nats, max {s['kl_max']:.3e}; "
                 f"top-1 agreement {100 * s['top1_agreement']:.1f}%; {s['events_per_token']:.3g} events per token")
    return "\n".join(lines)


def cmd_validate(args) -> int:
    model = model_from_args(args)
    result = validate(model, text_from_args(args), state_every=args.state_every, progress=True,
                      **network_options(args))
    summary = result.summary()
    print_result(args, summary, format_summary(summary))
    return 0


def parse_synapse(text: str) -> tuple[int, int, int, int]:
    try:
        layer, head, i, j = (int(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"--synapse must be L,H,I,J (four integers), got {text!r}") from None
    return layer, head, i, j


def default_synapses(model, tokens: np.ndarray, count: int = DEFAULT_TRACED) -> list[tuple[int, int, int, int]]:
    """From the input neuron of the commonest byte onto the x-neurons of head 0 with the strongest edges G_x."""
    c = model.config
    byte = int(np.bincount(tokens, minlength=c.vocab_size).argmax())
    factors = graph_factors(model, "x", "exact", head=0)
    weights = factors.pre[c.n_neurons + byte] @ factors.post  # G_x edges from the input neuron, (N,)
    return [(c.n_layer - 1, 0, c.n_neurons + byte, int(j)) for j in np.argsort(-weights)[:count]]


def synapse_monitors(pairs) -> list[SynapseMonitor]:
    """One SynapseMonitor per (layer, head) of ``pairs`` (L, H, I, J)."""
    groups: dict = {}
    for layer, head, i, j in pairs:
        groups.setdefault((layer, head), []).append((i, j))
    return [SynapseMonitor(layer, head, ij) for (layer, head), ij in groups.items()]


def save_spikes(spikes: SpikeMonitor, out: Path, title: str) -> dict:
    """A spiking run's spike raster, population rates and every spike (``spikes.npz``) in the folder ``out``."""
    return {"spike_raster": plot_spike_raster(spikes, out / "spike_raster.png", title=title),
            "population_rate": plot_population_rate(spikes, out / "population_rate.png",
                                                    title=f"{title}: population rates"),
            "spikes": spikes.save(out / "spikes.npz")}


def save_run(out: Path, tokens: np.ndarray, activity: ActivityMonitor, sparsity: SparsityMonitor,
             synapses: list[SynapseMonitor], events: EventMonitor, title: str, spikes: SpikeMonitor | None = None
             ) -> dict:
    """Figures (raster, sparsity, synapse traces; spike raster and population rates in spike mode) and the
    recordings (.npz; spikes in their own file) of a monitored run."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"raster": plot_raster(activity, out / "raster.png", title=title),
             "sparsity": plot_layer_sparsity(sparsity, out / "sparsity.png", title=f"{title}: sparsity")}
    if synapses:
        files["synapses"] = plot_synapse_traces(synapses, out / "synapses.png", title=f"{title}: synapse traces")
    if spikes is not None:
        files.update(save_spikes(spikes, out, title))
    arrays = {"tokens": tokens, "sparsity_x": sparsity.x, "sparsity_y": sparsity.y, "events": events.events,
              "synapse_pairs": np.array([(m.layer, m.head, i, j) for m in synapses for i, j in m.pairs]),
              "synapse_values": (np.concatenate([m.values for m in synapses], axis=1) if synapses
                                 else np.zeros((len(tokens), 0)))}
    for layer in activity.layers:
        for which in activity.which:
            for name, a in zip(("steps", "neurons", "rates"), activity.raster(layer, which)):
                arrays[f"{which}_layer{layer}_{name}"] = a
    with atomic_path(out / "recordings.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    files["recordings"] = out / "recordings.npz"
    return {k: str(v) for k, v in files.items()}


def cmd_step(args) -> int:
    model = model_from_args(args)
    tokens = encode(text_from_args(args)).numpy()
    options = network_options(args)
    # a hub network in spike mode stores no sigma to trace: trace only what was asked for (and is refused)
    untraceable = args.mode == "spike" and args.wiring == "hub"
    pairs = ([parse_synapse(s) for s in args.synapse] if args.synapse
             else [] if untraceable else default_synapses(model, tokens))
    print(f"building the {args.wiring} network ...", file=sys.stderr)
    net = build_network(model, progress=True, **options)
    activity, sparsity, events = ActivityMonitor(), SparsityMonitor(), EventMonitor()
    spikes = SpikeMonitor() if net.mode == "spike" else None
    traced = synapse_monitors(pairs)
    net.run(tokens, monitors=[activity, sparsity, events, *traced, *([spikes] if spikes else [])], progress=True)
    title = f"{net.wiring} network" + (f", spikes K = {net.spike_options['spike_steps']}" if spikes else "")
    files = save_run(args.out, tokens, activity, sparsity, traced, events, title, spikes)
    data = {"tokens": len(tokens), "wiring": net.wiring, "backend": net.backend.name, "mode": net.mode,
            "events": int(net.events), "x_active_per_layer": sparsity.x.mean(0).tolist(),
            "y_active_per_layer": sparsity.y.mean(0).tolist(), "synapses": [list(p) for p in pairs], "files": files}
    lines = [f"stepped {len(tokens)} tokens through the {net.wiring} network ({net.backend.name}, {net.mode} mode): "
             f"{net.events:.3g} synaptic events ({net.events / len(tokens):.3g} per token)"]
    if spikes:
        data.update(spikes=int(net.spikes), spike_options=net.spike_options)
        lines.append(f"  {net.spikes:.3g} spikes ({net.spikes / len(tokens):.3g} per token), "
                     f"K = {net.spike_options['spike_steps']} micro-steps per round, seed {net.spike_options['seed']}")
    lines += ["  x active per layer: " + " ".join(f"{f:.1%}" for f in data["x_active_per_layer"]),
              "  y active per layer: " + " ".join(f"{f:.1%}" for f in data["y_active_per_layer"]),
              f"  wrote {', '.join(Path(f).name for f in files.values())} in {args.out}"]
    text = "\n".join(lines)
    print_result(args, data, text)
    return 0


DEMO_TOP_K = 64


def network_section(model, out_dir: Path, args) -> dict:
    """Demo section: the model as a graph stepped over the passage. Hub wiring (exact) with monitors and
    figures; then a top-64 pruned neuron network and its measured fidelity."""
    tokens = encode(text_from_args(args)).numpy()
    activity, sparsity, events = ActivityMonitor(), SparsityMonitor(), EventMonitor()
    traced = synapse_monitors(default_synapses(model, tokens))
    print(f"network: hub wiring (exact), stepping {len(tokens)} bytes beside the tensor model ...", file=sys.stderr)
    exact = validate(model, tokens, wiring="hub", dtype="float64", state_every=16, progress=True,
                     monitors=[activity, sparsity, events, *traced]).summary()
    print("network: figures and recordings ...", file=sys.stderr)
    files = save_run(out_dir / "network", tokens, activity, sparsity, traced, events, "hub network")
    print(f"network: neuron wiring pruned to the top {DEMO_TOP_K} inputs per neuron, synapses on its edges ...",
          file=sys.stderr)
    pruned = validate(model, tokens, wiring="neuron", prune=TopK(DEMO_TOP_K), synapses="wiring", dtype="float32",
                      state_every=0, progress=True).summary()
    summary = (f"graph network: hub wiring equals the tensor model to {exact['max_rel']:.1e} (max rel error of x, y, "
               f"v, rho, logits) over {len(tokens)} bytes; y active {sparsity.y.mean():.1%}, x {sparsity.x.mean():.1%}"
               f"; top-{DEMO_TOP_K} neuron network: KL {pruned['kl_mean']:.3g} nats, top-1 agreement "
               f"{pruned['top1_agreement']:.1%}; figures in {out_dir / 'network'}")
    return {"summary": summary, "exact": exact, "pruned": pruned, "files": files}


DEMO_SPIKE_STEPS, DEMO_SPIKE_BYTES = 16, 64


def spike_section(model, out_dir: Path, args) -> dict:
    """Demo section: the hub network in spike mode (K = 16, seed 0) over the first 64 bytes of the passage, beside
    the tensor model; a spike raster and population rates."""
    tokens = encode(text_from_args(args)).numpy()[:DEMO_SPIKE_BYTES]
    spikes = SpikeMonitor()
    print(f"spikes: hub wiring in spike mode, K = {DEMO_SPIKE_STEPS}, stepping {len(tokens)} bytes ...",
          file=sys.stderr)
    result = validate(model, tokens, wiring="hub", dtype="float64", state_every=0, progress=True, monitors=[spikes],
                      mode="spike", spike_steps=DEMO_SPIKE_STEPS, seed=0).summary()
    folder = out_dir / "spikes"
    folder.mkdir(parents=True, exist_ok=True)
    files = save_spikes(spikes, folder, f"hub network, spikes K = {DEMO_SPIKE_STEPS}")
    n_spikes = sum(len(spikes.spikes(layer, p)[0]) for layer in spikes.layers for p in spikes.populations)
    summary = (f"spiking network (hub wiring, K = {DEMO_SPIKE_STEPS} micro-steps per round): over {len(tokens)} "
               f"bytes KL to the tensor model {result['kl_mean']:.3g} nats, top-1 agreement "
               f"{result['top1_agreement']:.1%}; {n_spikes / len(tokens):.3g} x and y spikes per byte; "
               f"raster in {folder}")
    return {"summary": summary, "validation": result, "files": {k: str(v) for k, v in files.items()}}
