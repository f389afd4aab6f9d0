"""Figures of working memory, each stating its verdict in its title: bits per byte by position in a long text
(``bdh_graph.model.evaluation``), and the experiments of ``bdh_graph.experiments.memory``: the memory horizon (bits
per byte against the forgetting time constant), the per-byte loss along the text, and the lesions."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..model.evaluation import HOLDS_WITHIN, position_verdict
from . import save_figure  # selects the Agg backend
from .synapses import token_labels

BYTES_PER_ROW = 128  # the per-byte figure writes the text under its axis, this many bytes a panel
MAX_ROWS = 16  # and shows at most this many panels (the first 2048 bytes)
FULL, NONE, FORGETTING, TENSOR = "tab:blue", "tab:red", "tab:green", "black"


def _title(verdict: str, detail: str, width: int = 90) -> str:
    """The verdict, wrapped to the figure, then the detail in brackets."""
    return f"{textwrap.fill(verdict, width)}\n({detail})"


def plot_memory(result, folder) -> dict[str, Path]:
    """The three figures of a ``MemoryResult`` in ``folder``: ``memory_horizon.png``, ``memory_per_byte.png``,
    ``memory_lesions.png`` (when lesions were run). Returns the files by name."""
    folder = Path(folder)
    files = {"horizon": plot_horizon(result, folder / "memory_horizon.png"),
             "per_byte": plot_per_byte(result, folder / "memory_per_byte.png")}
    if result.lesions:
        files["lesions"] = plot_lesions(result, folder / "memory_lesions.png")
    return files


def plot_bits_by_position(result: dict, path, frequencies: float | None = None, detail: str = "") -> Path:
    """Bits per byte in each position bucket of a ``bits_per_byte_by_position`` result, as steps over a log axis of
    position, with the band where memory "holds" (``HOLDS_WITHIN`` above the first bucket) and, if given, the
    level of byte ``frequencies`` alone (no context)."""
    edges, bits = result["edges"], result["bits_per_byte"]
    fig, ax = plt.subplots(figsize=(8, 4))
    left = [max(e, 1) for e in edges[:-1]]  # position 0 predicts nothing; a log axis starts at byte 1
    ax.stairs(bits, [left[0], *edges[1:]], color=FULL, lw=2, baseline=None, label="model")
    for lo, hi, b in zip(left, edges[1:], bits):
        ax.text((lo * hi) ** 0.5, b, f"{b:.2f}", ha="center", va="bottom", fontsize=8)
    ax.axhspan(bits[0], bits[0] + HOLDS_WITHIN, color=FULL, alpha=0.12,
               label=f"within {HOLDS_WITHIN} bits of the first bucket")
    if frequencies is not None:
        ax.axhline(frequencies, color=NONE, ls="--", label=f"byte frequencies alone ({frequencies:.2f})")
    ax.set_xscale("log")
    ax.set_xlim(1, edges[-1])
    ax.set_xlabel("position of the predicted byte in the text (bytes read from a zero synaptic state)")
    ax.set_ylabel("bits per byte")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    segments = f"{result['segments']} segments of {edges[-1]} bytes"
    ax.set_title(_title(position_verdict(result), f"{segments}{'; ' + detail if detail else ''}"), fontsize=9)
    return save_figure(fig, path)


def plot_horizon(result, path) -> Path:
    """Bits per byte against the forgetting time constant tau (log axis), with the full- and no-memory levels;
    the tensor model's figures as crosses."""
    taus = [r.spec["time_constant"] for r in result.horizon]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(taus, [r.bits_per_byte for r in result.horizon], "o-", color=FORGETTING, label="forgetting, network")
    if result.full.tensor_bits is not None:
        ax.plot(taus, [r.tensor_bits_per_byte for r in result.horizon], "x", color=TENSOR, ms=8,
                label="tensor model")
    ax.axhline(result.full.bits_per_byte, color=FULL, ls="--", label=f"full memory ({result.full.bits_per_byte:.2f})")
    ax.axhline(result.no_memory.bits_per_byte, color=NONE, ls="--",
               label=f"no memory ({result.no_memory.bits_per_byte:.2f})")
    span = result.memory_span()
    if span is not None:
        ax.axvline(span, color="0.5", lw=0.8, ls=":", label=f"half the benefit, tau = {span:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("forgetting time constant tau (tokens): sigma <- exp(-1/tau) sigma before each read")
    ax.set_ylabel("bits per byte")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside: the levels span the whole axis
    ax.set_title(_title(result.horizon_verdict(), f"{len(result.tokens)} bytes, {result.network['wiring']} network"),
                 fontsize=9)
    return save_figure(fig, path)


def plot_per_byte(result, path) -> Path:
    """The loss of each prediction along the text for full memory, no memory and a middle tau, the text written
    under the axis (the byte predicted), in panels of ``BYTES_PER_ROW`` bytes."""
    middle = result.middle()
    targets = result.tokens[1:]  # the loss at t is that of predicting byte t+1
    shown = min(len(targets), BYTES_PER_ROW * MAX_ROWS)
    rows = -(-shown // BYTES_PER_ROW)
    fig, axes = plt.subplots(rows, 1, figsize=(16, 1.9 * rows + 0.6), squeeze=False)
    curves = ((result.full.bits, FULL, "full memory"), (result.no_memory.bits, NONE, "no memory"),
              (middle.bits, FORGETTING, f"tau = {middle.spec['time_constant']:g}"))
    top = max(float(np.max(bits[:shown])) for bits, _, _ in curves)
    for row, ax in enumerate(axes[:, 0]):
        lo, hi = row * BYTES_PER_ROW, min((row + 1) * BYTES_PER_ROW, shown)
        x = np.arange(lo, hi)
        for bits, color, label in curves:
            ax.plot(x, bits[lo:hi], color=color, lw=0.9, label=label)
        ax.set_xlim(lo - 0.5, lo + BYTES_PER_ROW - 0.5)
        ax.set_ylim(0, top * 1.05)
        ax.set_xticks(x)
        ax.set_xticklabels(token_labels(targets[lo:hi]), fontsize=6, family="monospace")
        ax.tick_params(axis="x", length=0)
        ax.set_ylabel(f"bits\n(bytes {lo + 2}..{hi + 1})", fontsize=7)
    axes[0, 0].legend(fontsize=7, ncol=3, loc="upper right")
    cut = "" if shown == len(targets) else f"; the first {shown} of {len(targets)} predictions shown"
    axes[0, 0].set_title(_title(result.per_byte_verdict(),
                                f"loss of predicting each byte written under the axis{cut}", 160), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_lesions(result, path) -> Path:
    """Bits per byte with each lesion, as bars, beside the full- and no-memory levels; the tensor model's figures
    as crosses where it has the lesion."""
    labels = [r.label for r in result.lesions]
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(labels) + 1.6))
    ax.barh(y, [r.bits_per_byte for r in result.lesions], color="tab:gray", label="network")
    tensor = [(i, r.tensor_bits_per_byte) for i, r in enumerate(result.lesions) if r.tensor_bits is not None]
    if tensor:
        ax.plot([v for _, v in tensor], [i for i, _ in tensor], "x", color=TENSOR, ms=8, label="tensor model")
    ax.axvline(result.full.bits_per_byte, color=FULL, ls="--", label=f"full memory ({result.full.bits_per_byte:.2f})")
    ax.axvline(result.no_memory.bits_per_byte, color=NONE, ls="--",
               label=f"no memory ({result.no_memory.bits_per_byte:.2f})")
    ax.set_yticks(y)
    ax.set_yticklabels([f"erased: {label}" for label in labels], fontsize=8)
    ax.invert_yaxis()
    values = [r.bits_per_byte for r in result.lesions] + [result.full.bits_per_byte, result.no_memory.bits_per_byte]
    spread = max(values) - min(values)
    ax.set_xlim(max(0.0, min(values) - 0.2 * spread - 0.05), max(values) + 0.2 * spread + 0.05)
    ax.set_xlabel("bits per byte")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(_title(result.lesion_verdict(), f"{len(result.tokens)} bytes, {result.network['wiring']} network"),
                 fontsize=9)
    return save_figure(fig, path)
