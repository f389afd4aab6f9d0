"""The paper's section 5.5 structure study, for any checkpoint: one figure set per head.

For each head of ``G_x = D_x E`` (the analysis form, the head's diagonal block, excitatory circuit):

- the histogram of all entries of G, with the beta of the paper's edge density marked;
- modularity (Louvain, best of ``--seeds``) against the number of edges, next to G(n, m), degree-preserving
  rewiring and the thresholded random product P1 P2^T at the same edge counts;
- in- and out-degree distributions at the paper's density with Clauset-Shalizi-Newman power-law fits;
- the strongest hubs, coloured by community.

Edge counts are given per neuron (``--densities``, times N); the paper's density is 46,820 / 8,192 = 5.715.
The paper's sweep reaches 2^20 edges per head; networkx's Louvain needs minutes per seed there, so the default
grid stops at 32 edges per neuron (install python-igraph for a faster Louvain).

    python analysis/structure.py [CHECKPOINT] --out runs/structure [--heads 0 1] [--densities 0.5 1 2 5.715 16 32]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bdh_graph.files import atomic_path
from bdh_graph.graphs import Strongest, entry_histogram, graph_factors, paper_edge_count, product_graph
from bdh_graph.model.checkpoints import load_model
from bdh_graph.plots.structure import plot_structure
from bdh_graph.structure.report import analyze_structure
from bdh_graph.structure.sweep import betas_for_edges


def study_head(model, head: int, args) -> dict:
    factors = graph_factors(model, args.which, "analysis", head)
    N = factors.shape[1]
    counts = sorted({max(1, round(rho * N)) for rho in args.densities} | {paper_edge_count(N)})
    circuits = product_graph(factors, Strongest(max(counts)), progress=True)
    betas = betas_for_edges(circuits.excitatory, [m for m in counts if m <= circuits.n_excitatory])
    beta = float(betas_for_edges(circuits.excitatory, [paper_edge_count(N)])[0])
    analysis = analyze_structure(circuits, "excitatory", beta, betas, args.seeds, args.bootstrap,
                                 seed=args.seed + head, progress=True)
    hist_counts, hist_edges = entry_histogram(factors)
    name = f"G_{args.which} head {head}"
    figures = plot_structure(analysis, hist_counts, hist_edges, args.out, name, suffix=f"_head{head}")
    with atomic_path(args.out / f"structure_head{head}.md") as tmp:
        tmp.write_text(analysis.markdown())
    report = analysis.to_dict()
    report["figures"] = [str(f) for f in figures]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", default=None, help="default: the bundled model")
    parser.add_argument("--out", type=Path, default=Path("runs/structure"))
    parser.add_argument("--which", choices=("x", "y"), default="x")
    parser.add_argument("--heads", type=int, nargs="+", default=None, help="default: every head")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.5, 1, 2, 16, 32],
                        help="edges per neuron of the modularity sweep (the paper's 5.715 is always added)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = load_model(args.checkpoint)
    args.out.mkdir(parents=True, exist_ok=True)
    heads = args.heads if args.heads is not None else range(model.config.n_head)
    reports = {}
    for head in heads:
        reports[head] = report = study_head(model, head, args)
        sweep = ", ".join(f"m={p['edges']}: Q={p['Q']:.3f} (nulls " +
                          "/".join(f"{p[k]:.3f}" for k in p if k.startswith("Q_")) + ")" for p in report["sweep"])
        alphas = {k: report["power_law"][k].get("alpha", np.nan) for k in ("in", "out")}
        print(f"head {head}: alpha in {alphas['in']:.2f}, out {alphas['out']:.2f}; {sweep}", flush=True)
    with atomic_path(args.out / "structure.json") as tmp:
        tmp.write_text(json.dumps({"checkpoint": str(args.checkpoint or "bundled"), "heads": reports}, indent=2,
                                  default=str))
    print(f"wrote {args.out}/structure.json, structure_head*.md and the figures")


if __name__ == "__main__":
    main()
