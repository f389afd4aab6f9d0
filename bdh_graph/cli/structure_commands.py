"""``bdh-graph analyze`` and ``bdh-graph export``: a checkpoint's neuron graphs, their structure, their files.

Parsing only: extraction, pruning from options, the analysis, the figures and the files are library functions
(``bdh_graph.graphs``, ``bdh_graph.structure``, ``bdh_graph.plots.structure``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..distributed import engine
from ..files import atomic_path
from ..graphs import (CIRCUITS, FORMATS, FORMS, PAPER_EDGES_PER_NEURON, WHICH, Strongest, Threshold, TopK,
                      entry_histogram, extract, graph_factors, write_graph)
from ..graphs.scale import graph_name
from ..interop import INSTALL, require
from ..interop.clock import DEFAULT_TOKEN_MS, Clock
from ..interop.sonata import check_output_folder, write_circuit, write_hub_circuit
from ..plots.structure import plot_null_distribution, plot_structure
from ..structure.baseline import untrained_like
from ..structure.modularity import BACKENDS
from ..structure.report import analyze_graph
from ..structure.significance import null_distribution
from ..structure.sweep import LADDER
from ..text import encode
from .common import (add_json_flag, add_model_argument, add_scheduler_argument, checked, count, input_file,
                     model_from_args, null_draws, output_file, output_folder, positive_number, print_result,
                     text_from_args)


def head_type(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


EXPORT_FORMATS = (*(f[1:] for f in FORMATS), "sonata")


def graph_file(text: str) -> Path:
    """``export --out``: a file to write whose suffix names a graph format, or a folder (a path without a suffix,
    or an existing folder) for ``--format sonata``; which one the format needs is checked by ``export_format``."""
    path = Path(text)
    if path.is_dir() or not path.suffix:
        return output_folder(text)
    if path.suffix.lower() not in FORMATS:
        raise argparse.ArgumentTypeError(f"'{path}' has unknown format '{path.suffix}'; expected a suffix among "
                                         f"{', '.join(FORMATS)}, or a folder (no suffix) with --format sonata")
    return output_file(text)


def add_graph_arguments(parser: argparse.ArgumentParser, top_k: bool = False) -> None:
    parser.add_argument("--which", choices=WHICH, default="x", help="G_x = D_x E or G_y = D_y E")
    parser.add_argument("--form", choices=FORMS, default="analysis",
                        help="analysis: the paper's D E on the n neurons; exact: the network's wiring, centred as "
                             "LayerNorm centres, with one input neuron per token")
    parser.add_argument("--head", type=head_type, default=0, help="head index, or 'all' for the whole graph")
    prune = parser.add_mutually_exclusive_group()
    prune.add_argument("--beta", type=checked(float, Threshold), default=None,
                       help="keep the edges with |G| >= beta; its scale is the model's: 'bdh-graph info' lists the "
                            "largest |G| of each head's G_x and G_y (a larger beta keeps no edge) and the beta at "
                            "the paper's edge density")
    prune.add_argument("--edges", type=checked(int, Strongest), default=None, metavar="M",
                       help="keep the M strongest edges of each circuit (default, without another pruning option: "
                            f"the paper's density, {PAPER_EDGES_PER_NEURON:.3f} edges per postsynaptic neuron)")
    if top_k:
        prune.add_argument("--top-k", type=checked(int, TopK), default=None, metavar="K",
                           help="keep each neuron's K strongest inputs per circuit")


def graph_from_args(model, args: argparse.Namespace, scheduler=None):
    """The ``Extraction`` the arguments ask for (``bdh_graph.graphs.extract``), its tiles run by ``scheduler``."""
    return extract(model, args.which, args.form, args.head, beta=args.beta, top_k=getattr(args, "top_k", None),
                   edges=args.edges, circuit=args.circuit, scheduler=scheduler)


def register(sub) -> None:
    p = sub.add_parser("analyze", help="degrees, power-law fits and modularity (with null models) of a neuron graph")
    add_model_argument(p)
    add_graph_arguments(p)
    p.add_argument("--circuit", choices=CIRCUITS, default="excitatory", help="which circuit's edges to analyse")
    p.add_argument("--ladder", type=positive_number, nargs="+", default=list(LADDER), metavar="F",
                   help="edge counts of the modularity-against-edges curve, in units of the analysed graph's m "
                        "(denser points are extracted again)")
    p.add_argument("--sweep-betas", type=checked(float, Threshold), nargs="+", default=[], metavar="BETA",
                   help="more thresholds for the modularity-against-edges curve (each above the graph's beta)")
    p.add_argument("--baseline", choices=("none", "untrained"), default="none",
                   help="untrained: the same analysis, at the same edge counts, of a freshly initialised model of "
                        "the same configuration (BDH(config) after torch.manual_seed(--baseline-seed), as training "
                        "starts), side by side in the report and figures")
    p.add_argument("--baseline-seed", type=int, default=0, help="seed of the untrained baseline's weights")
    p.add_argument("--seeds", type=count(1), default=5, help="Louvain seeds; the best partition is kept")
    p.add_argument("--bootstrap", type=count(0), default=100,
                   help="synthetic sets for the power-law p-value, 0 for none")
    p.add_argument("--directed", action="store_true", help="directed modularity (default: symmetrised A + A^T)")
    p.add_argument("--weighted", action="store_true", help="weighted modularity (default: every edge counts 1)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="Louvain implementation (default: igraph when installed, else networkx)")
    p.add_argument("--null-draws", type=null_draws, default=0, metavar="K",
                   help="also draw K graphs of each null model at the analysed graph's nodes and edges: Q's "
                        "p-value and z against each null (null_distribution.png; 19 draws can reach p = 0.05, "
                        "99 p = 0.01); 0 (default) for none")
    p.add_argument("--seed", type=int, default=0, help="seed of the null models and the bootstrap")
    p.add_argument("--out", type=output_folder, default="bdh-structure", help="folder for the figures and reports")
    add_scheduler_argument(p, "the extraction's tiles, the modularity sweep's graphs and the null draws")
    add_json_flag(p)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("export", help="write a neuron graph as GraphML, GEXF, CSV edge list, .npz (scipy.sparse) or "
                                      "a SONATA circuit (NEST, BMTK, libsonata)")
    add_model_argument(p)
    add_graph_arguments(p, top_k=True)
    p.add_argument("--circuit", choices=CIRCUITS, default="both", help="which circuits to write")
    p.add_argument("--out", type=graph_file, required=True,
                   help=f"output file, format by suffix: {', '.join(FORMATS)}; X.npz is written as "
                        "X.excitatory.npz and X.inhibitory.npz, each read by scipy.sparse.load_npz. With --format "
                        "sonata: a folder, missing or empty (see --overwrite)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default=None,
                   help="the format (default: --out's suffix); sonata: a SONATA circuit folder with "
                        "circuit_config.json and simulation_config.json for NEST's SonataNetwork, BMTK, libsonata "
                        f'(needs the interop extra: {INSTALL})')
    p.add_argument("--overwrite", action="store_true", help="sonata: replace the contents of a non-empty --out")
    p.add_argument("--wiring", choices=("neuron", "hub"), default="neuron",
                   help="sonata: neuron: the graph's edges, pruned as asked; hub: the d hubs and every edge of the "
                        "graph's two factors (neurons -> hubs -> neurons), unpruned")
    p.add_argument("--text", type=input_file, default=None,
                   help="sonata, --form exact: the UTF-8 text whose bytes drive the input neurons in "
                        "simulation_config.json (default: a 256-byte held-out passage of the default corpus)")
    p.add_argument("--token-ms", type=positive_number, default=None, metavar="MS",
                   help=f"sonata: the clock, milliseconds per token, for the input drive and the run's length "
                        f"(default: {DEFAULT_TOKEN_MS:g})")
    add_scheduler_argument(p, "the extraction's tiles")
    add_json_flag(p)
    p.set_defaults(func=cmd_export)


def cmd_analyze(args) -> int:
    started = time.perf_counter()
    model = model_from_args(args)
    heads = model.config.n_head
    if args.head is not None and not 0 <= args.head < heads:
        raise ValueError(f"argument --head: this model has {heads} heads; expected an integer in [0, {heads}) or "
                         f"'all', got {args.head}")
    with engine(args.scheduler) as eng:
        factors, prune, circuits = graph_from_args(model, args, eng)  # refused here if no edge is left
        args.out.mkdir(parents=True, exist_ok=True)
        extracted = time.perf_counter()
        baseline = (graph_factors(untrained_like(model, args.baseline_seed), args.which, args.form, args.head)
                    if args.baseline == "untrained" else None)
        analysis = analyze_graph(factors, circuits, args.circuit, args.beta, args.ladder, args.sweep_betas, baseline,
                                 {"kind": "untrained", "seed": args.baseline_seed}, seeds=args.seeds,
                                 n_bootstrap=args.bootstrap, directed=args.directed, weighted=args.weighted,
                                 seed=args.seed, backend=args.backend, progress=True, scheduler=eng)
        significance = None if not args.null_draws else null_distribution(
            analysis.graph, factors.meta.get("d"), args.null_draws, args.seeds, directed=args.directed,
            weighted=args.weighted, seed=args.seed, backend=args.backend, progress=True, scheduler=eng)
        counts, edges = entry_histogram(factors, scheduler=eng)
    name = graph_name(args.which, args.form, args.head)
    figures = plot_structure(analysis, counts, edges, args.out, name)
    report = analysis.to_dict()
    markdown, brief = analysis.markdown(), analysis.brief()
    if significance is not None:
        figures.append(plot_null_distribution(significance, args.out / "null_distribution.png",
                                              f"modularity of {name} against its null models"))
        report["modularity"]["null_draws"] = significance.to_dict()
        markdown += "\n" + significance.markdown()
        brief += f"\nnull draws: {significance.verdict()}"
    report["graph"].update(checkpoint=str(args.checkpoint or "bundled"), prune=repr(prune),
                           beta_rule="--beta" if args.beta is not None else
                           f"the {prune.m} strongest edges per circuit (paper density unless --edges)")
    report["timings_s"].update(extraction=extracted - started, total=time.perf_counter() - started)
    report["figures"] = [str(f) for f in figures]
    report["partition"] = str(args.out / "communities.csv")
    with atomic_path(args.out / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str))
    with atomic_path(args.out / "report.md") as tmp:
        tmp.write_text(markdown)
    with atomic_path(args.out / "communities.csv") as tmp:
        tmp.write_text(analysis.partition_csv())
    print_result(args, report, f"{brief}\nwrote {args.out / 'report.md'} (the report in full), "
                               f"report.json, communities.csv (the partition) and {len(figures)} figures")
    return 0


def export_format(args) -> str:
    """The format of ``export`` (``--format``, else ``--out``'s suffix), with every option checked against it
    before any work starts; a SONATA export also needs the interop extra."""
    out, fmt = args.out, args.format
    given = {"--overwrite": args.overwrite, "--wiring": args.wiring != "neuron", "--text": args.text is not None,
             "--token-ms": args.token_ms is not None}
    sonata_only = [flag for flag, is_given in given.items() if is_given]
    if fmt == "sonata":
        require("h5py", purpose="bdh-graph export --format sonata")
        try:
            check_output_folder(out, args.overwrite)
        except (ValueError, OSError) as err:
            raise ValueError(f"argument --out: {err}") from None
        pruned = [flag for flag, value in (("--beta", args.beta), ("--edges", args.edges), ("--top-k", args.top_k))
                  if value is not None]
        if args.wiring == "hub" and pruned:
            raise ValueError(f"argument {pruned[0]}: --wiring hub writes the graph's two factors, unpruned; drop "
                             f"{', '.join(pruned)} (or use --wiring neuron)")
        if args.text is not None and args.form != "exact":
            raise ValueError("argument --text: the text drives the input neurons, which only --form exact has")
        return fmt
    if sonata_only:
        raise ValueError(f"argument {sonata_only[0]}: only with --format sonata (given: {', '.join(sonata_only)})")
    if out.is_dir() or not out.suffix:
        raise ValueError(f"argument --out: '{out}' is a folder (no suffix); give a file ({', '.join(FORMATS)}) or "
                         "--format sonata for a SONATA circuit folder")
    if fmt is not None and out.suffix.lower() != f".{fmt}":
        raise ValueError(f"argument --format: {fmt} does not match --out '{out}' (suffix '{out.suffix}')")
    return out.suffix.lower()[1:]


def cmd_export(args) -> int:
    fmt = export_format(args)
    model = model_from_args(args)
    if fmt == "sonata":
        return _export_sonata(model, args)
    with engine(args.scheduler) as eng:
        _, prune, circuits = graph_from_args(model, args, eng)
    files = write_graph(circuits, args.out, args.circuit)
    result = {"files": [str(f) for f in files], "shape": list(circuits.shape), "prune": repr(prune),
              "circuit": args.circuit, "excitatory_edges": circuits.n_excitatory,
              "inhibitory_edges": circuits.n_inhibitory}
    name = graph_name(args.which, args.form, args.head)
    print_result(args, result, f"wrote {', '.join(map(str, files))}: {name}, {circuits.shape[0]} x "
                               f"{circuits.shape[1]}, {circuits.n_excitatory} excitatory + {circuits.n_inhibitory} "
                               "inhibitory edges")
    return 0


def _export_sonata(model, args) -> int:
    clock = Clock(args.token_ms or DEFAULT_TOKEN_MS)
    tokens = encode(text_from_args(args)).numpy() if args.form == "exact" else None
    if args.wiring == "hub":
        prune = None
        written = write_hub_circuit(graph_factors(model, args.which, args.form, args.head), args.out, tokens, clock,
                                    args.overwrite, args.circuit)
    else:
        with engine(args.scheduler) as eng:
            _, prune, circuits = graph_from_args(model, args, eng)
        written = write_circuit(circuits, args.out, tokens, clock, args.overwrite, args.circuit)
    result = {"folder": str(args.out), "format": "sonata", "wiring": args.wiring, "prune": repr(prune),
              "circuit": args.circuit, "token_ms": clock.token_ms, **written}
    populations = ", ".join(f"{name} {count}" for name, count in written["edges"].items())
    name = graph_name(args.which, args.form, args.head)
    print_result(args, result, f"wrote the SONATA circuit {args.out} ({name}, {args.wiring} wiring): "
                               f"nodes {', '.join(f'{k} {v}' for k, v in written['nodes'].items())}; edges "
                               f"{populations}; open {written['circuit_config']} with libsonata or BMTK, and "
                               f"{written['simulation_config']} with nest.SonataNetwork")
    return 0
