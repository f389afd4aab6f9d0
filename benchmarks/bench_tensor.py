"""Tokens per second of the recurrent form against recomputing the whole prefix for every new token.

Recomputing the prefix is what the released ``generate`` does; the recurrent form keeps ``rho`` and does O(1)
work per token. Both are timed at the same context lengths on the same model, in one run.

    python benchmarks/bench_tensor.py [--checkpoint PATH] [--contexts 256 1024 4096] [--repeats 5] [--steps 32]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from bdh_graph import load_model
from bdh_graph.text import default_corpus, encode


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_steps(model, state, tokens, context: int, steps: int) -> float:
    """Seconds per token of ``steps`` consecutive recurrent steps from position ``context``."""
    start = time.perf_counter()
    for t in range(context, context + steps):
        model.step(tokens[:, t], state)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="default: the bundled model")
    parser.add_argument("--contexts", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=32, help="consecutive recurrent steps per timing")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    model = load_model(args.checkpoint)
    tokens = encode(default_corpus())[: max(args.contexts) + args.steps + 1].unsqueeze(0)
    rows = []
    with torch.no_grad():
        for context in args.contexts:
            state = model.init_state(1)
            for t in range(context):  # bring the state to position `context`
                model.step(tokens[:, t], state)
            t_rec = statistics.median(time_steps(model, state.clone(), tokens, context, args.steps)
                                      for _ in range(args.repeats))
            t_full = median_seconds(lambda: model(tokens[:, : context + 1]), args.repeats)
            rows.append({"context": context, "recurrent_tokens_per_s": 1 / t_rec,
                         "recompute_tokens_per_s": 1 / t_full, "speedup": t_full / t_rec})
            print(f"context {context:5d}: recurrent {1 / t_rec:9.1f} tok/s, recompute prefix {1 / t_full:8.2f} tok/s, "
                  f"speedup {t_full / t_rec:7.1f}x", flush=True)
    result = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "model": model.config.to_dict(), "repeats": args.repeats, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
