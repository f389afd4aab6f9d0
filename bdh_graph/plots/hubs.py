"""Figures of what the hub neurons do (``bdh_graph.experiments.hubs``), verdicts in the titles: each neuron's
firing rate against its in- and out-degree, and bits per byte with the highest-degree neurons silenced beside
random draws."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..experiments.hubs import HubResult
from . import save_figure

POOL_COLOURS = {"head": "tab:grey", "core": "tab:blue"}


def plot_hubs(result: HubResult, out_dir) -> dict[str, Path]:
    """``hub_rates.png`` and ``hub_lesion.png`` in ``out_dir``; returns their paths by name."""
    out = Path(out_dir)
    files = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    rate = result.rates["x"]
    for ax, degree in zip(axes, ("in", "out")):
        k = result.degrees[degree]
        ax.scatter(k, rate, s=8, alpha=0.5, color="tab:red")
        c = result.correlations["x"][degree]
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel(f"{degree}-degree in G_x (0 = no edge)")
        ax.set_title(f"Spearman rho = {c['rho']:+.3f} (p = {c['p']:.2g})", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("x rate, mean over tokens and layers")
    fig.suptitle("\n".join(textwrap.wrap(f"G_x head {result.head}, {result.graph['nodes']} neurons over "
                                         f"{result.n_bytes} bytes: {result.rate_verdict()}", 120)), fontsize=9, y=1.0,
                 va="bottom")
    files["rates"] = save_figure(fig, out / "hub_rates.png")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    positions = np.arange(len(result.lesions))
    ax.axhline(result.no_lesion, color="black", ls=":", label=f"no neuron silenced ({result.no_lesion:.3f})")
    ax.plot(positions, [lesion["hubs"]["bits_per_byte"] for lesion in result.lesions], "D", color="tab:red",
            ms=9, label="the k highest-degree neurons")
    for offset, (pool, colour) in zip((-0.15, 0.15), POOL_COLOURS.items()):
        label = f"k random neurons of the {pool}"
        for x, lesion in zip(positions, result.lesions):
            draws = lesion["random"][pool]
            if isinstance(draws, str):
                continue
            ax.plot(np.full(len(draws), x + offset), [d["bits_per_byte"] for d in draws], "o", color=colour,
                    alpha=0.7, label=label)
            label = None
    ax.set_xticks(positions, [f"k = {lesion['k']}" for lesion in result.lesions])
    ax.set_xlim(-0.6, len(positions) - 0.4)
    ax.set_ylabel("bits per byte")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    verdicts = "; ".join(result.lesion_verdict(lesion) for lesion in result.lesions)
    fig.suptitle("\n".join(textwrap.wrap(f"Rich-club lesion, G_x head {result.head}: {verdicts}", 110)), fontsize=8,
                 y=1.0, va="bottom")
    files["lesion"] = save_figure(fig, out / "hub_lesion.png")
    return files


__all__ = ["plot_hubs"]
