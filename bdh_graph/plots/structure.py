"""Figures of graph structure, each stating its verdict in the title or legend: entries of G with the cuts each
circuit was pruned at; degree CCDFs with power-law fits and their verdicts; modularity against the number of
edges next to the null models, with the spread over seeds and where a graph fragments; the adjacency matrix
ordered by community. ``degree_figure`` draws the degrees of a model's head straight from its weights (the
demo's figure)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import NullLocator

from ..graphs import extract
from ..structure.degrees import ccdf, in_degree, out_degree, summary
from ..structure.modularity import modularity_terms
from ..structure.powerlaw_fit import PowerLawFit, power_law_ccdf
from ..structure.report import FRAGMENTED, StructureAnalysis, degree_fits
from ..structure.significance import NullDistribution
from . import save_figure

NULL_LABELS = {"gnm": "G(n, m)", "rewired": "degree-preserving rewiring", "low_rank": "random product P1 P2^T"}
NULL_COLOURS = {"gnm": "tab:blue", "rewired": "tab:green", "low_rank": "tab:purple"}


def _wrap(text: str, width: int = 110) -> str:
    return "\n".join(textwrap.wrap(text, width))


def plot_entry_histogram(counts: np.ndarray, edges: np.ndarray, cuts: dict[str, dict], path, title: str = "",
                         analysed: str = "excitatory") -> Path:
    """Histogram of the entries of G on a log count axis, with the cut of each circuit: ``G >= beta`` for the
    excitatory circuit, ``G <= -beta`` for the inhibitory one (``cuts[name] = {"beta": ..., "edges": ...}``).
    The legend gives each circuit's edge count; the ``analysed`` circuit's (or both, for ``"both"``) is marked."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    centres = (edges[:-1] + edges[1:]) / 2
    ax.bar(centres, counts, width=np.diff(edges), color="0.55", log=True, label=f"{counts.sum():,} entries of G")
    for name, sign, colour in (("excitatory", 1, "tab:red"), ("inhibitory", -1, "tab:blue")):
        cut = cuts.get(name)
        if cut is None or not np.isfinite(cut["beta"]):
            continue
        chosen = analysed in (name, "both")
        relation = ">=" if sign > 0 else "<="
        ax.axvline(sign * cut["beta"], color=colour, ls="-" if chosen else ":", lw=1.6 if chosen else 1,
                   label=f"{name} cut G {relation} {sign * cut['beta']:.4g}: {cut['edges']:,} edges"
                         + (" (analysed)" if chosen else ""))
        ax.axvspan(sign * cut["beta"], edges[-1] if sign > 0 else edges[0], color=colour, alpha=0.08, lw=0)
    ax.set_xlabel("entry of G")
    ax.set_ylabel("count")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    analysed_edges = sum(c["edges"] for n, c in cuts.items() if analysed in (n, "both"))
    ax.set_title(_wrap(f"{title or 'entries of G'}: the analysed {analysed} circuit keeps {analysed_edges:,} "
                       "edges", 80), fontsize=9)
    return save_figure(fig, path)


def _short_verdict(fit: PowerLawFit) -> str:
    better = [c.alternative for c in fit.comparisons if c.favoured == c.alternative]
    worse = [c.alternative for c in fit.comparisons if c.favoured == "power_law"]
    if np.isnan(fit.p_value):
        gof = "no bootstrap"
    else:
        gof = f"{'ruled out' if fit.p_value < 0.1 else 'plausible'} (bootstrap p = {fit.p_value:.2f})"
    lr = (f"; {' and '.join(better)} favoured" if better else
          f"; beats {' and '.join(worse)}" if worse else "; no alternative favoured")
    return gof + lr


def _degree_panel(ax, k: np.ndarray, fit, colour: str, who: str) -> None:
    s = summary(k)
    positive = k[k > 0]
    if positive.size == 0:
        return
    x, P = ccdf(positive)
    ax.loglog(x, P, ".", ms=4, color=colour,
              label=f"{who}: CV {s['cv']:.2f}, max {s['max']:.0f}\n{s['zeros']} zero-degree nodes left out")
    if isinstance(fit, PowerLawFit):
        tail = x[x >= fit.xmin]
        model = power_law_ccdf(tail, fit.alpha, fit.xmin, fit.discrete) * fit.n_tail / fit.n
        ax.loglog(tail, model, "--", color=colour, lw=1.2,
                  label=f"power law alpha = {fit.alpha:.2f} ± {fit.sigma:.2f} from x_min = {fit.xmin:.0f} "
                        f"({fit.n_tail} of {fit.n} nodes)\n{_short_verdict(fit)}")
    else:
        ax.plot([], [], " ", label=_wrap(f"no fit: {fit}", 70))


