"""The paper's section 5.5 structure study, for any checkpoint: one figure set per head.

For each head of ``G_x = D_x E`` (the analysis form, the head's diagonal block, excitatory circuit), at the
paper's edge density (46,820 / 8,192 = 5.715 edges per neuron):

- the histogram of all entries of G, with the cut of each circuit marked;
- in- and out-degree CCDFs with Clauset-Shalizi-Newman power-law fits and their verdicts;
- modularity (Louvain, best of ``--seeds``, with the spread over seeds) against the number of edges, next to
  G(n, m), degree-preserving rewiring and the thresholded random product P1 P2^T at the same edge counts, with the
  share of nodes in each graph's largest connected component;
- the adjacency matrix ordered by Louvain community;
- with ``--baseline untrained``, the same analysis of ``BDH(config)`` after ``torch.manual_seed(--baseline-seed)``
  at the same edge counts, side by side in the reports and on the degree and modularity figures.

Edge counts of the modularity sweep are given per neuron (``--densities``, times N; the paper's density is
always one of them). The paper's sweep reaches 2^20 edges per head; the default grid stops at 32 edges per neuron.

    python analysis/structure.py [CHECKPOINT] --out runs/structure [--heads 0 1] [--densities 0.5 1 2 16 32]
        [--baseline untrained]
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
from bdh_graph.structure.baseline import untrained_like
from bdh_graph.structure.report import analyze_graph


def study_head(model, head: int, args) -> dict:
    factors = graph_factors(model, args.which, "analysis", head)
    N = factors.shape[1]
    m = paper_edge_count(N)
    circuits = product_graph(factors, Strongest(m), progress=True)
    ladder = sorted({rho * N / m for rho in args.densities} | {1.0})
    baseline = (graph_factors(untrained_like(model, args.baseline_seed), args.which, "analysis", head)
                if args.baseline == "untrained" else None)
    analysis = analyze_graph(factors, circuits, "excitatory", None, ladder, baseline=baseline,
                             baseline_meta={"kind": "untrained", "seed": args.baseline_seed}, seeds=args.seeds,
                             n_bootstrap=args.bootstrap, seed=args.seed + head, progress=True)
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
    parser.add_argument("--baseline", choices=("none", "untrained"), default="none")
    parser.add_argument("--baseline-seed", type=int, default=0)
    args = parser.parse_args()
    model = load_model(args.checkpoint)
    args.out.mkdir(parents=True, exist_ok=True)
    heads = args.heads if args.heads is not None else range(model.config.n_head)
    reports = {}
    for head in heads:
        reports[head] = report = study_head(model, head, args)
        sweep = ", ".join(f"m={p['edges']}: Q={p['Q']:.3f} (nulls " +
                          "/".join(f"{v['Q']:.3f}" for v in p["nulls"].values()) + ")" for p in report["sweep"])
        alphas = {k: report["power_law"][k].get("alpha", np.nan) for k in ("in", "out")}
        print(f"head {head}: alpha in {alphas['in']:.2f}, out {alphas['out']:.2f}; {sweep}; "
              f"{report['modularity']['verdict']}", flush=True)
    with atomic_path(args.out / "structure.json") as tmp:
        tmp.write_text(json.dumps({"checkpoint": str(args.checkpoint or "bundled"), "heads": reports}, indent=2,
                                  default=str))
    print(f"wrote {args.out}/structure.json, structure_head*.md and the figures")


if __name__ == "__main__":
    main()
