"""Fidelity of pruned neuron networks against the number of edges kept (docs/model.md), as a figure.

A pruned network is an approximation: each one here is stepped over a held-out passage next to the tensor
model (``bdh_graph.validate``) and its fidelity measured: mean KL divergence of the next-byte distributions
(tensor || graph), top-1 agreement, largest relative logit error. Pruning rules:

- top-k: each neuron keeps its k strongest excitatory and k strongest inhibitory inputs (``--top-k``);
- threshold: the edges with ``|G| >= beta``, one beta per top-k run, chosen from the histogram of ``G_x`` to
  keep about as many G_x edges as that run (so the two rules are compared at equal edge counts). One beta prunes
  both graphs; a beta that keeps no edge of ``G_y`` (whose weights may be smaller than ``G_x``'s) gives no
  network, and that point is skipped, said on the figure and listed in ``results.json`` under ``skipped``.

Both graphs G_x and G_y are pruned alike; sigma holds every pair (``--synapses all``, so only the graphs are
pruned) or only the pairs where G_x has an edge (``--synapses wiring``).

    python analysis/pruning.py [CHECKPOINT] --out runs/pruning [--tokens 128] [--top-k 1 4 16 64 256]

Writes ``pruning.png`` and ``results.json`` in ``--out``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from bdh_graph import validate
from bdh_graph.model.checkpoints import load_model
from bdh_graph.files import atomic_path
from bdh_graph.graphs import Threshold, TopK, entry_histogram, graph_factors
from bdh_graph.graphs.scale import graph_scale
from bdh_graph.plots import save_figure
from bdh_graph.text import default_passage, encode


def betas_for_edge_counts(model, counts: list[int], bins: int = 4000) -> list[float]:
    """Thresholds beta with about ``counts[i]`` entries of G_x (exact form) having ``|G| >= beta``."""
    hist, edges = entry_histogram(graph_factors(model, "x", "exact"), bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    order = np.argsort(-np.abs(centres))
    tail = np.cumsum(hist[order])  # entries with |G| >= |centres[order[i]]|
    return [float(np.abs(centres[order[min(np.searchsorted(tail, c), len(order) - 1)]])) for c in counts]


def measure(model, tokens, prune, synapses: str) -> dict:
    start = time.perf_counter()
    s = validate(model, tokens, wiring="neuron", prune=prune, synapses=synapses, dtype=np.float32, state_every=0,
                 progress=True).summary()
    return {"prune": repr(prune), "edges": s["edges"]["x"] + s["edges"]["y"], "edges_x": s["edges"]["x"],
            "kl_mean": s["kl_mean"], "top1_agreement": s["top1_agreement"], "logits_max_rel": s["logits_max_rel"],
            "events_per_token": s["events_per_token"], "seconds": time.perf_counter() - start}


def plot(rows: dict, dense_edges: int, path: Path, title: str) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    # what an exact network (dense graph, float32) would give is round-off: KL ~0, top-1 1, errors ~1e-6
    panels = (("kl_mean", "mean KL(tensor || graph), nats per byte\n(exact network: ~0)", True),
              ("top1_agreement", "top-1 agreement: same most likely byte\n(exact network: 1)", False),
              ("logits_max_rel", "max relative logit error\n(exact network: round-off)", True))
    for ax, (key, label, log) in zip(axes, panels):
        for rule, marker in (("top-k", "o"), ("threshold", "s")):
            pts = sorted(rows[rule], key=lambda r: r["edges"])
            ax.plot([r["edges"] for r in pts], [r[key] for r in pts], marker=marker, label=rule)
        ax.axvline(dense_edges, color="0.5", ls="--", lw=0.8, label="dense graph (exact)")
        ax.set_xscale("log")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("edges kept (G_x + G_y, both circuits)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", default=None, help="checkpoint (default: the bundled model)")
    parser.add_argument("--out", type=Path, default=Path("runs/pruning"))
    parser.add_argument("--tokens", type=int, default=128, help="bytes of the held-out passage")
    parser.add_argument("--top-k", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--synapses", choices=("all", "wiring"), default="all")
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    tokens = encode(default_passage(args.tokens)).numpy()
    args.out.mkdir(parents=True, exist_ok=True)
    c = model.config
    dense_edges = 2 * (c.n_neurons + c.vocab_size) * c.n_neurons  # G_x and G_y, every entry
    rows = {"top-k": [measure(model, tokens, TopK(k), args.synapses) for k in args.top_k]}
    betas = betas_for_edge_counts(model, [r["edges_x"] for r in rows["top-k"]])
    largest_y = graph_scale(model, "y", "exact").largest
    rows["threshold"] = [measure(model, tokens, Threshold(beta), args.synapses) for beta in betas
                         if beta <= largest_y]
    skipped = [f"beta={beta:.4g}" for beta in betas if beta > largest_y]
    title = (f"pruned neuron networks of n={c.n_neurons}, d={c.n_embd}, L={c.n_layer} over {len(tokens)} "
             f"held-out bytes; sigma on {args.synapses} pairs")
    if skipped:
        title += (f"\nthreshold not run at {len(skipped)} of {len(betas)} edge counts: its beta "
                  f"({', '.join(skipped)}) keeps no edge of G_y (largest |G| {largest_y:.4g})")
    figure = plot(rows, dense_edges, args.out / "pruning.png", title)
    with atomic_path(args.out / "results.json") as tmp:
        tmp.write_text(json.dumps({"tokens": len(tokens), "synapses": args.synapses, "dense_edges": dense_edges,
                                   **rows, "skipped": skipped}, indent=2))
    for rule, pts in rows.items():
        for r in pts:
            print(f"{rule:9s} {r['prune']:28s} edges {r['edges']:>11,d}  KL {r['kl_mean']:.3e}  "
                  f"top-1 {r['top1_agreement']:.1%}  logit rel {r['logits_max_rel']:.2e}")
    for prune in skipped:
        print(f"threshold {prune:28s} not run: it keeps no edge of G_y (largest |G| {largest_y:.4g})")
    print(f"wrote {figure} and {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
