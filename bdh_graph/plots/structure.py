"""Figures of graph structure: entries of G, degree distributions with power-law fits, modularity against edge
count next to the null models, and the strongest hubs of a head coloured by community; ``degree_figure`` draws
the degrees of a model's head straight from its weights (the demo's figure)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
from scipy import sparse

from ..graphs import extract
from ..structure.degrees import ccdf, in_degree, out_degree
from ..structure.powerlaw_fit import PowerLawFit, power_law_ccdf
from ..structure.report import degree_fits
from . import save_figure

NULL_LABELS = {"gnm": "G(n, m)", "rewired": "degree-preserving rewiring", "low_rank": "random product P1 P2^T"}


def plot_entry_histogram(counts: np.ndarray, edges: np.ndarray, beta: float | None, path, title: str = "") -> Path:
    """Histogram of the entries of G on a log count axis, with the pruning threshold at ``+-beta``."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    centres = (edges[:-1] + edges[1:]) / 2
    ax.bar(centres, counts, width=np.diff(edges), color="0.35", log=True)
    if beta is not None:
        for x in (-beta, beta):
            ax.axvline(x, color="tab:red", ls="--", lw=1)
        kept = counts[(centres >= beta) | (centres <= -beta)].sum()
        ax.text(0.98, 0.95, f"beta = {beta:.4g}\n~{kept:,} entries with |G| >= beta", transform=ax.transAxes,
                ha="right", va="top", fontsize=8, color="tab:red")
    ax.set_xlabel("entry of G")
    ax.set_ylabel("count")
    ax.set_title(title or "entries of G", fontsize=10)
    return save_figure(fig, path)


def _log_binned(values: np.ndarray, bins_per_decade: int = 8) -> tuple[np.ndarray, np.ndarray]:
    values = values[values > 0]
    top = np.log10(values.max()) + 1e-9
    edges = np.unique(np.floor(np.logspace(0, top, max(2, int(top * bins_per_decade) + 2))))
    edges = np.append(edges, edges[-1] + 1)
    counts, edges = np.histogram(values, bins=edges)
    density = counts / np.diff(edges) / values.size
    centres = np.sqrt(edges[:-1] * np.maximum(edges[1:] - 1, edges[:-1]))
    keep = counts > 0
    return centres[keep], density[keep]


def plot_degrees(degrees: dict[str, np.ndarray], fits: dict[str, PowerLawFit | str], path, title: str = "") -> Path:
    """In- and out-degree: log-binned histogram (left) and CCDF with the fitted power law from x_min (right)."""
    fig, (ax_pdf, ax_ccdf) = plt.subplots(1, 2, figsize=(10, 4))
    for (key, label), colour in zip((("in", "in-degree"), ("out", "out-degree")), ("tab:blue", "tab:orange")):
        k = np.asarray(degrees[key])
        if not (k > 0).any():
            continue
        x, p = _log_binned(k)
        ax_pdf.loglog(x, p, "o", ms=4, color=colour, label=label)
        x, P = ccdf(k[k > 0])
        ax_ccdf.loglog(x, P, ".", ms=4, color=colour, label=label)
        fit = fits.get(key)
        if isinstance(fit, PowerLawFit):
            tail = x[x >= fit.xmin]
            model = power_law_ccdf(tail, fit.alpha, fit.xmin, fit.discrete) * fit.n_tail / fit.n
            p_text = "" if np.isnan(fit.p_value) else f", p = {fit.p_value:.2f}"
            ax_ccdf.loglog(tail, model, "--", color=colour,
                           label=f"power law alpha = {fit.alpha:.2f}, x_min = {fit.xmin:.0f}{p_text}")
    ax_pdf.set(xlabel="degree k", ylabel="P(k)", title="degree distribution (log bins)")
    ax_ccdf.set(xlabel="degree k", ylabel="P(K >= k)", title="CCDF")
    for ax in (ax_pdf, ax_ccdf):
        ax.legend(fontsize=7)
    fig.suptitle(title or "degrees", fontsize=10)
    return save_figure(fig, path)


def degree_figure(model, path, which: str = "x", head: int = 0) -> dict:
    """Draw the in- and out-degrees of head ``head`` of ``G_which`` (analysis form, excitatory circuit, the
    paper's edge density) with their power-law fits (no bootstrap) to ``path``.

    Returns ``{"figure": path, "edges": m, "alpha": {"in": ..., "out": ...}}`` (a degree without a fit is left
    out of ``alpha``).
    """
    _, prune, circuits = extract(model, which, "analysis", head, circuit="excitatory")
    A = circuits.excitatory
    degrees, fits = degree_fits(A, n_bootstrap=0)
    figure = plot_degrees(degrees, fits, path, f"degrees of G_{which} head {head}, the {prune.m} strongest "
                                               "excitatory edges")
    alpha = {k: f.alpha for k, f in fits.items() if isinstance(f, PowerLawFit)}
    return {"figure": figure, "edges": int(A.nnz), "alpha": alpha}