def plot_degrees(degrees: dict[str, np.ndarray], fits: dict[str, PowerLawFit | str], path, title: str = "",
                 beta: float | None = None, baseline: tuple[dict, dict] | None = None,
                 baseline_label: str = "untrained") -> Path:
    """In-degree (left) and out-degree (right) CCDFs with the power laws fitted from x_min and their verdicts;
    with ``baseline = (degrees, fits)`` a baseline model's beside them, in grey. Zero degrees are outside any
    power law: the legend says how many nodes were left out."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    fig.subplots_adjust(top=0.8, wspace=0.25)
    n, m = len(degrees["in"]), int(np.sum(degrees["in"]))
    for ax, key in zip(axes, ("in", "out")):
        _degree_panel(ax, np.asarray(degrees[key]), fits.get(key), "tab:orange", "this model")
        if baseline is not None:
            _degree_panel(ax, np.asarray(baseline[0][key]), baseline[1].get(key), "0.45", baseline_label)
        fit = fits.get(key)
        verdict = _short_verdict(fit) if isinstance(fit, PowerLawFit) else "no fit"
        ax.set(xlabel=f"{key}-degree k", ylabel="P(K >= k)")
        ax.set_title(_wrap(f"{key}-degree of this model: power law {verdict}", 60), fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    cut = f", edges with weight >= beta = {beta:.4g}" if beta is not None else ""
    fig.suptitle(_wrap(f"{title or 'degrees'}: n = {n:,} nodes, m = {m:,} edges{cut}", 150), fontsize=10, y=0.98)
    return save_figure(fig, path)


def degree_figure(model, path, which: str = "x", head: int = 0) -> dict:
    """Draw the in- and out-degrees of head ``head`` of ``G_which`` (analysis form, excitatory circuit, pruned to
    the paper's edge density) with their power-law fits (no bootstrap) to ``path``.

    Returns ``{"figure": path, "edges": m, "alpha": {"in": ..., "out": ...}}`` (a degree without a fit is left
    out of ``alpha``).
    """
    _, prune, circuits = extract(model, which, "analysis", head, circuit="excitatory")
    A = circuits.excitatory
    degrees, fits = degree_fits(A, n_bootstrap=0)
    figure = plot_degrees(degrees, fits, path, f"degrees of G_{which} head {head}, pruned to its {prune.m} "
                                               "strongest excitatory edges", beta=float(A.data.min()))
    alpha = {k: f.alpha for k, f in fits.items() if isinstance(f, PowerLawFit)}
    return {"figure": figure, "edges": int(A.nnz), "alpha": alpha}


def _modularity_column(ax_q, ax_lcc, points, analysed_edges: int | None, who: str) -> None:
    points = [p for p in points if p.result is not None]
    m = np.array([p.edges for p in points])

    def spread(results):
        Q = np.array([r.Q for r in results])
        low = np.array([r.Q_spread[0] for r in results])
        return Q, np.vstack([Q - low, np.zeros_like(Q)])

    Q, err = spread([p.result for p in points])
    ax_q.errorbar(m, Q, yerr=err, fmt="o-", color="black", capsize=3, label=f"{who} (bar: spread over seeds)")
    ax_lcc.plot(m, [p.result.giant_component for p in points], "o-", color="black", label=who)
    for name in (points[0].nulls if points else {}):
        Q, err = spread([p.nulls[name] for p in points])
        colour = NULL_COLOURS.get(name)
        ax_q.errorbar(m, Q, yerr=err, fmt="s--", ms=4, color=colour, capsize=2,
                      label=f"null: {NULL_LABELS.get(name, name)}")
        ax_lcc.plot(m, [p.nulls[name].giant_component for p in points], "s--", ms=4, color=colour,
                    label=f"null: {NULL_LABELS.get(name, name)}")
    ax_lcc.axhline(FRAGMENTED, color="tab:red", lw=0.8, ls=":", label=f"fragmented below {FRAGMENTED:.0%}")
    if analysed_edges is not None:
        for ax in (ax_q, ax_lcc):
            ax.axvline(analysed_edges, color="0.6", lw=0.8, ls="-.")
        ax_q.plot([], [], "-.", color="0.6", label=f"analysed graph, m = {analysed_edges:,}")
    ax_q.set_xscale("log")
    ax_lcc.set_xticks(m, [f"{v:,}" for v in m], minor=False, rotation=30, fontsize=7)
    ax_lcc.xaxis.set_minor_locator(NullLocator())
    ax_lcc.set(xlabel="edges m", ylim=(0, 1.02))


def _excess(points, edges: int | None) -> float:
    """Q minus the largest null's Q at the point of ``edges`` edges (NaN without one)."""
    for p in points:
        if p.edges == edges and p.result is not None and p.nulls:
            return p.Q - max(r.Q for r in p.nulls.values())
    return float("nan")


def plot_modularity_sweep(points, path, title: str = "", analysed_edges: int | None = None, verdict: str = "",
                          baseline_points=None, baseline_label: str = "untrained", baseline_verdict: str = "") -> Path:
    """Modularity Q against the number of edges m for the graph and each null model at the same m (top; bars:
    the spread over Louvain seeds below the best), and the share of nodes in each one's largest connected
    component (bottom: a fragmented sparse graph scores a high Q from its pieces alone). With
    ``baseline_points`` a baseline model's sweep stands in a second column on the same axes."""
    columns = [("this model", points, verdict)]
    if baseline_points is not None:
        columns.append((baseline_label, baseline_points, baseline_verdict))
    fig, axes = plt.subplots(2, len(columns), figsize=(6.5 * len(columns), 7.5), sharex=True, sharey="row",
                             squeeze=False, gridspec_kw={"height_ratios": [2, 1]}, layout="constrained")
    axes[0, 0].set_ylabel("modularity Q (Louvain, best of seeds)")
    axes[1, 0].set_ylabel("share of nodes in the\nlargest connected component")
    for col, (who, pts, text) in enumerate(columns):
        _modularity_column(axes[0, col], axes[1, col], pts, analysed_edges, who)
        axes[0, col].set_title(_wrap(f"{who}: {text}" if text else who, 75), fontsize=8)
        axes[0, col].legend(fontsize=7)
    axes[1, -1].legend(fontsize=7)
    axes[0, 0].set_ylim(bottom=min(0, axes[0, 0].get_ylim()[0]))
    excess = [f"{_excess(pts, analysed_edges):+.3f} ({who})" for who, pts, _ in columns]
    fig.suptitle(f"{title or 'modularity against edge count'}: Q minus the largest null's at the analysed "
                 f"m = {analysed_edges:,}: {', '.join(excess)}" if analysed_edges is not None else title, fontsize=10)
    return save_figure(fig, path)


def plot_null_distribution(distribution: NullDistribution, path, title: str = "") -> Path:
    """The observed Q (line) against each null model's Q over its draws (one row of points per null, with its
    mean and one standard deviation as a bar); the verdict, with each p-value, in the title."""
    names = list(distribution.nulls)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.7 * len(names)), layout="constrained")
    for row, name in enumerate(names):
        Q = distribution.nulls[name]
        jitter = np.linspace(-0.15, 0.15, Q.size)
        ax.plot(Q, row + jitter, "o", ms=3, alpha=0.6, color=NULL_COLOURS[name])
        ax.errorbar(distribution.mean(name), row, xerr=distribution.sd(name), fmt="|", ms=14, capsize=4,
                    color="black")
    ax.axvline(distribution.Q, color="tab:red", lw=2, label=f"this graph: Q = {distribution.Q:.3f}")
    ax.set_yticks(range(len(names)), [f"{NULL_LABELS[n]}\np = {distribution.p(n):.2g}" for n in names],
                  fontsize=8)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlabel(f"modularity Q ({distribution.draws} draws of each null; bar: mean +- 1 sd)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(_wrap(f"{title}: {distribution.verdict()}" if title else distribution.verdict(), 90), fontsize=8)
    return save_figure(fig, path)


def plot_communities(A, labels: np.ndarray, path, title: str = "", directed: bool = False, weighted: bool = False,
                     bins: int = 512, named: int = 12) -> Path:
    """The adjacency matrix (rows presynaptic, columns postsynaptic) with the nodes ordered by community, largest
    first, and by degree within each; isolated nodes last. Each pixel counts the edges of a block of node pairs
    (log colour scale); lines mark the ``named`` largest communities, whose sizes stand on the axis. The title
    gives Q's two terms for this partition: the share of edges inside communities and what the same degrees
    would put there by chance (``structure.modularity.modularity_terms``)."""
    A = abs(A).tocsr()
    n = A.shape[0]
    labels = np.asarray(labels)
    degree = in_degree(A) + out_degree(A)
    _, community = np.unique(labels, return_inverse=True)
    sizes = np.bincount(community)
    isolated = degree == 0
    rank = np.argsort(np.argsort(-sizes, kind="stable"), kind="stable")  # 0 = largest community
    order = np.lexsort((-degree, rank[community], isolated))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    coo = A.tocoo()
    bins = min(bins, n)
    H, _, _ = np.histogram2d(position[coo.row], position[coo.col], bins=bins, range=[[0, n], [0, n]])
    fig, ax = plt.subplots(figsize=(7.5, 7.5))
    image = ax.imshow(np.ma.masked_equal(H, 0), cmap="viridis", norm=LogNorm(vmin=1, vmax=max(2, H.max())),
                      extent=(0, n, n, 0), interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.75, format="%g",
                 label=f"edges per block of {n / bins:.0f} x {n / bins:.0f} node pairs")
    connected = sizes[np.unique(community[~isolated])] if (~isolated).any() else np.array([], dtype=np.int64)
    largest = np.sort(connected)[::-1][:named]
    largest = largest[largest >= max(2, n // 100)]  # a community of a few nodes would be a line, not a block
    edges = np.concatenate([[0], np.cumsum(largest)])
    for e in edges[1:]:
        ax.axhline(e, color="tab:red", lw=0.5)
        ax.axvline(e, color="tab:red", lw=0.5)
    ax.set_xticks((edges[:-1] + edges[1:]) / 2, [str(s) for s in largest], rotation=90, fontsize=6)
    ax.set_xlabel(f"postsynaptic neuron, by community (the {largest.size} largest marked with their sizes, then "
                  f"{connected.size - largest.size} smaller ones); {int(isolated.sum())} isolated nodes last",
                  fontsize=8)
    ax.set_ylabel("presynaptic neuron, same order", fontsize=8)
    inside, expected = modularity_terms(A, labels, directed, weighted)
    ax.set_title(_wrap(f"{title or 'adjacency by community'}: {connected.size} communities with edges; "
                       f"{inside:.1%} of edges inside communities against {expected:.1%} expected from the degrees "
                       f"alone, Q = {inside - expected:.3f}", 90), fontsize=9)
    return save_figure(fig, path)


def plot_structure(analysis: StructureAnalysis, counts: np.ndarray, edges: np.ndarray, out_dir, name: str,
                   suffix: str = "") -> list[Path]:
    """The four figures of one ``StructureAnalysis`` (with its baseline, when it has one): entries of G, degrees,
    modularity against edge count, adjacency by community."""
    out_dir = Path(out_dir)
    base, meta = analysis.baseline, analysis.baseline_meta
    label = f"{meta.get('kind', 'baseline')} (seed {meta['seed']})" if "seed" in meta else meta.get("kind", "baseline")
    point = analysis.point
    mod = point.result
    return [
        plot_entry_histogram(counts, edges, analysis.cuts, out_dir / f"entry_histogram{suffix}.png",
                             f"entries of {name}", analysis.circuit),
        plot_degrees(analysis.degrees, analysis.fits, out_dir / f"degrees{suffix}.png",
                     f"degrees of {name}, {analysis.circuit} circuit", analysis.beta,
                     (base.degrees, base.fits) if base is not None else None, label),
        plot_modularity_sweep(analysis.sweep, out_dir / f"modularity{suffix}.png", f"modularity of {name}",
                              point.edges, analysis.modularity_verdict(),
                              base.sweep if base is not None else None, label,
                              base.modularity_verdict() if base is not None else ""),
        plot_communities(analysis.graph, mod.labels, out_dir / f"communities{suffix}.png",
                         f"{name} by Louvain community", mod.directed, mod.weighted),
    ]
