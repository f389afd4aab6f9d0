"""Figures of a spiking run (from ``monitors.SpikeMonitor``): spike rasters per layer, population rates.

Time is in milliseconds and rates in hertz on the run's clock (``bdh_graph.interop.clock.Clock``: each token
``token_ms`` long, split into K micro-steps; default 10 ms per token).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..interop.clock import Clock
from . import save_figure  # selects the Agg backend


def plot_spike_run(monitor, folder, title: str = "", clock: Clock | None = None) -> dict[str, Path]:
    """The figures of a spiking run in ``folder``: ``spike_raster.png`` (y-neurons) and ``population_rate.png``.
    Returns the files by name."""
    folder = Path(folder)
    return {"spike_raster": plot_spike_raster(monitor, folder / "spike_raster.png", title=title, clock=clock),
            "population_rate": plot_population_rate(monitor, folder / "population_rate.png",
                                                    title=f"{title}: population rates" if title else "",
                                                    clock=clock)}


def _window(monitor, tokens: int | None) -> int:
    T = len(monitor.tokens)
    return T if tokens is None else max(1, min(T, int(tokens)))


def plot_spike_raster(monitor, path, population: str = "y", tokens: int | None = 32, title: str = "",
                      clock: Clock | None = None) -> Path:
    """One dot per spike: time in ms (the middle of its micro-step on ``clock``) against neuron id, one panel per
    recorded layer, over the first ``tokens`` tokens (None: all). Grey lines mark the token boundaries."""
    clock = clock or Clock()
    T, K = _window(monitor, tokens), monitor.spike_steps
    layers = monitor.layers
    fig, axes = plt.subplots(len(layers), 1, figsize=(10, 2.2 * len(layers)), sharex=True, squeeze=False)
    for ax, layer in zip(axes[:, 0], layers):
        token, step, neuron = monitor.spikes(layer, population)
        keep = token < T
        ax.scatter(clock.spike_ms(token[keep], step[keep] + 0.5, K), neuron[keep], s=0.4, c="k", marker=".",
                   linewidths=0, rasterized=True)
        for t in range(1, T):
            ax.axvline(clock.onset_ms(t), color="0.85", lw=0.4, zorder=0)
        ax.set_xlim(0, clock.duration_ms(T))
        ax.set_ylim(0, monitor.config.n_neurons)
        ax.set_ylabel(f"layer {layer}\n{population}-neuron")
    axes[-1, 0].set_xlabel(f"time (ms): one token = {clock.token_ms:g} ms (grey lines), split into K = {K} "
                           f"micro-steps of {clock.step_ms(K):g} ms")
    label = f"{population}-neuron spikes, first {T} tokens ({clock.duration_ms(T):g} ms)"
    axes[0, 0].set_title(f"{title}: {label}" if title else label, fontsize=9)
    return save_figure(fig, path)


def plot_population_rate(monitor, path, tokens: int | None = 32, title: str = "", clock: Clock | None = None) -> Path:
    """Mean firing rate per neuron (Hz on ``clock``) of the x- and y-neurons at each micro-step, per layer, over
    the first ``tokens``; the legend gives each layer's mean over the whole run."""
    clock = clock or Clock()
    T, K = _window(monitor, tokens), monitor.spike_steps
    fig, axes = plt.subplots(len(monitor.populations), 1, figsize=(10, 2.6 * len(monitor.populations)),
                             sharex=True, squeeze=False)
    time = clock.spike_ms(np.arange(T * K) // K, np.arange(T * K) % K + 0.5, K)
    means = {}
    for ax, population in zip(axes[:, 0], monitor.populations):
        for layer in monitor.layers:
            rate = clock.rate_hz(monitor.population_rate(layer, population), K)  # (tokens, K)
            means[population, layer] = float(rate.mean())
            ax.plot(time, rate[:T].ravel(), lw=0.7, label=f"layer {layer}: mean {means[population, layer]:.3g} Hz")
        ax.set_ylabel(f"{population}: rate per\nneuron (Hz)")
        ax.legend(fontsize=7, ncol=len(monitor.layers))
    axes[-1, 0].set_xlabel(f"time (ms): one token = {clock.token_ms:g} ms, K = {K} micro-steps of "
                           f"{clock.step_ms(K):g} ms")
    overall = ", ".join(f"{p} {np.mean([v for (q, _), v in means.items() if q == p]):.3g} Hz"
                        for p in monitor.populations)
    label = f"mean rate per neuron over the run: {overall}"
    axes[0, 0].set_title(f"{title}: {label}" if title else f"population rates: {label}", fontsize=9)
    return save_figure(fig, path)
