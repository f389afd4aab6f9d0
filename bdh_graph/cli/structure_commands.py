"""``bdh-graph analyze`` and ``bdh-graph export``: a checkpoint's neuron graphs, their structure, their files.

Parsing only: extraction, pruning from options, the analysis, the figures and the files are library functions
(``bdh_graph.graphs``, ``bdh_graph.structure``, ``bdh_graph.plots.structure``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..files import atomic_path
from ..graphs import (CIRCUITS, FORMATS, FORMS, PAPER_EDGES_PER_NEURON, WHICH, Strongest, Threshold, TopK,
                      entry_histogram, extract, write_graph)
from ..plots.structure import plot_structure
from ..structure.modularity import BACKENDS
from ..structure.report import analyze_structure
from .common import (add_json_flag, add_model_argument, checked, count, model_from_args, output_file, output_folder,
                     print_result)


def head_type(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


def graph_file(text: str) -> Path:
    """``export --out``: a file to write whose suffix names a graph format."""
    path = output_file(text)
    if path.suffix.lower() not in FORMATS:
        raise argparse.ArgumentTypeError(f"'{path}' has unknown format '{path.suffix}'; expected a suffix among "
                                         f"{', '.join(FORMATS)}")
    return path


def add_graph_arguments(parser: argparse.ArgumentParser, top_k: bool = False) -> None:
    parser.add_argument("--which", choices=WHICH, default="x", help="G_x = D_x E or G_y = D_y E")
    parser.add_argument("--form", choices=FORMS, default="analysis",
                        help="analysis: the paper's D E on the n neurons; exact: the network's wiring, centred as "
                             "LayerNorm centres, with one input neuron per token")
    parser.add_argument("--head", type=head_type, default=0, help="head index, or 'all' for the whole graph")
    prune = parser.add_mutually_exclusive_group()
    prune.add_argument("--beta", type=checked(float, Threshold), default=None, help="keep the edges with |G| >= beta")
    prune.add_argument("--edges", type=checked(int, Strongest), default=None, metavar="M",
                       help="keep the M strongest edges of each circuit (default, without another pruning option: "
                            f"the paper's density, {PAPER_EDGES_PER_NEURON:.3f} edges per postsynaptic neuron)")
    if top_k:
        prune.add_argument("--top-k", type=checked(int, TopK), default=None, metavar="K",
                           help="keep each neuron's K strongest inputs per circuit")


def graph_from_args(model, args: argparse.Namespace):
    """The ``Extraction`` the arguments ask for (``bdh_graph.graphs.extract``)."""
    return extract(model, args.which, args.form, args.head, beta=args.beta, top_k=getattr(args, "top_k", None),
                   edges=args.edges, circuit=args.circuit)


def register(sub) -> None:
    p = sub.add_parser("analyze", help="degrees, power-law fits and modularity (with null models) of a neuron graph")
    add_model_argument(p)
    add_graph_arguments(p)
    p.add_argument("--circuit", choices=CIRCUITS, default="excitatory", help="which circuit's edges to analyse")
    p.add_argument("--sweep-betas", type=checked(float, Threshold), nargs="+", default=[], metavar="BETA",
                   help="more thresholds for the modularity-against-edges curve (each above the graph's beta)")
    p.add_argument("--seeds", type=count(1), default=5, help="Louvain seeds; the best partition is kept")
    p.add_argument("--bootstrap", type=count(0), default=100,
                   help="synthetic sets for the power-law p-value, 0 for none")
    p.add_argument("--directed", action="store_true", help="directed modularity (default: symmetrised A + A^T)")
    p.add_argument("--weighted", action="store_true", help="weighted modularity (default: every edge counts 1)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="Louvain implementation (default: igraph when installed, else networkx)")
    p.add_argument("--seed", type=int, default=0, help="seed of the null models and the bootstrap")
    p.add_argument("--hubs", type=count(1), default=60, help="neurons in the hub drawing")
    p.add_argument("--out", type=output_folder, default="bdh-structure", help="folder for the figures and reports")
    add_json_flag(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("export", help="write a neuron graph as GraphML, GEXF, CSV edge list or .npz (scipy.sparse)")
    add_model_argument(p)
    add_graph_arguments(p, top_k=True)
    p.add_argument("--circuit", choices=CIRCUITS, default="both", help="which circuits to write")
    p.add_argument("--out", type=graph_file, required=True,
                   help=f"output file, format by suffix: {', '.join(FORMATS)}; X.npz is written as "
                        "X.excitatory.npz and X.inhibitory.npz, each read by scipy.sparse.load_npz")
    add_json_flag(p)
    p.set_defaults(func=cmd_export)


def _graph_name(args) -> str:
    head = "whole graph" if args.head is None else f"head {args.head}"
    return f"G_{args.which} ({args.form}, {head})"


def cmd_analyze(args) -> int:
    started = time.perf_counter()
    model = model_from_args(args)
    args.out.mkdir(parents=True, exist_ok=True)
    factors, prune, circuits = graph_from_args(model, args)
    extracted = time.perf_counter()
    beta = args.beta if args.beta is not None else float(circuits.circuit(args.circuit).data.min())
    analysis = analyze_structure(circuits, args.circuit, beta, args.sweep_betas, args.seeds, args.bootstrap,
                                 args.directed, args.weighted, seed=args.seed, backend=args.backend)
    name = _graph_name(args)
    counts, edges = entry_histogram(factors)
    figures = plot_structure(analysis, counts, edges, args.out, name, args.hubs)
    report = analysis.to_dict()
    report["graph"].update(checkpoint=str(args.checkpoint or "bundled"), prune=repr(prune),
                           beta_rule="--beta" if args.beta is not None else
                           f"the {prune.m} strongest edges per circuit (paper density unless --edges)")
    report["timings_s"].update(extraction=extracted - started, total=time.perf_counter() - started)
    report["figures"] = [str(f) for f in figures]
    with atomic_path(args.out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str))
    with atomic_path(args.out / "report.md") as tmp:
        tmp.write_text(analysis.markdown())
    g, mod = report["graph"], report["modularity"]
    lines = [f"{name}: n = {g['nodes']}, m = {g['edges']}, beta = {beta:.4g}"]
    for k in ("in", "out"):
        f = report["power_law"][k]
        lines.append(f"  {k}-degree: " + (f["error"] if "error" in f else
                     f"alpha = {f['alpha']:.2f}, x_min = {f['xmin']:.0f}; {f['verdict']}"))
    nulls = ", ".join(f"{k} {v['Q']:.3f}" for k, v in mod["nulls"].items())
    lines.append(f"  modularity Q = {mod['Q']:.3f} ({mod['n_communities']} communities); nulls: {nulls}")
    lines.append(f"  wrote {args.out / 'report.md'}, report.json and {len(figures)} figures")
    print_result(args, report, "\n".join(lines))
    return 0


def cmd_export(args) -> int:
    model = model_from_args(args)
    _, prune, circuits = graph_from_args(model, args)
    files = write_graph(circuits, args.out, args.circuit)
    result = {"files": [str(f) for f in files], "shape": list(circuits.shape), "prune": repr(prune),
              "circuit": args.circuit, "excitatory_edges": circuits.n_excitatory,
              "inhibitory_edges": circuits.n_inhibitory}
    print_result(args, result, f"wrote {', '.join(map(str, files))}: {_graph_name(args)}, {circuits.shape[0]} x "
                               f"{circuits.shape[1]}, {circuits.n_excitatory} excitatory + {circuits.n_inhibitory} "
                               "inhibitory edges")
    return 0

