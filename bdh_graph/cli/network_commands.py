"""``bdh-graph validate`` and ``bdh-graph step``: the graph network against the tensor model, and a recorded run."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MissingExtraError
from ..graphs import Threshold, TopK, prune_from_options
from ..graphs.scale import check_network_pruning
from ..interop import require
from ..interop.clock import DEFAULT_TOKEN_MS, Clock
from ..interop.nwb import write_nwb
from ..interop.sonata import monitor_spikes, write_spikes
from ..kernels import get_backend
from ..network import build_network
from ..network.address import DEFAULT_TRACED, SYNTAX, default_synapses, parse_synapse, synapse_monitors
from ..network.monitors import ActivityMonitor, EventMonitor, SparsityMonitor, SpikeMonitor
from ..network.recordings import RunRecording
from ..network.spikes import check_spike_options
from ..network.validation import validate
from ..plots.network import plot_run
from ..plots.spikes import plot_spike_run
from ..text import encode
from .common import (DOCS, add_backend_arguments, add_json_flag, add_model_argument, add_text_argument, checked,
                     count, model_from_args, output_folder, positive_number, print_result, say, text_from_args)


def rate_scale_type(text: str):
    """``--rate-scale``: ``max``, a number > 0, or ``population=value,...`` (values ``max`` or numbers > 0); the
    population names are checked against the wiring once it is known (``network_options``)."""
    def value(v: str):
        if v == "max":
            return v
        try:
            number = float(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"values must be 'max' or numbers, got {v!r}") from None
        if not number > 0 or number == float("inf"):
            raise argparse.ArgumentTypeError(f"a rate scale must be 'max' or a finite number > 0, got {v!r}")
        return number
    if "=" not in text:
        return value(text)
    pairs = [item.split("=", 1) for item in text.split(",")]
    if any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise argparse.ArgumentTypeError(f"expected 'max', a number or 'population=value,...', got {text!r}")
    return {k.strip(): value(v.strip()) for k, v in pairs}


def add_network_arguments(p: argparse.ArgumentParser, spike: bool = True) -> None:
    """The options that build a network; ``spike=False`` leaves out spike mode (commands that run rates only)."""
    p.add_argument("--wiring", choices=("neuron", "hub"), default="neuron",
                   help="neuron: n+V neurons wired by the graphs G_x, G_y, a synapse sigma per pair; hub: the n "
                        f"neurons and d hubs, exact at any size; see {DOCS}")
    prune = p.add_mutually_exclusive_group()
    prune.add_argument("--top-k", type=checked(int, TopK), default=None, metavar="K",
                       help="neuron wiring: keep the K strongest inputs per neuron and circuit (an approximation; "
                            "default: every edge, exact)")
    prune.add_argument("--beta", type=checked(float, Threshold), default=None,
                       help="neuron wiring: keep the edges with |G| >= BETA (an approximation). Its scale is the "
                            "model's: 'bdh-graph info' lists the largest |G| of G_x and G_y (a larger BETA keeps no "
                            "edge and is refused) and the BETA at the paper's edge density")
    p.add_argument("--synapses", choices=("all", "wiring"), default="all",
                   help="neuron wiring: sigma on every pair, or only where G_x has an edge")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="floating-point precision")
    add_backend_arguments(p)
    if not spike:
        return
    p.add_argument("--mode", choices=("rate", "spike"), default="rate",
                   help="rate: messages carry rates (exact); spike: Bernoulli spikes over --spike-steps micro-steps")
    p.add_argument("--spike-steps", type=count(1), default=16, metavar="K", help="spike mode: micro-steps per round")
    p.add_argument("--seed", type=count(0), default=0, help="spike mode: seed of the spikes")
    p.add_argument("--rate-scale", type=rate_scale_type, default="max", metavar="S",
                   help="spike mode: the rate that fires at every micro-step: 'max' (per round, the population's "
                        "largest), a number, or per population, e.g. 'x=4,y=2,w=max'")


def network_options(args) -> dict:
    """``build_network``'s options from the arguments, refusing (naming the flag) what the wiring cannot take."""
    if args.wiring == "hub" and (args.top_k is not None or args.beta is not None or args.synapses != "all"):
        raise ValueError("--top-k, --beta and --synapses wiring prune the neuron wiring; the hub wiring is exact "
                         "(drop them, or use --wiring neuron)")
    options = dict(wiring=args.wiring, prune=prune_from_options(beta=args.beta, top_k=args.top_k),
                   synapses=args.synapses, dtype=args.dtype, backend=get_backend(args.backend, args.device).name,
                   device=args.device,
                   mode=getattr(args, "mode", "rate"))
    if options["mode"] == "spike":
        try:
            check_spike_options("spike", args.spike_steps, args.seed, args.rate_scale, args.wiring)
        except ValueError as err:
            raise ValueError(f"--rate-scale: {err}") from None
        options.update(spike_steps=args.spike_steps, seed=args.seed, rate_scale=args.rate_scale)
    return options


