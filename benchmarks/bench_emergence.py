"""``bdh-graph emergence`` over 20 snapshots of the bundled size, in this process and on a LocalCluster.

No run with snapshots ships with the package (one takes an hour to train), so the script makes one: a temporary run
folder whose ``snapshots/step-NNNNNN.safetensors`` are the bundled model with Gaussian noise added to every weight,
the noise shrinking towards the last snapshot (std ``NOISE * (1 - i / (count - 1))`` times each tensor's own std,
snapshot i at step ``100 i``), so each snapshot has its own graph. It then times ``emergence`` with the command's
defaults (head 0, the paper's edge density, ladder 1, 5 Louvain seeds, 100 bootstrap sets, the 256-byte held-out
passage, numba) on each scheduler of ``--schedulers`` in turn (a LocalCluster's start included, as the command pays
it), with the load average before each, and checks that every scheduler gives the in-process series.

    python benchmarks/bench_emergence.py [--count 20] [--schedulers none local:2] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

NOISE = 0.05


def make_run(folder: Path, count: int) -> Path:
    from bdh_graph import load_model, save_model

    model = load_model()
    generator = torch.Generator().manual_seed(0)
    (folder / "snapshots").mkdir(parents=True)
    for i in range(count):
        noisy = load_model()
        with torch.no_grad():
            for (name, p), (_, q) in zip(noisy.named_parameters(), model.named_parameters()):
                scale = NOISE * (1 - i / max(count - 1, 1)) * float(q.std())
                p.copy_(q + scale * torch.randn(q.shape, generator=generator, dtype=q.dtype))
        save_model(noisy, folder / "snapshots" / f"step-{100 * i:06d}.safetensors")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--schedulers", nargs="+", default=["none", "local:2"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from bdh_graph.experiments.emergence import DEFAULT_BYTES, emergence
    from bdh_graph.text import default_passage

    text = default_passage(DEFAULT_BYTES)
    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(Path(tmp) / "run", args.count)
        runs = {}
        for scheduler in args.schedulers:
            load = os.getloadavg()[0]
            start = time.perf_counter()
            series = emergence(run, text, progress=True, scheduler=scheduler)
            runs[scheduler] = {"seconds": time.perf_counter() - start, "load_average_before": load,
                               "series": series}
    reference = runs.get("none", next(iter(runs.values())))["series"]
    result = {"snapshots": args.count,
              "runs": {name: {"seconds": r["seconds"], "per_snapshot_s": r["seconds"] / args.count,
                              "load_average_before": r["load_average_before"],
                              "same_series": r["series"].snapshots == reference.snapshots}
                       for name, r in runs.items()},
              "verdicts": reference.verdicts()}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