def plot_modularity_sweep(points, path, title: str = "") -> Path:
    """Modularity Q against the number of edges m, for the graph and each null model at the same m."""
    points = [p for p in points if p.result is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    m = [p.edges for p in points]
    ax.plot(m, [p.Q for p in points], "o-", color="black", label="this graph")
    for name in (points[0].nulls if points else {}):
        ax.plot(m, [p.nulls[name].Q for p in points], "s--", ms=4, label=NULL_LABELS.get(name, name))
    for p in points:
        ax.annotate(f"beta={p.beta:.3g}", (p.edges, p.Q), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set(xlabel="edges m", ylabel="modularity Q (Louvain, best of seeds)", ylim=(min(0, ax.get_ylim()[0]), None))
    ax.legend(fontsize=7)
    ax.set_title(title or "modularity against edge count", fontsize=10)
    return save_figure(fig, path)


def plot_hubs(A, labels: np.ndarray, path, n_hubs: int = 60, node_ids: np.ndarray | None = None,
              title: str = "", seed: int = 0) -> Path:
    """The strongest hubs and their strongest neighbours, coloured by community.

    The ``max(1, n_hubs // 8)`` neurons of highest total degree are drawn with the neighbours joined to them by
    the heaviest edges, ``n_hubs`` neurons in all, and every edge among the drawn neurons.
    """
    A = sparse.csr_array(A)
    total = in_degree(A) + out_degree(A)
    core = np.argsort(total)[::-1][: max(1, n_hubs // 8)]
    S = sparse.csr_array(abs(A) + abs(A).T)[core].tocoo()  # edges of the core hubs, either direction
    by_weight = S.col[np.argsort(S.data)[::-1]]
    _, first = np.unique(by_weight, return_index=True)
    neighbours = by_weight[np.sort(first)]  # distinct, heaviest edge first
    hubs = np.sort(np.concatenate([core, neighbours[~np.isin(neighbours, core)]])[:n_hubs])
    sub = A[hubs][:, hubs]
    G = nx.from_scipy_sparse_array(sub, create_using=nx.DiGraph)
    G.remove_edges_from(nx.selfloop_edges(G))
    names = hubs if node_ids is None else np.asarray(node_ids)[hubs]
    fig, ax = plt.subplots(figsize=(7, 7))
    pos = nx.spring_layout(G, seed=seed, weight=None)
    communities = np.asarray(labels)[hubs]
    _, colour_index = np.unique(communities, return_inverse=True)
    sizes = 30 + 300 * total[hubs] / max(1, total[hubs].max())
    nx.draw_networkx_edges(G, pos, ax=ax, alpha=0.25, width=0.5, arrowsize=5, edge_color="0.4")
    nx.draw_networkx_nodes(G, pos, ax=ax, node_size=sizes, node_color=colour_index % 20, cmap="tab20",
                           vmin=0, vmax=19, linewidths=0.3, edgecolors="black")
    top = np.flatnonzero(np.isin(hubs, core))
    nx.draw_networkx_labels(G, pos, {int(i): str(int(names[i])) for i in top}, ax=ax, font_size=6)
    ax.set_axis_off()
    ax.set_title((title or "strongest hubs") + f"\n{core.size} hubs (labelled) and their strongest neighbours; "
                 "size: degree, colour: community", fontsize=9)
    return save_figure(fig, path)


def plot_structure(analysis, counts: np.ndarray, edges: np.ndarray, out_dir, name: str, n_hubs: int = 60,
                   suffix: str = "") -> list[Path]:
    """The four figures of one ``StructureAnalysis``: entries of G, degrees, modularity sweep, hubs."""
    out_dir = Path(out_dir)
    beta = analysis.beta
    return [
        plot_entry_histogram(counts, edges, beta, out_dir / f"entry_histogram{suffix}.png", f"entries of {name}"),
        plot_degrees(analysis.degrees, analysis.fits, out_dir / f"degrees{suffix}.png",
                     f"degrees of {name}, {analysis.circuit} edges >= beta = {beta:.4g}"),
        plot_modularity_sweep(analysis.sweep, out_dir / f"modularity{suffix}.png", f"modularity of {name}"),
        plot_hubs(analysis.graph, analysis.point.result.labels, out_dir / f"hubs{suffix}.png", n_hubs,
                  analysis.node_ids, f"strongest hubs of {name}, coloured by Louvain community"),
    ]
