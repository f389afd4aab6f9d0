"""Figures of a training run's series (``bdh_graph.experiments.emergence``), each against the training step with
its verdict in the title: the degree spread, the power-law fits, Q beside the three nulls, the loss and the
working memory; and the same figures against the number of neurons over a ladder of runs (``plot_size_ladder``)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..experiments.emergence import EmergenceResult, SizeLadder
from . import save_figure
from .structure import NULL_COLOURS, NULL_LABELS

DEGREE_COLOURS = {"in": "tab:red", "out": "tab:blue"}


def _title(fig, text: str) -> None:
    fig.suptitle("\n".join(textwrap.wrap(text, 120)), fontsize=9, y=1.0, va="bottom")


def _beside_nulls(ax, x, points: list[dict], graph: str, nulls: str) -> None:
    """``point["modularity"][graph]`` of each point (snapshot figures) against ``x`` in black, and beside it each
    null's ``point["modularity"][nulls][name]``, dashed in the null's colour; for Q, where a point has null draws,
    their mean +- one standard deviation as a bar in the null's colour."""
    ax.plot(x, [p["modularity"][graph] for p in points], "o-", color="black", lw=2, label="this graph")
    for name, label in NULL_LABELS.items():
        if name in points[0]["modularity"][nulls]:
            ax.plot(x, [p["modularity"][nulls][name] for p in points], "s--", color=NULL_COLOURS[name],
                    label=f"null: {label}")
            drawn = [(at, p["modularity"]["null_draws"]["nulls"][name]) for at, p in zip(x, points)
                     if graph == "Q" and "null_draws" in p["modularity"]]
            if drawn:
                ax.errorbar([at for at, _ in drawn], [d["mean"] for _, d in drawn], [d["sd"] for _, d in drawn],
                            fmt="_", ms=10, capsize=3, color=NULL_COLOURS[name],
                            label=f"{label}: mean +- sd of its draws")


def _steps_axis(ax, steps) -> None:
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)
    if len(steps) <= 12:
        ax.set_xticks(steps)


