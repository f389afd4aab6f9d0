"""Bits per byte by position with damping (docs/model.md 7.3): an undamped model, the same weights read with a fixed
decay (no retraining), and damped checkpoints, side by side.

For each time constant tau of ``--tau`` the undamped model's weights are read with every head's state decaying by
``gamma = exp(-1/tau)`` before each read; ``--spread`` adds the initial spread a damped run starts from (time
constants log-spaced over ``DAMPING_TIME_CONSTANTS``). Each checkpoint of ``--damped`` is read as it is, and its
learned time constants are listed. Every row is ``bits_per_byte_by_position`` over the held-out tail of the
default corpus (segments of 4096 bytes, each from a zero state).

    python analysis/damping.py [UNDAMPED] --out runs/damping [--tau 64 256 1024] \
        [--damped runs/damped/model.safetensors]

Writes ``damping.png`` and ``results.json`` in ``--out``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from bdh_graph.files import atomic_path
from bdh_graph.model import BDH, load_model
from bdh_graph.model.evaluation import bits_per_byte_by_position, position_verdict
from bdh_graph.plots import save_figure
from bdh_graph.text import default_documents, split_documents_held_out


def with_fixed_decay(model: BDH, tau: float | None) -> BDH:
    """The weights of the undamped ``model`` in a damped model whose heads all decay with time constant ``tau`` (None:
    the initial spread of a damped run), in eval mode."""
    return model.with_damping(True, tau).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", default=None, help="the undamped model (default: the bundled one)")
    parser.add_argument("--out", type=Path, default=Path("runs/damping"))
    parser.add_argument("--tau", type=float, nargs="*", default=[64.0, 256.0, 1024.0],
                        help="fixed time constants (tokens) to read the undamped model with")
    parser.add_argument("--spread", action="store_true", help="also the initial spread of a damped run")
    parser.add_argument("--damped", nargs="*", default=[], help="damped checkpoints to read as they are")
    args = parser.parse_args()
    if any(t <= 0 for t in args.tau):
        parser.error(f"argument --tau: each time constant must be > 0, got {args.tau}")
    for path in args.damped:
        if not load_model(path).config.damping:
            parser.error(f"argument --damped: checkpoint '{path}' is not a damped model")
    args.out.mkdir(parents=True, exist_ok=True)
    undamped = load_model(args.checkpoint)
    if undamped.config.damping:
        parser.error(f"checkpoint '{args.checkpoint}' is damped; give the undamped model")
    held_out = split_documents_held_out(default_documents())[1]
    rows = [("undamped", undamped, None)]
    rows += [(f"undamped read with tau = {t:g}", with_fixed_decay(undamped, t), None) for t in args.tau]
    if args.spread:
        rows.append(("undamped read with the initial spread", with_fixed_decay(undamped, None), None))
    rows += [(f"damped: {p}", (m := load_model(p)), [round(float(t), 1) for t in m.time_constants()])
             for p in args.damped]
    results = []
    for name, model, taus in tqdm(rows, desc="models"):
        result = bits_per_byte_by_position(model, held_out)
        results.append({"model": name, **result, "time_constants_tokens": taus, "verdict": position_verdict(result)})
        tqdm.write(f"{name}: " + " ".join(f"{b:.3f}" for b in result["bits_per_byte"]))
    with atomic_path(args.out / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for r in results:
        edges = r["edges"]
        ax.stairs(r["bits_per_byte"], [1, *edges[1:]], lw=2, baseline=None, label=r["model"])
    ax.set_xscale("log")
    ax.set_xlabel("position of the predicted byte (bytes read from a zero synaptic state)")
    ax.set_ylabel("bits per byte")
    falling = [r["model"] for r in results if max(r["bits_per_byte"][1:]) <= r["bits_per_byte"][0]]
    ax.set_title(f"loss falls as context grows (every later bucket at or below the first) for: "
                 f"{', '.join(falling) or 'none'}" if len(", ".join(falling)) < 80 else
                 f"loss falls as context grows for {len(falling)} of {len(results)} models", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    save_figure(fig, args.out / "damping.png")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'damping.png'}")


if __name__ == "__main__":
    main()
