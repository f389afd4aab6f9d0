"""Figures of paired-associate recall (``bdh_graph.experiments.recall``), each stating its verdict in its title: the
capacity curve, capacity against the number of neurons, the forgetting curve, one trial's memory trace, and the
lesions."""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from . import save_figure  # selects the Agg backend

HOPFIELD = 0.138  # Hopfield's capacity, 0.138 n patterns for n binary neurons (Amit, Gutfreund, Sompolinsky 1985)


def _title(verdict: str, detail: str, width: int = 90) -> str:
    return f"{textwrap.fill(verdict, width)}\n({detail})"


def plot_recall(result, folder) -> dict[str, Path]:
    """The four figures of a ``RecallResult`` in ``folder``; returns the files by name."""
    folder = Path(folder)
    return {"capacity": plot_capacity(result.report, folder / "recall_capacity.png"),
            "forgetting": plot_forgetting(result.report, folder / "recall_forgetting.png"),
            "trace": plot_trace(result, folder / "recall_trace.png"),
            "lesion": plot_lesion(result.report, folder / "recall_lesion.png")}


def plot_capacity(report: dict, path) -> Path:
    """Accuracy against the pairs studied, with chance and the 90 % level."""
    curve = report["capacity"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([p["pairs"] for p in curve], [p["accuracy"] for p in curve], "o-", color="tab:blue",
            label="tensor model (equal to the network)")
    ax.axhline(report["chance"], color="tab:red", ls="--", label=f"chance ({report['chance']:.1%})")
    ax.axhline(0.9, color="grey", ls=":", label="90 %")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("pairs studied in a trial (P)")
    ax.set_ylabel("share of cues answered with the partner")
    ax.legend(fontsize=8)
    last = curve[-1]
    verdict = (f"capacity: up to {report['capacity_90']} pairs recalled at 90 % or better; "
               + (f"at {last['pairs']} pairs recall falls to {last['accuracy']:.0%}" if last["accuracy"] < 0.5
                  else f"still {last['accuracy']:.0%} at {last['pairs']} pairs, the most the encoding holds"))
    ax.set_title(_title(verdict, f"{report['trials']} trials per P, {report['distractors']} distractor bytes"),
                 fontsize=9)
    return save_figure(fig, path)


def plot_forgetting(report: dict, path) -> Path:
    """Accuracy against the bytes of unrelated text between study and cue."""
    curve = report["forgetting"]
    d = np.array([p["distractors"] for p in curve])
    acc = np.array([p["accuracy"] for p in curve])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(d, acc, "o-", color="tab:green")
    ax.axhline(report["chance"], color="tab:red", ls="--", label=f"chance ({report['chance']:.1%})")
    ax.set_xscale("symlog", linthresh=4)
    ax.set_xlim(0, d[-1] * 1.3)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("bytes of unrelated text between study and cue (D)")
    ax.set_ylabel("share of cues answered with the partner")
    ax.legend(fontsize=8)
    held = d[: np.argmax(acc < 0.9 * acc[0])] if (acc < 0.9 * acc[0]).any() else d
    verdict = (f"forgetting: recall holds (within 10 % of {acc[0]:.0%}) up to {held[-1]} bytes of text between study "
               f"and cue" + (f", then falls to {acc[-1]:.0%} at {d[-1]} bytes" if len(held) < len(d) else "")
               if len(held) else
               f"forgetting: recall falls from {acc[0]:.0%} at once, to {acc[-1]:.0%} at {d[-1]} bytes")
    ax.set_title(_title(verdict, f"{report['pairs']} pairs, {report['trials']} trials per point, tensor model"),
                 fontsize=9)
    return save_figure(fig, path)


def plot_trace(result, path) -> Path:
    """sigma of one trial's lesioned pair's strongest synapses after each token, the tokens under the axis and
    the trial's phases (study, distractors, cues) shaded."""
    trial, values, names = result.trial, result.trace_values, result.token_names
    T = len(names)
    fig, ax = plt.subplots(figsize=(max(8, 0.14 * T), 4.5))
    for column, address in enumerate(result.trace_addresses):
        ax.step(np.arange(T), values[:, column], where="post", label=address)
    study_end, cue_start = trial.pairs, trial.pairs + trial.distractors
    for lo, hi, colour, label in ((0, study_end, "tab:blue", "study"), (study_end, cue_start, "grey", "distractors"),
                                  (cue_start, T, "tab:orange", "cues and answers")):
        if hi > lo:
            ax.axvspan(lo - 0.5, hi - 0.5, color=colour, alpha=0.1, label=label)
    pair = result.report["lesioned_pairs"][0]
    ax.axvline(pair, color="k", lw=0.8)
    ax.set_xticks(np.arange(T))
    ax.set_xticklabels(names, rotation=90, fontsize=6, family="monospace")
    ax.set_xlim(-0.5, T - 0.5)
    ax.set_ylabel("sigma after the token")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="synapse LAYER:PRE:POST")
    moved = np.abs(values[-1] - values[pair]).max() / max(np.abs(values[pair]).max(), 1e-300)
    verdict = (f"the memory of pair {names[pair]} is written in one step, at its study, onto the synapses of its "
               f"input neuron; later tokens change them by at most {moved:.0%}")
    ax.set_title(_title(verdict, f"trial 1, its {len(result.trace_addresses)} strongest synapses of the pair"),
                 fontsize=9)
    return save_figure(fig, path)


