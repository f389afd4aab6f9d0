"""Figures of a spiking run (from ``monitors.SpikeMonitor``): spike rasters per layer, population rates."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from . import save_figure  # selects the Agg backend


def plot_spike_run(monitor, folder, title: str = "") -> dict[str, Path]:
    """The figures of a spiking run in ``folder``: ``spike_raster.png`` (y-neurons) and ``population_rate.png``.
    Returns the files by name."""
    folder = Path(folder)
    return {"spike_raster": plot_spike_raster(monitor, folder / "spike_raster.png", title=title),
            "population_rate": plot_population_rate(monitor, folder / "population_rate.png",
                                                    title=f"{title}: population rates" if title else "")}


def _window(monitor, tokens: int | None) -> int:
    T = len(monitor.tokens)
    return T if tokens is None else max(1, min(T, int(tokens)))


def plot_spike_raster(monitor, path, population: str = "y", tokens: int | None = 32, title: str = "") -> Path:
    """One dot per spike: time (token + micro-step / K) against neuron id, one panel per recorded layer, over the
    first ``tokens`` tokens (None: all). Grey lines mark the token boundaries."""
    T, K = _window(monitor, tokens), monitor.spike_steps
    layers = monitor.layers
    fig, axes = plt.subplots(len(layers), 1, figsize=(10, 2.2 * len(layers)), sharex=True, squeeze=False)
    for ax, layer in zip(axes[:, 0], layers):
        token, step, neuron = monitor.spikes(layer, population)
        keep = token < T
        ax.scatter(token[keep] + (step[keep] + 0.5) / K, neuron[keep], s=0.4, c="k", marker=".", linewidths=0,
                   rasterized=True)
        for t in range(1, T):
            ax.axvline(t, color="0.85", lw=0.4, zorder=0)
        ax.set_xlim(0, T)
        ax.set_ylim(0, monitor.config.n_neurons)
        ax.set_ylabel(f"layer {layer}\n{population}-neuron")
    axes[-1, 0].set_xlabel(f"token (each split into K = {K} micro-steps)")
    label = f"{population}-neuron spikes, first {T} tokens"
    axes[0, 0].set_title(f"{title}: {label}" if title else label, fontsize=9)
    return save_figure(fig, path)


def plot_population_rate(monitor, path, tokens: int | None = 32, title: str = "") -> Path:
    """Fraction of the x- and y-neurons firing at each micro-step, per layer, over the first ``tokens``."""
    T, K = _window(monitor, tokens), monitor.spike_steps
    fig, axes = plt.subplots(len(monitor.populations), 1, figsize=(10, 2.6 * len(monitor.populations)),
                             sharex=True, squeeze=False)
    time = np.arange(T * K) / K
    for ax, population in zip(axes[:, 0], monitor.populations):
        for layer in monitor.layers:
            rate = monitor.population_rate(layer, population)[:T].ravel()
            ax.plot(time, rate, lw=0.7, label=f"layer {layer}")
        ax.set_ylabel(f"{population}: fraction\nfiring per micro-step")
        ax.legend(fontsize=7, ncol=len(monitor.layers))
    axes[-1, 0].set_xlabel(f"token (each split into K = {K} micro-steps)")
    axes[0, 0].set_title(title or "population rates", fontsize=9)
    return save_figure(fig, path)
