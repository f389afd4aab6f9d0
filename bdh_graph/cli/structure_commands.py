"""``bdh-graph analyze`` and ``bdh-graph export``: a checkpoint's neuron graphs, their structure, their files."""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from ..graphs.export import FORMATS, write_graph
from ..files import atomic_path
from ..graphs import CIRCUITS, FORMS, WHICH, Strongest, Threshold, TopK, entry_histogram, graph_factors, product_graph
from ..plots.structure import plot_degrees, plot_structure
from ..structure.modularity import BACKENDS
from ..structure.report import analyze_structure, degree_fits
from .common import add_json_flag, add_model_argument, model_from_args, print_result

# The paper's head block at beta = 1.2: 46,820 edges on 8,192 neurons (SPEC.md 4). Without --beta a graph keeps
# this many strongest edges per postsynaptic neuron, so models of any scale are compared at the paper's density.
PAPER_EDGES_PER_NEURON = 46820 / 8192


def head_type(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"head must be an integer or 'all', got {text!r}") from None


def add_graph_arguments(parser: argparse.ArgumentParser, top_k: bool = False) -> None:
    parser.add_argument("--which", choices=WHICH, default="x", help="G_x = D_x E or G_y = D_y E")
    parser.add_argument("--form", choices=FORMS, default="analysis",
                        help="analysis: the paper's n x n D E; exact: centred, with input neurons (SPEC 3.1)")
    parser.add_argument("--head", type=head_type, default=0, help="head index, or 'all' for the whole graph")
    prune = parser.add_mutually_exclusive_group()
    prune.add_argument("--beta", type=float, default=None, help="keep edges with |G| >= beta")
    prune.add_argument("--edges", type=int, default=None,
                       help=f"keep the M strongest edges of each circuit (default without --beta: the paper's "
                            f"density, {PAPER_EDGES_PER_NEURON:.3f} per neuron)")
    if top_k:
        prune.add_argument("--top-k", type=int, default=None, help="keep each neuron's k strongest inputs per circuit")


def prune_from_args(args: argparse.Namespace, n_post: int):
    if args.beta is not None:
        return Threshold(args.beta)
    if getattr(args, "top_k", None) is not None:
        return TopK(args.top_k)
    return Strongest(args.edges if args.edges is not None else max(1, round(PAPER_EDGES_PER_NEURON * n_post)))


def extract(model, args: argparse.Namespace):
    """The graph factors and the pruned circuits the arguments ask for; refuses a circuit left without edges."""
    factors = graph_factors(model, args.which, args.form, args.head)
    prune = prune_from_args(args, factors.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty graph is reported below as an error with the same facts
        circuits = product_graph(factors, prune)
    circuit = getattr(args, "circuit", "both")
    if circuits.circuit(circuit).nnz == 0:
        largest = circuits.meta.get("largest_abs_weight", float("nan"))
        raise ValueError(f"no {circuit} edge is left by {prune!r} (the largest |G| is {largest:.4g}); "
                         "choose a smaller --beta")
    return factors, prune, circuits


def register(sub) -> None:
    p = sub.add_parser("analyze", help="degrees, power-law fits and modularity (with null models) of a neuron graph",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_argument(p)
    add_graph_arguments(p)
    p.add_argument("--circuit", choices=CIRCUITS, default="excitatory", help="which circuit's edges to analyse")
    p.add_argument("--sweep-betas", type=float, nargs="+", default=[],
                   help="more thresholds for the modularity-against-edges curve (each above the graph's beta)")
    p.add_argument("--seeds", type=int, default=5, help="Louvain seeds; the best partition is kept")
    p.add_argument("--bootstrap", type=int, default=100, help="synthetic sets for the power-law p-value (0: none)")
    p.add_argument("--directed", action="store_true", help="directed modularity (default: symmetrised A + A^T)")
    p.add_argument("--weighted", action="store_true", help="weighted modularity (default: every edge counts 1)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="Louvain implementation (default: igraph when installed, else networkx)")
    p.add_argument("--seed", type=int, default=0, help="seed of the null models and the bootstrap")
    p.add_argument("--hubs", type=int, default=60, help="neurons in the hub drawing")
    p.add_argument("--out", type=Path, default=Path("bdh-structure"), help="folder for the figures and reports")
    add_json_flag(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("export", help="write a neuron graph as GraphML, GEXF, CSV edge list or .npz",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model_argument(p)
    add_graph_arguments(p, top_k=True)
    p.add_argument("--circuit", choices=CIRCUITS, default="both", help="which circuits to write")
    p.add_argument("--out", type=Path, required=True, help=f"output file, format by suffix: {', '.join(FORMATS)}")
    add_json_flag(p)
    p.set_defaults(func=cmd_export)


def _graph_name(args) -> str:
    head = "whole graph" if args.head is None else f"head {args.head}"
    return f"G_{args.which} ({args.form}, {head})"


def cmd_analyze(args) -> int:
    started = time.perf_counter()
    model = model_from_args(args)
    args.out.mkdir(parents=True, exist_ok=True)
    factors, prune, circuits = extract(model, args)
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
    if Path(args.out).suffix.lower() not in FORMATS:
        raise ValueError(f"--out '{args.out}': unknown format, expected a suffix among {', '.join(FORMATS)}")
    model = model_from_args(args)
    _, prune, circuits = extract(model, args)
    path = write_graph(circuits, args.out, args.circuit)
    result = {"file": str(path), "shape": list(circuits.shape), "prune": repr(prune), "circuit": args.circuit,
              "excitatory_edges": circuits.n_excitatory, "inhibitory_edges": circuits.n_inhibitory}
    print_result(args, result, f"wrote {path}: {_graph_name(args)}, {circuits.shape[0]} x {circuits.shape[1]}, "
                               f"{circuits.n_excitatory} excitatory + {circuits.n_inhibitory} inhibitory edges")
    return 0


def degree_figure(model, out_dir: Path, args) -> dict:
    """Demo section: degree distributions of head 0 of G_x at the paper's edge density, with power-law fits."""
    ns = argparse.Namespace(which="x", form="analysis", head=0, beta=None, edges=None, circuit="excitatory")
    _, prune, circuits = extract(model, ns)
    A = circuits.excitatory
    degrees, fits = degree_fits(A, n_bootstrap=0)
    path = plot_degrees(degrees, fits, out_dir / "degrees.png",
                        f"degrees of G_x head 0, the {prune.m} strongest excitatory edges")
    alphas = {k: round(f.alpha, 3) for k, f in fits.items() if not isinstance(f, str)}
    return {"figure": str(path), "edges": int(A.nnz), "alpha": alphas,
            "summary": f"degree figure of G_x head 0 ({A.nnz} edges, power-law alpha {alphas}): {path}"}