def plot_lesion(report: dict, path) -> Path:
    """Recall of the lesioned pair and of the other pairs: intact, trace lesion, random lesion of the same size."""
    lesion = report["lesion"]
    kinds = ("intact", "trace", "random")
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(kinds))
    for offset, (field, colour) in zip((-0.2, 0.2), (("lesioned_pair", "tab:purple"), ("other_pairs", "tab:grey"))):
        heights = [lesion[k][field] or 0.0 for k in kinds]
        bars = ax.bar(x + offset, heights, 0.38, color=colour, label=field.replace("_", " "))
        ax.bar_label(bars, [f"{h:.0%}" for h in heights], fontsize=8)
    ax.axhline(report["chance"], color="tab:red", ls="--", label=f"chance ({report['chance']:.1%})")
    m = lesion["trace"]["synapses"]
    ax.set_xticks(x, ["intact", f"trace lesion\n({m} synapses)", f"random lesion\n({m} synapses)"])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share of cues answered with the partner")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(_title(report["verdicts"]["lesion"], f"{report['trials']} trials of {report['pairs']} pairs, one "
                        f"pair lesioned per trial, {report['network']['wiring']} network"), fontsize=9)
    return save_figure(fig, path)


def plot_capacity_sizes(sizes: list[dict], fit: dict, path) -> Path:
    """Capacity (largest P at 90 %) against the neurons n, log axes, with the fitted power law and Hopfield's
    0.138 n beside it."""
    n = np.array([s["neurons"] for s in sizes], float)
    cap = np.array([s["capacity_90"] for s in sizes], float)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(n, np.maximum(cap, 0.5), "o", color="tab:blue", label="BDH, one layer (capacity 0 drawn at 0.5)")
    grid = np.geomspace(n.min(), n.max(), 50)
    if fit.get("slope") is not None:
        ax.plot(grid, np.exp(fit["intercept"]) * grid ** fit["slope"], color="tab:blue", ls="--",
                label=f"fit: capacity ~ n^{fit['slope']:.2f}")
    ax.plot(grid, HOPFIELD * grid, color="grey", ls=":", label="Hopfield, 0.138 n (another memory)")
    if sizes and "ceiling" in sizes[0]:
        ax.axhline(sizes[0]["ceiling"], color="tab:red", ls="--", lw=0.8, label="the most pairs the encoding holds")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("neurons n")
    ax.set_ylabel("capacity: largest P recalled at 90 %")
    ax.legend(fontsize=7)
    zero = [int(a) for a, b in zip(n, cap) if b == 0]
    verdict = ("capacity grows with size as n^{:.2f}".format(fit["slope"]) if fit.get("slope") is not None
               else "too few sizes with a capacity above 0 and below the ceiling to fit a slope")
    if fit.get("at_ceiling"):
        verdict += (f"; n = {', '.join(map(str, fit['at_ceiling']))} recalled every P the encoding holds (capacity "
                    "at least the ceiling, left out of the fit)")
    if zero:
        verdict += (f"; n = {', '.join(map(str, zero))} never reached 90 % recall (not even of one pair) with the "
                    "same training")
    ax.set_title(_title(verdict, ", ".join(f"n = {int(a)}: {int(b)}" for a, b in zip(n, cap))), fontsize=9)
    return save_figure(fig, path)
