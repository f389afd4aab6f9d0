"""Sparsity of the neuron activity of a model over a text (the paper's section 5): how many x and y neurons fire
per token, and how selective each neuron is.

For layer l and neuron i over the T tokens of a text, with activity r_t = x_t[i] (or y_t[i]) >= 0:

- active fraction of the layer: ``mean_t mean_i [r_t > 0]`` (the paper: about 5% of y non-zero in trained
  models, x denser);
- firing rate of the neuron: ``f_i = mean_t [r_t > 0]``;
- lifetime sparseness (selectivity) of the neuron, Treves-Rolls in the normalised form of Vinje & Gallant
  (Science 2000): ``S_i = (1 - (mean_t r_t)^2 / mean_t r_t^2) / (1 - 1/T)``; 0 when the neuron responds equally to
  every token, 1 when it responds to a single token; undefined (NaN) for a neuron that never fires.

Texts longer than the context run in consecutive windows of ``window`` tokens, each from a zero state (as in
training).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .synapse_state import DEFAULT_MAX_TOKENS, layer_activity
from ..text import encode

WHICH = ("x", "y")


@dataclass
class Sparsity:
    """Activity statistics per layer (arrays (L,)) and per layer and neuron (arrays (L, n)) over ``tokens`` tokens."""

    tokens: int
    active: dict[str, np.ndarray]  # "x", "y": fraction of entries > 0 per layer, (L,)
    rate: dict[str, np.ndarray]  # firing rate per neuron, (L, n)
    selectivity: dict[str, np.ndarray]  # lifetime sparseness per neuron, (L, n), NaN if silent

    def to_dict(self) -> dict:
        out = {"tokens": self.tokens}
        for which in WHICH:
            sel = self.selectivity[which]
            out[which] = {
                "active_fraction_per_layer": self.active[which].tolist(),
                "silent_neurons_per_layer": (self.rate[which] == 0).sum(1).tolist(),
                "median_selectivity_per_layer": [float(np.nanmedian(s)) if np.isfinite(s).any() else None
                                                 for s in sel],
            }
        return out

    def summary(self) -> str:
        per_layer = {w: " ".join(f"{100 * v:.1f}%" for v in self.active[w]) for w in WHICH}
        return f"active fraction per layer over {self.tokens} tokens: x {per_layer['x']}; y {per_layer['y']}"


def lifetime_sparseness(sum_r: np.ndarray, sum_r2: np.ndarray, T: int) -> np.ndarray:
    """``S = (1 - (sum r / T)^2 / (sum r^2 / T)) / (1 - 1/T)`` from the sums over T >= 2 samples; NaN if all r = 0."""
    if T < 2:
        raise ValueError(f"lifetime sparseness needs at least 2 samples, got T={T}")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (sum_r / T) ** 2 / (sum_r2 / T)
    return np.where(sum_r2 > 0, (1.0 - ratio) / (1.0 - 1.0 / T), np.nan)


@torch.no_grad()
def sparsity(model, text: str, window: int = DEFAULT_MAX_TOKENS, progress: bool = False) -> Sparsity:
    """Active fractions, firing rates and lifetime sparseness of x and y over ``text`` (module doc); ``progress``:
    a bar over the windows."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    tokens = encode(text)
    if len(tokens) < 2:
        raise ValueError(f"text has {len(tokens)} token; sparsity statistics need at least 2")
    sums = {}
    for start in tqdm(range(0, len(tokens), window), desc="sparsity", unit="window", disable=not progress,
                      leave=False):
        act = layer_activity(model, tokens[start:start + window].unsqueeze(0).to(model.decoder.device))
        for which in WHICH:
            r = act[which][:, 0].double().cpu()  # L, T, n
            for key, value in (("fire", (r > 0).sum(1)), ("r", r.sum(1)), ("r2", (r * r).sum(1))):
                sums[which, key] = sums.get((which, key), 0) + value.numpy()
    T = len(tokens)
    rate = {w: sums[w, "fire"] / T for w in WHICH}
    return Sparsity(T, {w: rate[w].mean(1) for w in WHICH}, rate,
                    {w: lifetime_sparseness(sums[w, "r"], sums[w, "r2"], T) for w in WHICH})
