"""``bdh-graph emergence``, ``bdh-graph emergence-sizes`` and ``bdh-graph hubs``: the experiments that combine a
graph's structure, the network run on text and the loss (``bdh_graph.experiments``).

``hubs`` is a command of its own, not an ``analyze`` option: ``analyze`` reads the weights alone (the structure
statistics never run the network), while ``hubs`` steps the network over a text and lesions it."""
from __future__ import annotations

import argparse

from ..distributed import engine
from ..experiments.emergence import DEFAULT_BYTES, LADDER, REPORT, emergence, find_snapshots, size_ladder
from ..experiments.hubs import DEFAULT_DRAWS, DEFAULT_K, hub_function
from ..graphs import PAPER_EDGES_PER_NEURON, Strongest, Threshold
from ..kernels import available_backends
from ..plots.emergence import plot_emergence, plot_size_ladder
from ..plots.hubs import plot_hubs
from .common import (add_json_flag, add_model_argument, add_scheduler_argument, add_text_argument, checked, count,
                     model_from_args, null_draws, output_folder, positive_number, say, text_from_args, write_report)


def add_head_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """The graph of ``analyze`` these experiments take: one head of G_x, analysis form, excitatory circuit."""
    parser.add_argument("--head", type=count(0), default=0, help="the head whose G_x block is analysed")
    prune = parser.add_mutually_exclusive_group()
    prune.add_argument("--beta", type=checked(float, Threshold), default=None,
                       help="keep the edges with G >= beta (as analyze --beta)")
    prune.add_argument("--edges", type=checked(int, Strongest), default=None, metavar="M",
                       help="keep the M strongest edges (default, without --beta: the paper's density, "
                            f"{PAPER_EDGES_PER_NEURON:.3f} edges per neuron)")
    parser.add_argument("--backend", choices=available_backends(), default="numba", help="the network's kernels")


def register(sub) -> None:
    p = sub.add_parser("emergence", help="structure of G_x, bits per byte and working memory over the snapshots "
                                         "of a training run")
    p.add_argument("run", metavar="RUN_DIR",
                   help="the --out folder of 'bdh-graph train --snapshot-every K', holding "
                        "snapshots/step-NNNNNN.safetensors: the series (the final model.safetensors is not read; it "
                        "is the last snapshot when the steps are a multiple of K)")
    add_head_graph_arguments(p)
    p.add_argument("--ladder", type=positive_number, nargs="+", default=list(LADDER), metavar="F",
                   help="modularity at these multiples of the analysed edge count (as analyze --ladder; "
                        "the figures are the analysed count's, 1)")
    p.add_argument("--seeds", type=count(1), default=5, help="Louvain seeds; the best partition is kept")
    p.add_argument("--bootstrap", type=count(0), default=100,
                   help="synthetic sets for the power-law p-value, 0 for none")
    p.add_argument("--seed", type=int, default=0, help="seed of the null models and the bootstrap")
    p.add_argument("--null-draws", type=null_draws, default=0, metavar="K",
                   help="as analyze --null-draws, at every snapshot: Q's p-value against K draws of each null, "
                        "which the verdicts then use (19 can reach p = 0.05); 0 (default) for none")
    add_text_argument(p, default_bytes=DEFAULT_BYTES)
    p.add_argument("--bytes", type=count(2), default=DEFAULT_BYTES,
                   help=f"bytes of the held-out passage read without --text, {DEFAULT_BYTES} if not given; each "
                        "snapshot reads it three times (tensor model, network with and without memory)")
    p.add_argument("--out", type=output_folder, required=True,
                   help="folder for emergence.json and the figures emergence_{degrees,power_law,modularity,loss}.png")
    add_scheduler_argument(p, "the snapshots (one task each; workers read them from RUN_DIR)")
    add_json_flag(p)
    p.set_defaults(func=cmd_emergence)

    p = sub.add_parser("emergence-sizes", help="the size ladder: the structure of G_x and the loss at the end of "
                                               "training against the neurons per head, from the emergence reports "
                                               "of runs of several sizes")
    p.add_argument("reports", nargs="+", metavar="REPORT",
                   help=f"the {REPORT} of 'bdh-graph emergence' on each run (or its --out folder), one per size, "
                        "all measured with the same options")
    p.add_argument("--out", type=output_folder, required=True,
                   help="folder for emergence_sizes.json and the figure emergence_sizes.png")
    add_json_flag(p)
    p.set_defaults(func=cmd_emergence_sizes)

    p = sub.add_parser("hubs", help="what the highest-degree neurons of a head's G_x do: firing rate against degree, "
                                    "and the rich-club lesion (hubs silenced against random neurons)")
    add_model_argument(p)
    add_head_graph_arguments(p)
    add_text_argument(p)
    p.add_argument("--k", type=count(1), nargs="+", default=list(DEFAULT_K), metavar="K",
                   help="numbers of neurons silenced, one lesion each (at most the head's N)")
    p.add_argument("--draws", type=count(1), default=DEFAULT_DRAWS,
                   help="random draws of k neurons, from the whole head and from its core (neurons with an edge)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    p.add_argument("--out", type=output_folder, required=True,
                   help="folder for hubs.json, hub_rates.png and hub_lesion.png")
    add_json_flag(p)
    p.set_defaults(func=cmd_hubs)


def cmd_emergence(args) -> int:
    snapshots = find_snapshots(args.run)  # refused here, before a cluster starts
    text = text_from_args(args, args.bytes)
    with engine(args.scheduler) as eng:
        say(f"emergence: {len(snapshots)} snapshots of {args.run}, {eng.description} ...")
        result = emergence(args.run, text, head=args.head, beta=args.beta, edges=args.edges, ladder=args.ladder,
                           seeds=args.seeds, n_bootstrap=args.bootstrap, seed=args.seed, backend=args.backend,
                           null_draws=args.null_draws, progress=True, scheduler=eng)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {name: str(path) for name, path in plot_emergence(result, args.out).items()}
    return write_report(args, "emergence.json", result, files)


def cmd_emergence_sizes(args) -> int:
    ladder = size_ladder(args.reports)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {name: str(path) for name, path in plot_size_ladder(ladder, args.out).items()}
    return write_report(args, "emergence_sizes.json", ladder, files)


def cmd_hubs(args) -> int:
    model = model_from_args(args)
    c = model.config
    if args.head >= c.n_head:
        raise ValueError(f"argument --head: the model has heads 0..{c.n_head - 1}, got {args.head}")
    too_many = [k for k in args.k if k > c.N]
    if too_many:
        raise ValueError(f"argument --k: at most the head's N = {c.N} neurons can be silenced, got {too_many}")
    text = text_from_args(args)
    say(f"hubs: G_x head {args.head}, the network reading {len(text.encode())} bytes with no neuron, the "
        f"highest-degree and random neurons silenced ...")
    result = hub_function(model, text, head=args.head, beta=args.beta, edges=args.edges, ks=args.k,
                          draws=args.draws, seed=args.seed, backend=args.backend, progress=True)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {name: str(path) for name, path in plot_hubs(result, args.out).items()}
    return write_report(args, "hubs.json", result, files, checkpoint=str(args.checkpoint or "bundled"))
