"""Convergence of spike mode to the rate model: logit error against the number K of micro-steps per round.

A spiking network (``build_network(..., mode="spike", spike_steps=K, seed=s)``) sends every message as Bernoulli
spikes over K micro-steps; its average is the rate model, which equals the tensor model to ~1e-15 in float64.
For every K and seed the spiking network is stepped over the first ``--tokens`` bytes of the held-out passage
next to the tensor model (``bdh_graph.validate``) and this script records the RMS error of its logits (over all
tokens and the whole vocabulary), the mean KL(tensor || spike) of the next-byte distributions and the top-1
agreement. The slope of log(mean RMS error over seeds) against log K is fitted by least squares.

    python analysis/spike_convergence.py --out runs/spike_convergence [--wiring hub] [--tokens 32]
        [--steps 4 16 64 256] [--seeds 5] [--backend numba] [--model CHECKPOINT]

Writes ``spike_convergence.json`` and ``spike_convergence.png`` in ``--out``. Expected: the error falls as
K^-1/2 (slope near -1/2: each count estimate has variance ~1/K and the network, through its thresholds and
gains, is only asymptotically unbiased, see ``bdh_graph.network.spikes``), so the KL, quadratic in the logit
error for small errors, falls about as K^-1, and top-1 agreement rises towards 1.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from bdh_graph import validate
from bdh_graph.model.checkpoints import load_model
from bdh_graph.files import atomic_path
from bdh_graph.network.monitors import Monitor
from bdh_graph.plots import save_figure
from bdh_graph.text import decode, default_passage, encode


class LogitMonitor(Monitor):
    """Keeps the network's logits of every token (``validate`` only reports their maximum error)."""

    variables = frozenset({"logits"})

    def __init__(self):
        super().__init__()
        self.logits = []

    def record(self, record: dict) -> None:
        super().record(record)
        self.logits.append(record["logits"])


def measure(model, tokens, reference: np.ndarray, args, K: int, seed: int) -> dict:
    start, monitor = time.perf_counter(), LogitMonitor()
    r = validate(model, tokens, wiring=args.wiring, dtype=np.float64, backend=args.backend, mode="spike",
                 spike_steps=K, seed=seed, state_every=0, monitors=[monitor])
    rms = float(np.sqrt(np.mean((np.stack(monitor.logits) - reference) ** 2)))
    return {"K": K, "seed": seed, "rms": rms, "logits_max_abs": float(r.logits_abs.max()),
            "kl_mean": float(r.kl.mean()), "top1_agreement": float(r.top1.mean()),
            "seconds": time.perf_counter() - start}


def plot(per_k: list[dict], slope: float, intercept: float, path: Path, title: str) -> Path:
    K = np.array([p["K"] for p in per_k], float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for ax, key, ref_slope, label in ((axes[0], "rms", -0.5, "RMS logit error (spike - rate)"),
                                      (axes[1], "kl_mean", -1.0, "mean KL(tensor || spike), nats")):
        mean = np.array([p[key]["mean"] for p in per_k])
        spread = np.array([[p[key]["mean"] - p[key]["min"] for p in per_k],
                           [p[key]["max"] - p[key]["mean"] for p in per_k]])
        ax.errorbar(K, mean, yerr=spread, marker="o", ls="none", capsize=3, label="mean over seeds (bars: min-max)")
        if key == "rms":
            ax.plot(K, np.exp(intercept) * K ** slope, "--", label=f"least-squares fit, slope {slope:.3f}")
        ax.plot(K, mean[0] * (K / K[0]) ** ref_slope, ":", color="0.4", label=f"slope {ref_slope:g} (reference)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("K, micro-steps per round")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/spike_convergence"))
    parser.add_argument("--wiring", choices=("hub", "neuron"), default="hub")
    parser.add_argument("--tokens", type=int, default=32, help="first bytes of the held-out passage")
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 16, 64, 256], help="values of K")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. SEEDS-1 per K")
    parser.add_argument("--backend", default="numba", help="numba, numpy or torch")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: the bundled model)")
    args = parser.parse_args()
    if len(args.steps) < 2 or args.seeds < 1 or args.tokens < 1:
        parser.error("need at least two values of K, one seed and one token")
    model = load_model(args.model).double().eval()
    tokens = encode(default_passage(args.tokens + 256))[:args.tokens]
    with torch.no_grad():  # the rate model's logits (equal to the tensor model's), computed once
        reference = model.forward_recurrent(tokens[None])[0].numpy()
    runs = [measure(model, tokens.numpy(), reference, args, K, seed)
            for K, seed in tqdm([(K, s) for K in args.steps for s in range(args.seeds)], desc="K x seed", unit="run")]
    stats = lambda v: {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(np.min(v)),  # noqa: E731
                       "max": float(np.max(v))}
    per_k = [{"K": K, **{key: stats([r[key] for r in runs if r["K"] == K])
                         for key in ("rms", "kl_mean", "top1_agreement")}} for K in args.steps]
    logK = np.log([p["K"] for p in per_k])
    slope, intercept = np.polyfit(logK, np.log([p["rms"]["mean"] for p in per_k]), 1)
    kl_slope = np.polyfit(logK, np.log([p["kl_mean"]["mean"] for p in per_k]), 1)[0]
    c = model.config
    title = (f"spike mode, {args.wiring} wiring, n={c.n_neurons}, L={c.n_layer}, float64, {len(tokens)} held-out "
             f"bytes, {args.seeds} seeds per K")
    args.out.mkdir(parents=True, exist_ok=True)
    figure = plot(per_k, slope, intercept, args.out / "spike_convergence.png", title)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result = {"command": sys.argv, "options": options,
              "settings": {"config": c.to_dict(), "wiring": args.wiring, "dtype": "float64", "rate_scale": "max",
                           "seeds": list(range(args.seeds)), "tokens": len(tokens),
                           "text": decode(tokens),
                           "reference_logits_rms": float(np.sqrt(np.mean(reference ** 2)))},
              "slope": float(slope), "intercept": float(intercept), "kl_slope": float(kl_slope), "per_K": per_k,
              "runs": runs}
    path = args.out / "spike_convergence.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    for p in per_k:
        print(f"K {p['K']:4d}  RMS logit error {p['rms']['mean']:.3e} (seeds {p['rms']['min']:.2e} .. "
              f"{p['rms']['max']:.2e})  KL {p['kl_mean']['mean']:.3e}  top-1 {p['top1_agreement']['mean']:.1%}")
    print(f"fitted slope of log RMS error vs log K: {slope:.3f} (expected about -0.5); KL slope {kl_slope:.3f}")
    print(f"wrote {figure} and {path}")


if __name__ == "__main__":
    main()