def plot_emergence(result: EmergenceResult, out_dir) -> dict[str, Path]:
    """Four figures in ``out_dir``: ``emergence_degrees.png``, ``emergence_power_law.png``,
    ``emergence_modularity.png``, ``emergence_loss.png``; returns their paths by name."""
    out = Path(out_dir)
    series, steps = result.snapshots, np.array(result.steps)
    head = result.options["head"]
    files = {}

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    nodes = series[-1]["graph"]["nodes"]
    for k, colour in DEGREE_COLOURS.items():
        for ax, key, label in zip(axes, ("cv", "max", "zero_degree"),
                                  ("coefficient of variation (std / mean)", "maximum degree",
                                   f"nodes without an edge (of {nodes})")):
            ax.plot(steps, [s["degrees"][k][key] for s in series], "o-", color=colour, label=f"{k}-degree")
            ax.set_ylabel(label)
    for ax in axes:
        _steps_axis(ax, steps)
    axes[0].legend(fontsize=8)
    _title(fig, f"G_x head {head}: {result.degree_verdict()}")
    files["degrees"] = save_figure(fig, out / "emergence_degrees.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, colour in DEGREE_COLOURS.items():
        fits = [s["power_law"][k] for s in series]
        fitted = [(step, f) for step, f in zip(steps, fits) if "alpha" in f]
        if fitted:
            x, f = zip(*fitted)
            axes[0].plot(x, [g["alpha"] for g in f], "-", color=colour, alpha=0.5)
            for plausible, marker in ((True, "o"), (False, "x")):
                chosen = [(s, g) for s, g in fitted if g["plausible"] == plausible]
                if chosen:
                    axes[0].plot([s for s, _ in chosen], [g["alpha"] for _, g in chosen], marker, color=colour,
                                 label=f"{k}-degree, power law {'plausible' if plausible else 'ruled out or doubtful'}")
                    axes[1].plot([s for s, _ in chosen], [g["x_min"] for _, g in chosen], marker, color=colour)
            axes[1].plot(x, [g["x_min"] for g in f], "-", color=colour, alpha=0.5)
    axes[0].set_ylabel("alpha (CSN maximum likelihood)")
    axes[1].set_ylabel("x_min (KS-chosen start of the tail)")
    for ax in axes:
        _steps_axis(ax, steps)
    axes[0].legend(fontsize=7)
    _title(fig, f"G_x head {head}: {result.power_law_verdict()}")
    files["power_law"] = save_figure(fig, out / "emergence_power_law.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    _beside_nulls(axes[0], steps, series, "Q", "nulls")
    _beside_nulls(axes[1], steps, series, "largest_component_share", "nulls_largest_component_share")
    axes[0].set_ylabel("Newman's Q (Louvain, best of seeds)")
    axes[1].set_ylabel("share of nodes in the largest component")
    axes[1].set_ylim(0, 1.05)
    for ax in axes:
        _steps_axis(ax, steps)
    axes[0].legend(fontsize=7)
    _title(fig, f"G_x head {head}, same nodes and edges in every null: {result.modularity_verdict()}")
    files["modularity"] = save_figure(fig, out / "emergence_modularity.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [s["bits_per_byte"] for s in series], "o-", color="black", label="held-out (tensor model)")
    ax.plot(steps, [s["memory"]["full"] for s in series], ".", color="tab:green",
            label="network, synapses as they are")
    ax.plot(steps, [s["memory"]["no_memory"] for s in series], "s--", color="tab:orange",
            label="network, synapses erased before every token")
    ax.set_ylabel(f"bits per byte over {result.options['bytes']} held-out bytes")
    _steps_axis(ax, steps)
    ax.legend(fontsize=8)
    _title(fig, result.loss_verdict())
    files["loss"] = save_figure(fig, out / "emergence_loss.png")
    return files


def plot_size_ladder(ladder: SizeLadder, out_dir) -> dict[str, Path]:
    """``emergence_sizes.png`` in ``out_dir``: the degree spread, the nodes without an edge, Q beside the three
    nulls and the held-out loss of each run's last snapshot against the neurons per head n (log axis), the
    ladder's verdicts in the title; returns its path by name."""
    rungs, n = ladder.rungs, np.array(ladder.neurons)
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.9))
    fig.subplots_adjust(wspace=0.38)
    for k, colour in DEGREE_COLOURS.items():
        axes[0].plot(n, [r["degrees"][k]["cv"] for r in rungs], "o-", color=colour, label=f"{k}-degree")
        axes[1].plot(n, [r["degrees"][k]["zero_degree"] / r["neurons"] for r in rungs], "o-", color=colour,
                     label=f"{k}-degree")
        for r in rungs:  # a plausible power law is ringed
            if r["power_law"][k].get("plausible"):
                axes[0].plot(r["neurons"], r["degrees"][k]["cv"], "o", ms=12, mfc="none", color=colour)
    axes[0].set_ylabel("coefficient of variation (std / mean)\n(ringed: power law plausible)")
    axes[1].set_ylabel("share of nodes without an edge")
    axes[1].set_ylim(0, 1.05)
    _beside_nulls(axes[2], n, rungs, "Q", "nulls")
    axes[2].set_ylabel("Newman's Q (Louvain, best of seeds)")
    axes[3].plot(n, [r["bits_per_byte"] for r in rungs], "o-", color="black")
    axes[3].set_ylabel(f"held-out bits per byte ({ladder.options['bytes']} bytes)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(n, [str(v) for v in n])
        ax.minorticks_off()
        ax.set_xlabel("neurons per head n")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=7)
    steps = sorted({r["step"] for r in rungs})
    _title(fig, f"G_x head {ladder.options['head']}, the last snapshot of each run (step "
                f"{', '.join(map(str, steps))}): " + "; ".join(ladder.verdicts().values()))
    return {"sizes": save_figure(fig, Path(out_dir) / "emergence_sizes.png")}


__all__ = ["plot_emergence", "plot_size_ladder"]
