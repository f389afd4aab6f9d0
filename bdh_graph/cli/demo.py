"""``bdh-graph demo``: the main job on the bundled defaults.

The recurrent form reads a held-out passage of the default corpus and predicts its next bytes; then every
section of ``DEMO_SECTIONS`` (graphs, network, spikes, synapses) runs on the same model and passage and writes
its figures into the output folder. Each section is announced on stderr, with the files it will write, before it
runs. The computations are library functions; this module only chooses them and words the report.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..graphs import TopK
from ..interpretability.monosemantic import PAPER_SENTENCES, find_concept_synapses
from ..model.evaluation import next_byte_report
from ..network.address import default_synapses, synapse_monitors
from ..network.monitors import ActivityMonitor, EventMonitor, SparsityMonitor, SpikeMonitor
from ..network.recordings import RunRecording
from ..network.validation import validate
from ..plots.network import plot_run
from ..plots.spikes import plot_spike_run
from ..plots.structure import degree_figure
from ..plots.synapses import plot_concept_synapse
from ..text import encode
from ..text.concepts import matched_sentences
from .common import (add_device_argument, add_json_flag, add_model_argument, add_text_argument, count,
                     model_from_args, output_folder, print_result, say, text_from_args)
from .synapse_commands import DEFAULT_CONCEPT

DEMO_TOP_K = 64  # inputs per neuron kept by the demo's pruned network
DEMO_SPIKE_STEPS, DEMO_SPIKE_BYTES = 16, 64  # the spiking run: K micro-steps per round, over the first bytes


def register(sub) -> None:
    p = sub.add_parser("demo", help="the main job: step the bundled model over a passage and write the figures")
    add_model_argument(p)
    add_text_argument(p)
    p.add_argument("--out", type=output_folder, default="bdh-demo", help="folder for the figures and recordings")
    p.add_argument("--predictions", type=count(0), default=5, help="next-byte predictions to print")
    add_device_argument(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_demo)


def degree_section(model, tokens: np.ndarray, out: Path) -> dict:
    result = degree_figure(model, out / "degrees.png")
    alpha = {k: round(a, 3) for k, a in result["alpha"].items()}
    return {**result, "figure": str(result["figure"]),
            "summary": f"degree figure of G_x head 0 ({result['edges']} edges, power-law alpha {alpha}): "
                       f"{result['figure']}"}


def network_section(model, tokens: np.ndarray, out: Path) -> dict:
    activity, sparsity, events = ActivityMonitor(), SparsityMonitor(), EventMonitor()
    traced = synapse_monitors(default_synapses(model, tokens), model.config)
    exact = validate(model, tokens, wiring="hub", dtype="float64", state_every=16, progress=True,
                     monitors=[activity, sparsity, events, *traced]).summary()
    recording = RunRecording.from_monitors(model.config, tokens, activity, sparsity, events, traced,
                                           {"wiring": "hub", "dtype": "float64", "mode": "rate"})
    folder = out / "network"
    folder.mkdir(parents=True, exist_ok=True)
    files = {**plot_run(recording, folder, "hub network"), "recordings": recording.save(folder / "recordings.npz")}
    say(f"      and the neuron wiring pruned to the top {DEMO_TOP_K} inputs per neuron, synapses on its edges ...")
    pruned = validate(model, tokens, wiring="neuron", prune=TopK(DEMO_TOP_K), synapses="wiring", dtype="float32",
                      state_every=0, progress=True).summary()
    summary = (f"graph network: hub wiring equals the tensor model to {exact['max_rel']:.1e} (max rel error of x, y, "
               f"v, rho, logits) over {len(tokens)} bytes; y active {sparsity.y.mean():.1%}, x {sparsity.x.mean():.1%}"
               f"; top-{DEMO_TOP_K} neuron network: KL {pruned['kl_mean']:.3g} nats, top-1 agreement "
               f"{pruned['top1_agreement']:.1%}; figures in {folder}")
    return {"summary": summary, "exact": exact, "pruned": pruned, "files": {k: str(v) for k, v in files.items()}}


def spike_section(model, tokens: np.ndarray, out: Path) -> dict:
    tokens = tokens[:DEMO_SPIKE_BYTES]
    spikes = SpikeMonitor()
    result = validate(model, tokens, wiring="hub", dtype="float64", state_every=0, progress=True, monitors=[spikes],
                      mode="spike", spike_steps=DEMO_SPIKE_STEPS, seed=0).summary()
    folder = out / "spikes"
    folder.mkdir(parents=True, exist_ok=True)
    files = {**plot_spike_run(spikes, folder, f"hub network, spikes K = {DEMO_SPIKE_STEPS}"),
             "spikes": spikes.save(folder / "spikes.npz")}
    n_spikes = sum(len(spikes.spikes(layer, p)[0]) for layer in spikes.layers for p in spikes.populations)
    summary = (f"spiking network (hub wiring, K = {DEMO_SPIKE_STEPS} micro-steps per round): over {len(tokens)} "
               f"bytes KL to the tensor model {result['kl_mean']:.3g} nats, top-1 agreement "
               f"{result['top1_agreement']:.1%}; {n_spikes / len(tokens):.3g} x and y spikes per byte; "
               f"raster in {folder}")
    return {"summary": summary, "validation": result, "files": {k: str(v) for k, v in files.items()}}


def synapse_section(model, tokens: np.ndarray, out: Path) -> dict:
    concept, contrast = matched_sentences(DEFAULT_CONCEPT, PAPER_SENTENCES, seed=0)
    found = find_concept_synapses(model, concept, contrast)
    figure = (str(plot_concept_synapse(model, found, out / "concept_synapse.png", DEFAULT_CONCEPT))
              if found.synapses else None)
    return {**found.to_dict(), "figure": figure,
            "summary": f"concept synapses ({DEFAULT_CONCEPT}): {found.summary(model.config)}"
                       + (f"; figure {figure}" if figure else "")}


@dataclass(frozen=True)
class Section:
    """A part of the demo: ``run(model, tokens, out) -> dict`` (with a ``summary`` line), announced beforehand
    with ``doing`` (``{out}`` is the output folder)."""

    name: str
    doing: str
    run: Callable[..., dict]


DEMO_SECTIONS = [
    Section("graphs", "graphs: degrees of G_x head 0 at the paper's edge density, power-law fits; writes "
                      "{out}/degrees.png", degree_section),
    Section("network", "network: the hub wiring stepped beside the tensor model (exact), with monitors; writes "
                       "{out}/network/ (raster, sparsity and synapse figures, recordings.npz)", network_section),
    Section("spikes", f"spikes: the hub wiring in spike mode, K = {DEMO_SPIKE_STEPS}, over the first "
                      f"{DEMO_SPIKE_BYTES} bytes; writes {{out}}/spikes/ (spike raster, population rates, spikes.npz)",
            spike_section),
    Section("synapses", f"synapses: the {DEFAULT_CONCEPT} synapses, found on {PAPER_SENTENCES // 2} + "
                        f"{PAPER_SENTENCES // 2} sentences, tested on as many held out; writes "
                        "{out}/concept_synapse.png", synapse_section),
]


def cmd_demo(args) -> int:
    steps = len(DEMO_SECTIONS) + 1
    model = model_from_args(args)
    tokens = encode(text_from_args(args))
    say(f"[1/{steps}] the recurrent form reads {len(tokens)} bytes and predicts the next byte (writes nothing) ...")
    report = next_byte_report(model, tokens, args.predictions)
    lines = [f"recurrent form over {report['tokens']} bytes: {report['bits_per_byte']:.3f} bits per byte"]
    for p in report["predictions"]:
        guesses = "  ".join(f"{c!r} {q:.2f}" for c, q in p["top3"])
        lines.append(f"  ...{p['context']!r} -> next {p['actual']!r}; model: {guesses}")
    args.out.mkdir(parents=True, exist_ok=True)
    for k, section in enumerate(DEMO_SECTIONS, start=2):
        say(f"[{k}/{steps}] {section.doing.format(out=args.out)} ...")
        result = section.run(model, tokens.numpy(), args.out)
        report[section.name] = result
        lines.append(result["summary"])
    print_result(args, report, "\n".join(lines))
    return 0
