"""Figures of synapses and activity: a synapse's state token by token over a passage (the paper's "currency
synapse" figure), the held-out test of a concept synapse, and the sparsity of x and y."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..interpretability.monosemantic import ConceptSynapses, trace_passage
from ..interpretability.synapse_state import synapse_trace
from ..text import encode
from . import save_figure  # selects the Agg backend

MAX_TRACE_TOKENS = 1024  # beyond this the characters under the axis cannot be read


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


def plot_synapse_trace(values, tokens, path, title: str = "", spans: list[tuple[int, int]] | None = None) -> Path:
    """The synapse's state after each token, with the passage written under the x axis one byte per tick.

    ``values`` (T,) and ``tokens`` (T,) byte ids; ``spans`` are ``(start, end)`` token ranges to shade (for
    instance the concept words).
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
    for start, end in spans or []:
        ax.axvspan(start - 0.5, end - 0.5, color="tab:orange", alpha=0.2, lw=0)
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
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.boxplot(groups, showfliers=False, widths=0.5)
    jitter = np.random.default_rng(0)
    for k, (vals, colour) in enumerate(zip(groups, ("tab:orange", "tab:blue")), start=1):
        ax.scatter(k + jitter.uniform(-0.12, 0.12, len(vals)), vals, s=10, color=colour, alpha=0.7, zorder=3)
    ax.set_xticks([1, 2])
    ax.set_xticklabels([f"concept (n={len(groups[0])})", f"contrast (n={len(groups[1])})"])
    ax.set_ylabel("synapse state after the sentence")
    ax.set_title(title, fontsize=8)
    if stats_line:
        ax.text(0.02, 0.98, stats_line, transform=ax.transAxes, ha="left", va="top", fontsize=7)
    return save_figure(fig, path)


def plot_concept_synapse(model, found: ConceptSynapses, path, label: str) -> Path:
    """The best synapse of ``found`` (``found.best``) token by token over held-out sentences, contrast and concept
    sentences alternating, the concept sentences shaded; ``label`` names the concept in the title."""
    best = _best(found)
    text, spans = trace_passage(found.split)
    values = synapse_trace(model, text, best.synapse)
    title = (f"{label}: {best.synapse.describe(model.config)}\nheld-out U = {best.test.U:.0f} of "
             f"{best.test.n_concept * best.test.n_contrast}, p = {best.test.p:.2g}, rank-biserial "
             f"{best.test.rank_biserial:.2f}{' (significant)' if best.significant else ' (not significant)'}; "
             "shaded: concept sentences")
    return plot_synapse_trace(values, encode(text), path, title, spans)


def plot_concept_synapse_test(found: ConceptSynapses, config, path) -> Path:
    """The best synapse's values after each held-out concept and contrast sentence (``plot_concept_test``)."""
    best = _best(found)
    return plot_concept_test(best.test_concept_values, best.test_contrast_values, path,
                             best.synapse.describe(config),
                             f"U = {best.test.U:.0f}, p = {best.test.p:.2g}, r = {best.test.rank_biserial:.2f}")


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
