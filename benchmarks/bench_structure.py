"""Speed and memory of the structure analysis at the released default size (n = 32768, d = 256, 4 heads of 8192).

1. ``bdh-graph analyze --baseline untrained`` of head 0 (8192 neurons): the paper's edge density (the 46,820
   strongest excitatory edges), a 100-set power-law bootstrap for each degree, Louvain best of 5 seeds on the graph
   and the three null models at each of the 5 edge counts of the default ladder (m/4 .. 4m), and all of it again
   for the untrained baseline (``--baseline-seed 1``). Wall time, stage times and peak resident memory.
2. Extraction of the whole thresholded graph G_x (32768 x 32768, ``Threshold(beta)`` at the beta of step 1):
   time, edges kept, peak resident memory of a fresh process and tracemalloc's peak during the extraction alone.
   A dense n x n float64 matrix would take 8 GiB.

The model is ``BDH(BDHConfig())`` after ``torch.manual_seed(0)``: untrained, its entries of G are near-Gaussian,
so beta is chosen by edge count (the paper's density), not as the paper's 1.2. Each step runs in its own process.

    python benchmarks/bench_structure.py [--out DIR] [--bootstrap 100] [--seeds 5] [--backend networkx|igraph]
        [--no-baseline] [--skip-whole-graph] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

RUN_CLI = "import sys; from bdh_graph.cli import main; sys.exit(main(sys.argv[1:]))"


def run_child(argv: list[str]) -> tuple[str, float, float]:
    """Run ``argv``; return its stdout, wall seconds and peak resident memory in MiB (Linux ru_maxrss is KiB)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"{argv[:4]} failed with exit code {child.returncode}")
    return out, time.perf_counter() - start, usage.ru_maxrss / 1024


def whole_graph(checkpoint: str, beta: float) -> None:
    """Child process: extract the whole thresholded G_x and print its numbers as JSON."""
    import resource

    from bdh_graph.model.checkpoints import load_model
    from bdh_graph.graphs import Threshold, graph_factors, product_graph

    factors = graph_factors(load_model(checkpoint), "x")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    start = time.perf_counter()
    g = product_graph(factors, Threshold(beta), progress=False)
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    edge_bytes = sum(A.data.nbytes + A.indices.nbytes + A.indptr.nbytes for A in (g.excitatory, g.inhibitory))
    print(json.dumps({"shape": list(g.shape), "beta": beta, "excitatory_edges": g.n_excitatory,
                      "inhibitory_edges": g.n_inhibitory, "seconds": seconds, "rss_before_mib": before,
                      "traced_peak_mib": traced_peak / 2**20, "edges_mib": edge_bytes / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="folder for the analyze output (default: temporary)")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--backend", choices=("networkx", "igraph"), default=None,
                        help="Louvain implementation (default: igraph when installed, else networkx)")
    parser.add_argument("--no-baseline", action="store_true", help="analyse without the untrained baseline")
    parser.add_argument("--skip-whole-graph", action="store_true", help="only time the analysis of one head")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--whole-graph-child", nargs=2, metavar=("CHECKPOINT", "BETA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.whole_graph_child:
        return whole_graph(args.whole_graph_child[0], float(args.whole_graph_child[1]))

    import torch

    from bdh_graph import BDH, BDHConfig, save_model

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        checkpoint = str(Path(tmp) / "released-size-random.safetensors")
        save_model(BDH(BDHConfig()), checkpoint)
        out = args.out or Path(tmp) / "analyze"
        text, seconds, rss = run_child([sys.executable, "-c", RUN_CLI, "analyze", checkpoint, "--head", "0",
                                        "--seeds", str(args.seeds), "--bootstrap", str(args.bootstrap),
                                        "--out", str(out), "--json",
                                        *([] if args.no_baseline else ["--baseline", "untrained",
                                                                       "--baseline-seed", "1"]),
                                        *(["--backend", args.backend] if args.backend else [])])
        report = json.loads(text)
        analyze = {"seconds": seconds, "peak_rss_mib": rss, "nodes": report["graph"]["nodes"],
                   "edges": report["graph"]["edges"], "beta": report["graph"]["beta"],
                   "stages_s": report["timings_s"], "Q": report["modularity"]["Q"],
                   "backend": report["modularity"]["backend"],
                   "Q_nulls": {k: v["Q"] for k, v in report["modularity"]["nulls"].items()},
                   "alpha": {k: report["power_law"][k].get("alpha") for k in ("in", "out")},
                   "ladder_edges": [p["edges"] for p in report["sweep"]],
                   "baseline_stages_s": report["baseline"]["timings_s"] if "baseline" in report else None}
        print(f"analyze head 0: {seconds:.1f} s wall, peak RSS {rss:.0f} MiB; {analyze}", flush=True)
        whole = None
        if not args.skip_whole_graph:
            text, seconds, rss = run_child([sys.executable, __file__, "--whole-graph-child", checkpoint,
                                            repr(report["graph"]["beta"])])
            whole = {**json.loads(text), "process_seconds": seconds, "peak_rss_mib": rss}
            print(f"whole-graph extraction: {whole}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"analyze_head": analyze, "whole_graph": whole}, indent=2))


if __name__ == "__main__":
    main()
