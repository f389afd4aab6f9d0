"""Training throughput with and without carried state, same model, same window size.

Random windows (each from a zero state, as the released training code reads text) against streams (each window
from the synaptic state its stream left, ``TrainConfig(carry_state=True)``). Both run the same optimizer step
(forward, backward, AdamW) on ``--batch-size`` windows of ``--block-size`` bytes of the default corpus; the steps
alternate between the two, so that both medians come from one time window of the machine.

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
    model = BDH(BUNDLED_CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    documents, _ = training_documents()
    cfg = TrainConfig(batch_size=args.batch_size, block_size=args.block_size, carry_state=True)
    generator = torch.Generator().manual_seed(0)
    streams, tokens = Streams(documents, cfg, generator), torch.cat(documents)
    state = model.init_state(cfg.batch_size)
    state.position = torch.zeros(cfg.batch_size, dtype=torch.long)

    def step(carry: bool) -> float:
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

    times = {False: [], True: []}
    load = [os.getloadavg()[0]]
    for i in range(args.warmup + args.steps):
        for carry in (False, True):
            seconds = step(carry)
            if i >= args.warmup:
                times[carry].append(seconds)
    load.append(os.getloadavg()[0])
    tokens_per_step = cfg.batch_size * cfg.block_size
    result = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "load_start_end": load, "batch": cfg.batch_size,
              "block": cfg.block_size, "model": BUNDLED_CONFIG.to_dict()}
    for carry, name in ((False, "random_windows"), (True, "carried_state")):
        median = statistics.median(times[carry])
        result[name] = {"seconds_per_step": median, "tokens_per_second": tokens_per_step / median}
    result["carried_over_random_time"] = (result["carried_state"]["seconds_per_step"]
                                          / result["random_windows"]["seconds_per_step"])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