def register(sub) -> None:
    v = sub.add_parser("validate", help="step the graph network and the tensor model side by side; report errors")
    add_model_argument(v)
    add_text_argument(v)
    add_network_arguments(v)
    v.add_argument("--state-every", type=count(0), default=16,
                   help="compare the synaptic state after every this many tokens and the last (0: never)")
    add_json_flag(v)
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("step", help="step the graph network over a text; write raster, sparsity, synapse traces "
                                    "and the recordings")
    add_model_argument(s)
    add_text_argument(s)
    add_network_arguments(s)
    s.add_argument("--out", type=output_folder, required=True,
                   help="folder for the figures, recordings.npz and recording.nwb (and spikes.npz, spikes.h5 in "
                        "spike mode)")
    s.add_argument("--token-ms", type=positive_number, default=DEFAULT_TOKEN_MS, metavar="MS",
                   help="the clock: milliseconds per token, split evenly into the micro-steps; the time axes of the "
                        "figures, recording.nwb and spikes.h5 use it")
    s.add_argument("--synapse", action="append", default=None, metavar="ADDRESS",
                   help=f"trace this synapse; repeatable. ADDRESS: {SYNTAX}. Default: {DEFAULT_TRACED} synapses "
                        "from the input neuron of the text's commonest byte onto the x-neurons of head 0 it "
                        "excites most, last layer")
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
    return "\n".join([*lines, *fidelity_lines(s)])


# What the fidelity numbers of a validation mean (validate and the demo print them under the numbers).
FIDELITY_MEANING = ("KL: nats per byte lost when the graph's next-byte distribution stands in for the tensor "
                    "model's (0: the same distribution)",
                    "top-1: share of bytes on which both predict the same most likely next byte")


def fidelity_lines(s: dict) -> list[str]:
    """What the KL and top-1 numbers of a validation summary ``s`` mean, and what an exact network gives."""
    approximations = [f"pruned by {s['prune']}"] if s["prune"] != "None" else []
    approximations += [f"spikes, K = {s['spike_steps']}"] if s.get("mode") == "spike" else []
    verdict = (f"this network is an approximation ({', '.join(approximations)}); the exact one (hub wiring, or "
               "neuron wiring unpruned, in rates) gives KL ~1e-15 (float64 round-off) and top-1 100%"
               if approximations else "this network is exact: KL and errors are round-off, top-1 should be 100%")
    return [f"    {line}" for line in (*FIDELITY_MEANING, verdict)]


def cmd_validate(args) -> int:
    model = model_from_args(args)
    options = network_options(args)
    check_network_pruning(model, options["prune"], "--beta")  # an empty graph is refused before it is built
    result = validate(model, text_from_args(args), state_every=args.state_every, progress=True, **options)
    summary = result.summary()
    print_result(args, summary, format_summary(summary))
    return 0


