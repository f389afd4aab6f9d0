"""``bdh-graph demo``: the main job on the bundled defaults.

It opens with the long-text result: bits per byte by position over the held-out tail of the default corpus, read
from a zero synaptic state (does the working memory hold over 4 KB of text?). Then the recurrent form reads a
held-out passage and predicts its next bytes, and every section of ``DEMO_SECTIONS`` (graphs, network, spikes, memory,
synapses) runs on the same model and passage and writes its figures into the output folder. Each section is
announced on stderr, with the files it will write, before it runs, and its result is printed right after it.
The whole run is also one page, ``index.html`` (``demo_page``), with every number in ``results.json``. The
computations are library functions; this module only chooses them and words the report.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..files import atomic_path
from ..graphs import TopK
from ..interpretability.monosemantic import PAPER_SENTENCES, find_concept_synapses
from ..model.evaluation import bits_per_byte_by_position, byte_frequency_bits, next_byte_report, position_verdict
from ..experiments.memory import memory_experiments
from ..network.address import default_synapses, synapse_monitors
from ..network.monitors import ActivityMonitor, EventMonitor, SparsityMonitor, SpikeMonitor
from ..network.recordings import RunRecording
from ..network.validation import validate
from ..plots.memory import plot_bits_by_position, plot_horizon
from ..plots.network import plot_run
from ..plots.spikes import plot_spike_run
from ..plots.structure import degree_figure
from ..plots.synapses import plot_concept_synapse, plot_concept_synapse_test
from ..text import default_documents, encode, split_documents_held_out
from ..text.concepts import matched_sentences
from .common import (add_device_argument, add_json_flag, add_model_argument, add_text_argument, count,
                     model_from_args, output_folder, print_result, say, text_from_args)
from .demo_page import Part, figures_of, write_page
from .network_commands import FIDELITY_MEANING
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


def long_text_section(model, out: Path) -> dict:
    """Bits per byte by position over the held-out tail of the default corpus, with the figure."""
    documents, held_out = split_documents_held_out(default_documents())
    result = bits_per_byte_by_position(model, held_out)
    frequencies = byte_frequency_bits(torch.cat(documents), held_out)
    figure = plot_bits_by_position(result, out / "long_text.png", frequencies,
                                   "held-out tail of the default corpus; tensor model, carried state")
    table = "  ".join(f"[{lo}, {hi}) {b:.3f}" for lo, hi, b in
                      zip(result["edges"][:-1], result["edges"][1:], result["bits_per_byte"]))
    verdict = position_verdict(result)
    return {**result, "byte_frequencies": frequencies, "verdict": verdict, "figure": str(figure),
            "summary": f"long text: bits per byte by position over the held-out tail ({result['segments']} x "
                       f"{result['edges'][-1]} bytes, each from a zero synaptic state): {table}\n"
                       f"  {verdict}; byte frequencies alone: {frequencies:.3f}; figure {figure}"}


def degree_section(model, tokens: np.ndarray, out: Path, device: str) -> dict:
    result = degree_figure(model, out / "degrees.png")
    alpha = {k: round(a, 3) for k, a in result["alpha"].items()}
    return {**result, "figure": str(result["figure"]),
            "summary": f"degree figure of G_x head 0 ({result['edges']} edges, power-law alpha {alpha}): "
                       f"{result['figure']}"}


def network_section(model, tokens: np.ndarray, out: Path, device: str) -> dict:
    activity, sparsity, events = ActivityMonitor(), SparsityMonitor(), EventMonitor()
    traced = synapse_monitors(default_synapses(model, tokens), model.config)
    exact = validate(model, tokens, wiring="hub", dtype="float64", device=device, state_every=16, progress=True,
                     monitors=[activity, sparsity, events, *traced]).summary()
    recording = RunRecording.from_monitors(model.config, tokens, activity, sparsity, events, traced,
                                           {"wiring": "hub", "dtype": "float64", "mode": "rate"})
    folder = out / "network"
    folder.mkdir(parents=True, exist_ok=True)
    files = {**plot_run(recording, folder, "hub network"), "recordings": recording.save(folder / "recordings.npz")}
    say(f"      and the neuron wiring pruned to the top {DEMO_TOP_K} inputs per neuron, synapses on its edges ...")
    pruned = validate(model, tokens, wiring="neuron", prune=TopK(DEMO_TOP_K), synapses="wiring", dtype="float32",
                      device=device, state_every=0, progress=True).summary()
    summary = "\n".join([
        f"graph network: hub wiring equals the tensor model to {exact['max_rel']:.1e} (max rel error of x, y, v, rho, "
        f"logits) over {len(tokens)} bytes; y active {sparsity.y.mean():.1%}, x {sparsity.x.mean():.1%}; figures in "
        f"{folder}",
        f"  pruned to each neuron's {DEMO_TOP_K} strongest inputs per circuit (neuron wiring, an approximation): KL "
        f"{pruned['kl_mean']:.3g} nats per byte (exact hub wiring: {exact['kl_mean']:.1g}), top-1 agreement "
        f"{pruned['top1_agreement']:.1%} (exact: {exact['top1_agreement']:.0%})",
        *(f"    {line}" for line in FIDELITY_MEANING)])
    return {"summary": summary, "exact": exact, "pruned": pruned, "x_active": float(sparsity.x.mean()),
            "y_active": float(sparsity.y.mean()), "files": {k: str(v) for k, v in files.items()}}


def spike_section(model, tokens: np.ndarray, out: Path, device: str) -> dict:
    tokens = tokens[:DEMO_SPIKE_BYTES]
    spikes = SpikeMonitor()
    result = validate(model, tokens, wiring="hub", dtype="float64", device=device, state_every=0, progress=True,
                      monitors=[spikes], mode="spike", spike_steps=DEMO_SPIKE_STEPS, seed=0).summary()
    folder = out / "spikes"
    folder.mkdir(parents=True, exist_ok=True)
    files = {**plot_spike_run(spikes, folder, f"hub network, spikes K = {DEMO_SPIKE_STEPS}"),
             "spikes": spikes.save(folder / "spikes.npz")}
    n_spikes = sum(len(spikes.spikes(layer, p)[0]) for layer in spikes.layers for p in spikes.populations)
    summary = (f"spiking network (hub wiring, K = {DEMO_SPIKE_STEPS} micro-steps per round, an approximation): over "
               f"{len(tokens)} bytes KL to the tensor model {result['kl_mean']:.3g} nats per byte, top-1 agreement "
               f"{result['top1_agreement']:.1%} (the exact rate network: KL ~0, 100%); "
               f"{n_spikes / len(tokens):.3g} x and y spikes per byte; raster in {folder}")
    return {"summary": summary, "validation": result, "spikes_per_byte": n_spikes / len(tokens),
            "files": {k: str(v) for k, v in files.items()}}


def memory_section(model, tokens: np.ndarray, out: Path, device: str) -> dict:
    """The memory horizon on the passage (hub network, forgetting ladder, no lesions), with its figure."""
    result = memory_experiments(model, tokens, layers=[], heads=[], strongest=[], repeat_bytes=2, tensor=False,
                                device=device, progress=True)
    figure = plot_horizon(result, out / "memory_horizon.png")
    return {"bits_per_byte": result.full.bits_per_byte, "no_memory": result.no_memory.bits_per_byte,
            "horizon": [{"time_constant": r.spec["time_constant"], "bits_per_byte": r.bits_per_byte}
                        for r in result.horizon],
            "figure": str(figure), "summary": f"memory horizon: {result.horizon_verdict()}; figure {figure}"}


def synapse_section(model, tokens: np.ndarray, out: Path, device: str) -> dict:
    concept, contrast = matched_sentences(DEFAULT_CONCEPT, PAPER_SENTENCES, seed=0)
    found = find_concept_synapses(model, concept, contrast, progress=True)
    figures = ([str(plot_concept_synapse(model, found, out / "concept_synapse.png", DEFAULT_CONCEPT)),
                str(plot_concept_synapse_test(found, model.config, out / "concept_synapse_test.png", DEFAULT_CONCEPT))]
               if found.synapses else [])
    return {**found.to_dict(), "tested": len(found.synapses), "figures": figures,
            "summary": f"concept synapses ({DEFAULT_CONCEPT}): {found.summary(model.config)}"
                       + (f"; figures {', '.join(figures)}" if figures else "")}


@dataclass(frozen=True)
class Section:
    """A part of the demo: ``run(model, tokens, out, device) -> dict`` (with a ``summary`` line; its networks run
    on ``device``, torch there unless it is the CPU), announced beforehand with ``doing`` (``{out}`` is the output
    folder)."""

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
    Section("memory", "memory: the hub network reads the passage forgetting with time constant tau (sigma <- "
                      "exp(-1/tau) sigma), a ladder of tau; writes {out}/memory_horizon.png "
                      "(`bdh-graph memory` runs every experiment)", memory_section),
    Section("synapses", f"synapses: the {DEFAULT_CONCEPT} synapses, found on {PAPER_SENTENCES // 2} + "
                        f"{PAPER_SENTENCES // 2} sentences, tested on as many held out; writes "
                        "{out}/concept_synapse.png (held-out sentences, each from a zero state) and "
                        "{out}/concept_synapse_test.png (the test)", synapse_section),
]


def recurrent_section(model, tokens, predictions: int) -> dict:
    """Bits per byte of the recurrent form over the passage, and its next-byte predictions."""
    report = next_byte_report(model, tokens, predictions)
    lines = [f"recurrent form over {report['tokens']} bytes: {report['bits_per_byte']:.3f} bits per byte"]
    for p in report["predictions"]:
        guesses = "  ".join(f"{c!r} {q:.2f}" for c, q in p["top3"])
        lines.append(f"  ...{p['context']!r} -> next {p['actual']!r}; model: {guesses}")
    return {**report, "summary": "\n".join(lines)}


def cmd_demo(args) -> int:
    steps = len(DEMO_SECTIONS) + 2
    model = model_from_args(args)
    tokens = encode(text_from_args(args))
    args.out.mkdir(parents=True, exist_ok=True)
    parts = []

    def run_part(name: str, doing: str, run: Callable[[], dict]) -> dict:
        """Announce a part, run it, and print its result right after the announcement (on stderr with --json,
        where stdout holds the JSON)."""
        say(f"[{len(parts) + 1}/{steps}] {doing} ...")
        result = run()
        print(result["summary"], file=sys.stderr if args.json else sys.stdout, flush=True)
        parts.append(Part(name, doing, result["summary"], figures_of(result)))
        return result

    long_text = run_part("long_text", "long text: the tensor model reads the held-out tail of the default corpus in "
                                      "4096-byte segments, each from a zero synaptic state; writes "
                                      f"{args.out}/long_text.png", lambda: long_text_section(model, args.out))
    report = {**run_part("recurrent", f"the recurrent form reads {len(tokens)} bytes and predicts the next byte "
                                      "(writes nothing)", lambda: recurrent_section(model, tokens, args.predictions)),
              "long_text": long_text}
    for section in DEMO_SECTIONS:
        report[section.name] = run_part(section.name, section.doing.format(out=args.out),
                                        lambda: section.run(model, tokens.numpy(), args.out, args.device))
    with atomic_path(args.out / "results.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str))
    say(f"the demo as one page: {write_page(args.out, 'bdh-graph demo', parts)} (every number in results.json)")
    if args.json:
        print_result(args, report, "")
    return 0
