"""Figures of synapses and activity: a synapse's state token by token over a passage (the paper's "currency
synapse" figure), the held-out test of a concept synapse, and the sparsity of x and y."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..interpretability.monosemantic import ConceptSynapses, held_out_traces
from ..text import encode
from . import save_figure  # selects the Agg backend

MAX_TRACE_TOKENS = 1024  # beyond this the characters under the axis cannot be read
CONCEPT_COLOUR, CONTRAST_COLOUR = "tab:orange", "tab:blue"


def token_labels(tokens) -> list[str]:
    """One label per byte token: printable ASCII as itself, space as '␣', newline as '⏎', other bytes as hex."""
    labels = []
    for t in (int(t) for t in tokens):
        if t == 32:
            labels.append("␣")
        elif t == 10:
            labels.append("⏎")
        elif 33 <= t < 127:
            labels.append(chr(t))
        else:
            labels.append(f"{t:02x}")
    return labels


def plot_synapse_trace(values, tokens, path, title: str = "") -> Path:
    """The synapse's state after each token, with the passage written under the x axis one byte per tick.

    ``values`` (T,) and ``tokens`` (T,) byte ids.
    """
    values = np.asarray(values, dtype=float).reshape(-1)
    labels = token_labels(tokens)
    if len(values) != len(labels) or len(values) == 0:
        raise ValueError(f"values ({len(values)}) and tokens ({len(labels)}) must have the same non-zero length")
    if len(values) > MAX_TRACE_TOKENS:
        raise ValueError(f"passage has {len(values)} tokens; the trace figure writes one character per token and "
                         f"takes at most {MAX_TRACE_TOKENS}")
    T = len(values)
    fig, ax = plt.subplots(figsize=(min(max(6.0, 0.13 * T), 160.0), 3.2))
    ax.step(np.arange(T), values, where="mid", color="tab:blue", lw=1.4)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xlim(-0.5, T - 0.5)
    ax.set_xticks(np.arange(T))
    ax.set_xticklabels(labels, fontsize=7, family="monospace")
    ax.tick_params(axis="x", length=0)
    ax.set_ylabel("synapse state after token")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def plot_concept_test(concept_values, contrast_values, path, title: str = "", stats_line: str = "") -> Path:
    """The held-out values of one synapse after concept and after contrast sentences, side by side."""
    groups = [np.asarray(concept_values, float), np.asarray(contrast_values, float)]
    fig, ax = plt.subplots(figsize=(5.0, 4.0))
    ax.boxplot(groups, showfliers=False, widths=0.5)
    jitter = np.random.default_rng(0)
    for k, (vals, colour) in enumerate(zip(groups, (CONCEPT_COLOUR, CONTRAST_COLOUR)), start=1):
        ax.scatter(k + jitter.uniform(-0.12, 0.12, len(vals)), vals, s=10, color=colour, alpha=0.7, zorder=3)
    ax.set_xticks([1, 2])
    ax.set_xticklabels([f"concept (n={len(groups[0])})", f"contrast (n={len(groups[1])})"])
    ax.set_ylabel("synapse state after the sentence")
    ax.set_title(title, fontsize=8)
    if stats_line:
        ax.text(0.02, 0.98, stats_line, transform=ax.transAxes, ha="left", va="top", fontsize=7)
    return save_figure(fig, path)


def plot_concept_synapse(model, found: ConceptSynapses, path, label: str, per_set: int = 3) -> Path:
    """The best synapse of ``found`` as its held-out test sees it: ``per_set`` held-out concept and contrast
    sentences (``held_out_traces``), one row each, every sentence read alone from a zero state; the dot at the end
    of a row is the state after the sentence, the value the Mann-Whitney test ranks. ``label`` names the concept."""
    best = _best(found)
    traces = held_out_traces(model, found, per_set)
    width = max(len(t.values) for t in traces)
    fig, axes = plt.subplots(len(traces), 1, sharey=True, squeeze=False, layout="constrained",
                             figsize=(min(max(6.0, 0.11 * width + 1.8), 12.0), 0.8 * len(traces) + 1.5))
    for ax, trace in zip(axes[:, 0], traces):
        colour = CONCEPT_COLOUR if trace.concept else CONTRAST_COLOUR
        T, end = len(trace.values), trace.values[-1]
        ax.step(np.arange(T), trace.values, where="mid", color=colour, lw=1.3)
        ax.plot(T - 1, end, "o", color=colour, ms=5, zorder=3)
        ax.annotate(f"{end:.3g}", (T - 1, end), xytext=(6, 0), textcoords="offset points", va="center", fontsize=7,
                    color=colour)
        ax.axhline(0, color="0.7", lw=0.6)
        ax.set_xlim(-0.5, width + 3.5)  # the same scale per byte in every row, room for the end value
        ax.set_xticks(np.arange(T))
        ax.set_xticklabels(token_labels(encode(trace.sentence)), fontsize=7, family="monospace")
        ax.tick_params(axis="x", length=0)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel("concept" if trace.concept else "contrast", color=colour, fontsize=8)
    low, high = axes[0, 0].get_ylim()
    axes[0, 0].set_ylim(low, high + 0.1 * (high - low))  # room for the end values (the rows share y)
    fig.suptitle(f"{label}: {best.synapse.describe(model.config)}\n"
                 f"{per_set} held-out concept and {per_set} contrast sentences, each read from a zero state as the "
                 "test reads them;\nthe dot is the state after the sentence, the value the test ranks\n"
                 + ";\n".join(_verdict(found)), fontsize=8)
    fig.supylabel("synapse state after each byte", fontsize=8)
    return save_figure(fig, path)


def plot_concept_synapse_test(found: ConceptSynapses, config, path, label: str = "") -> Path:
    """The best synapse's values after each held-out concept and contrast sentence (``plot_concept_test``), the
    verdict of its one-sided Mann-Whitney U test in the title."""
    best = _best(found)
    numbers, verdict = _verdict(found)
    return plot_concept_test(best.test_concept_values, best.test_contrast_values, path,
                             f"{label + ': ' if label else ''}{best.synapse.describe(config)}\n{verdict}", numbers)


def _verdict(found: ConceptSynapses) -> tuple[str, str]:
    """The held-out test of the best synapse: its numbers (U, p, rank-biserial r) and its verdict (Bonferroni)."""
    best = found.best
    n_c, n_k = best.test.n_concept, best.test.n_contrast
    numbers = (f"held out, {n_c} vs {n_k} sentences: U = {best.test.U:.0f} of {n_c * n_k}, p = {best.test.p:.2g}, "
               f"r = {best.test.rank_biserial:.2f}")
    verdict = (f"{'significant' if best.significant else 'not significant'} at alpha = {found.alpha:g} after "
               f"Bonferroni x{len(found.synapses)} (p = {best.p_bonferroni:.2g})")
    return numbers, verdict


def _best(found: ConceptSynapses):
    if found.best is None:
        raise ValueError("no concept synapse was reported (found.synapses is empty): there is nothing to draw")
    return found.best


def plot_sparsity(stats, path, title: str = "") -> Path:
    """Active fraction of x and y per layer, and the distribution of the neurons' lifetime sparseness."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    L = len(stats.active["x"])
    for k, (which, colour) in enumerate((("x", "tab:blue"), ("y", "tab:red"))):
        ax1.bar(np.arange(L) + 0.2 * (2 * k - 1), 100 * stats.active[which], width=0.4, color=colour, label=which)
        sel = stats.selectivity[which]
        ax2.hist(sel[np.isfinite(sel)], bins=40, range=(0, 1), histtype="step", color=colour, label=which)
    ax1.set_xticks(np.arange(L))
    ax1.set_xlabel("layer")
    ax1.set_ylabel("% of neurons active per token")
    ax1.legend()
    ax2.set_xlabel("lifetime sparseness (0: responds to every token, 1: to one)")
    ax2.set_ylabel("neurons (all layers)")
    ax2.legend()
    fig.suptitle(title or f"sparsity over {stats.tokens} tokens", fontsize=9)
    return save_figure(fig, path)