def cmd_step(args) -> int:
    model = model_from_args(args)
    tokens = encode(text_from_args(args)).numpy()
    options = network_options(args)
    check_network_pruning(model, options["prune"], "--beta")  # an empty graph is refused before it is built
    # a spiking hub network stores rho, not sigma: nothing to trace by default, and a named synapse is refused
    untraceable = args.mode == "spike" and args.wiring == "hub"
    if args.synapse and untraceable:
        raise ValueError("--synapse: a spiking hub network stores rho, not the synapses sigma, so none can be "
                         "traced; use --wiring neuron")
    synapses = ([parse_synapse(text, model.config, name="--synapse") for text in args.synapse] if args.synapse
                else [] if untraceable else default_synapses(model, tokens))
    clock = Clock(args.token_ms)
    try:  # the NWB and SONATA files need the optional extra; without it the run writes everything else
        require("h5py", "pynwb", purpose="recording.nwb and spikes.h5")
        interop = True
    except MissingExtraError as err:
        say(f"note: {err}; the other files are written")
        interop = False
    say(f"building the {args.wiring} network ...")
    net = build_network(model, progress=True, **options)
    activity, sparsity, events = ActivityMonitor(), SparsityMonitor(), EventMonitor()
    spikes = SpikeMonitor() if net.mode == "spike" else None
    traced = synapse_monitors(synapses, model.config)
    net.run(tokens, monitors=[activity, sparsity, events, *traced, *([spikes] if spikes else [])], progress=True)
    run = {"wiring": net.wiring, "backend": net.backend.name, "mode": net.mode, "dtype": str(net.dtype),
           "prune": net.description["prune"], "spike_options": net.spike_options, "token_ms": clock.token_ms}
    if model.config.damping:  # the synapses of head h decay with time constant tau_h tokens
        run["time_constants"] = net.time_constants().tolist()
    recording = RunRecording.from_monitors(model.config, tokens, activity, sparsity, events, traced, run)
    args.out.mkdir(parents=True, exist_ok=True)
    title = (f"{net.wiring} network" + (f", spikes K = {net.spike_options['spike_steps']}" if spikes else "")
             + (f", pruned by {run['prune']} (an approximation)" if run["prune"] != "None" else ""))
    files = {**plot_run(recording, args.out, title, clock), "recordings": recording.save(args.out / "recordings.npz")}
    if spikes:
        files.update(plot_spike_run(spikes, args.out, title, clock), spikes=spikes.save(args.out / "spikes.npz"))
    if interop:
        files["nwb"] = write_nwb(args.out / "recording.nwb", recording, spikes, clock)
        if spikes:
            files["sonata_spikes"] = write_spikes(args.out / "spikes.h5", monitor_spikes(spikes, clock))
    addresses = [s.address(model.config) for s in recording.synapses]
    data = {"tokens": len(tokens), **run, "events": int(net.events),
            "x_active_per_layer": sparsity.x.mean(0).tolist(), "y_active_per_layer": sparsity.y.mean(0).tolist(),
            "synapses": [{"address": a, **s.to_dict()} for a, s in zip(addresses, recording.synapses)],
            "files": {k: str(v) for k, v in files.items()}}
    lines = [f"stepped {len(tokens)} tokens through the {net.wiring} network ({net.backend.name}, {net.mode} mode): "
             f"{net.events:.3g} synaptic events ({net.events / len(tokens):.3g} per token)"]
    if spikes:
        data["spikes"] = int(net.spikes)
        lines.append(f"  {net.spikes:.3g} spikes ({net.spikes / len(tokens):.3g} per token), "
                     f"K = {net.spike_options['spike_steps']} micro-steps per round, seed {net.spike_options['seed']}")
    lines += ["  x active per layer: " + " ".join(f"{f:.1%}" for f in data["x_active_per_layer"]),
              "  y active per layer: " + " ".join(f"{f:.1%}" for f in data["y_active_per_layer"])]
    if addresses:
        lines.append("  traced synapses (LAYER:PRE:POST): " + ", ".join(addresses))
    lines.append(f"  wrote {', '.join(Path(f).name for f in files.values())} in {args.out}")
    print_result(args, data, "\n".join(lines))
    return 0
