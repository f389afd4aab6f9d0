"""Figures of a network run: activity raster, sparsity per layer, synapse traces; ``plot_run`` draws all three
from a run's recording (``bdh_graph.network.recordings``).

Time is in milliseconds on the run's clock (``bdh_graph.interop.clock.Clock``, default 10 ms per token); a
recording whose ``run`` names ``token_ms`` is drawn on that clock.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..interop.clock import Clock
from ..network.address import Synapse
from . import save_figure  # selects the Agg backend


def plot_run(recording, folder, title: str = "", clock: Clock | None = None) -> dict[str, Path]:
    """The figures of a run (a ``RunRecording``) in ``folder``: ``raster.png`` (y-neurons), ``sparsity.png`` and,
    when synapses were traced, ``synapses.png``; on ``clock`` (default: the recording's, else 10 ms per token).
    Returns the files by name."""
    folder = Path(folder)
    clock = clock or Clock(recording.run.get("token_ms") or Clock().token_ms)
    files = {"raster": plot_raster(recording, folder / "raster.png", title=title, clock=clock),
             "sparsity": plot_layer_sparsity(recording.sparsity_x, recording.sparsity_y, folder / "sparsity.png",
                                             title=f"{title}: sparsity" if title else "", clock=clock)}
    if recording.synapses:
        files["synapses"] = plot_synapse_traces(recording.synapses, recording.synapse_values, recording.config,
                                                folder / "synapses.png",
                                                title=f"{title}: synapse traces" if title else "", clock=clock)
    return files


def _time_label(clock: Clock) -> str:
    return f"time (ms; one token = {clock.token_ms:g} ms)"


def plot_raster(activity, path, which: str = "y", max_rows: int = 512, title: str = "",
                clock: Clock | None = None) -> Path:
    """Which neurons fired at which token (time in ms on ``clock``), one panel per layer (``title`` prefixes the
    description), from an ``ActivityMonitor`` or a ``RunRecording``. With more than ``max_rows`` neurons, each
    row is a block of neighbouring neurons, shaded by the fraction that fired."""
    clock = clock or Clock()
    layers, n = activity.layers, activity.config.n_neurons
    rows = min(n, max_rows)
    fig, axes = plt.subplots(len(layers), 1, figsize=(10, 2.2 * len(layers)), sharex=True, squeeze=False)
    for ax, layer in zip(axes[:, 0], layers):
        steps, neurons, _ = activity.raster(layer, which)
        T = len(activity.tokens)
        fired, _, _ = np.histogram2d(neurons, steps, bins=(rows, T), range=((0, n), (0, T)))
        ax.imshow(fired * rows / n, aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=1,
                  extent=(0, clock.duration_ms(T), 0, n), interpolation="nearest")
        ax.set_ylabel(f"layer {layer}\n{which}-neuron")
    axes[-1, 0].set_xlabel(_time_label(clock))
    block = "" if rows == n else f" (rows: blocks of {n // rows} neurons, shade: fraction firing)"
    label = f"{which}-neurons firing{block}"
    axes[0, 0].set_title(f"{title}: {label}" if title else label, fontsize=9)
    return save_figure(fig, path)


def plot_layer_sparsity(x, y, path, title: str = "", clock: Clock | None = None) -> Path:
    """Fraction of x- and y-neurons active, ``x`` and ``y`` (T, L): per layer (mean over tokens) and over time
    (ms on ``clock``, one value per token)."""
    clock = clock or Clock()
    x, y = np.asarray(x), np.asarray(y)
    time = clock.onset_ms(np.arange(len(y)))
    layers = np.arange(x.shape[1])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    left.bar(layers - 0.2, x.mean(0), width=0.4, label="x")
    left.bar(layers + 0.2, y.mean(0), width=0.4, label="y")
    left.set_xticks(layers)
    left.set_xlabel("layer")
    left.set_ylabel("fraction active (mean over tokens)")
    left.legend()
    for layer in layers:
        right.plot(time, y[:, layer], lw=0.8, drawstyle="steps-post", label=f"y, layer {layer}")
    right.set_xlabel(_time_label(clock))
    right.set_ylabel("fraction of y active")
    right.legend(fontsize=7)
    label = f"active on average: x {x.mean():.1%}, y {y.mean():.1%} of the neurons"
    fig.suptitle(f"{title}: {label}" if title else f"sparsity of the activity: {label}", fontsize=9)
    return save_figure(fig, path)


def plot_synapse_traces(synapses: list[Synapse], values, config, path, title: str = "",
                        clock: Clock | None = None) -> Path:
    """The state of each synapse after each token, ``values`` (T, P) for the P ``synapses`` (addresses, named in
    the legend with input neurons as bytes), at the end of each token in ms on ``clock``."""
    clock = clock or Clock()
    values = np.asarray(values).reshape(-1, len(synapses))
    time = clock.onset_ms(np.arange(1, len(values) + 1))
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for p, synapse in enumerate(synapses):
        ax.plot(time, values[:, p], lw=1.0, label=synapse.describe(config))
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xlabel(_time_label(clock))
    ax.set_ylabel("sigma (synapse state)")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title or "synapse traces", fontsize=9)
    return save_figure(fig, path)
