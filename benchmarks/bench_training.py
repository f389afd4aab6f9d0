"""Training throughput with and without carried state, and with and without damping, same weights, same windows.

Random windows (each from a zero state, as the released training code reads text) against streams (each window
from the synaptic state its stream left, ``TrainConfig(carry_state=True)``), each for the undamped model and for the
same weights with damping (``BDHConfig(damping=True)``, docs/model.md 7.3). All four run the same optimizer step
(forward, backward, AdamW) on ``--batch-size`` windows of ``--block-size`` bytes of the default corpus; the steps
alternate between the four, so that every median comes from one time window of the machine.

    python benchmarks/bench_training.py [--steps 6] [--warmup 1] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from bdh_graph.model.recipe import BUNDLED_CONFIG, training_documents
from bdh_graph.model.tensor import BDH
from bdh_graph.model.training import Streams, TrainConfig, random_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="timed steps of each kind")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each kind first")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    undamped = BDH(BUNDLED_CONFIG)
    models = {False: undamped, True: undamped.with_damping(True)}
    optimizers = {damped: torch.optim.AdamW(m.parameters(), lr=1e-4) for damped, m in models.items()}
    documents, _ = training_documents()
    cfg = TrainConfig(batch_size=args.batch_size, block_size=args.block_size, carry_state=True)
    generator = torch.Generator().manual_seed(0)
    streams, tokens = Streams(documents, cfg, generator), torch.cat(documents)
    states = {damped: m.init_state(cfg.batch_size) for damped, m in models.items()}
    for state in states.values():
        state.position = torch.zeros(cfg.batch_size, dtype=torch.long)

    def step(carry: bool, damped: bool) -> float:
        model, optimizer, state = models[damped], optimizers[damped], states[damped]
        start = time.perf_counter()
        if carry:
            x, y, fresh = streams.next_window()
            state.rho[:, fresh] = 0
            state.position[fresh] = 0
            _, loss = model(x, y, state=state)
            state.rho = state.rho.detach()
        else:
            x, y = random_batch(tokens, cfg.batch_size, cfg.block_size, generator)
            _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    kinds = [(carry, damped) for damped in (False, True) for carry in (False, True)]
    times = {kind: [] for kind in kinds}
    load = [os.getloadavg()[0]]
    for i in range(args.warmup + args.steps):
        for kind in kinds:
            seconds = step(*kind)
            if i >= args.warmup:
                times[kind].append(seconds)
    load.append(os.getloadavg()[0])
    tokens_per_step = cfg.batch_size * cfg.block_size
    result = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "load_start_end": load, "batch": cfg.batch_size,
              "block": cfg.block_size, "model": BUNDLED_CONFIG.to_dict()}
    median = {kind: statistics.median(seconds) for kind, seconds in times.items()}
    for (carry, damped), seconds in median.items():
        name = ("carried_state" if carry else "random_windows") + ("_damped" if damped else "")
        result[name] = {"seconds_per_step": seconds, "tokens_per_second": tokens_per_step / seconds}
    result["carried_over_random_time"] = median[True, False] / median[False, False]
    result["damped_over_undamped_time"] = {"random_windows": median[False, True] / median[False, False],
                                           "carried_state": median[True, True] / median[True, False]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
