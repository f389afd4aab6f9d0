"""Speed and memory of the graph exports at the released default size (n = 32768, d = 256, 4 heads of 8192).

The whole graph G_x (analysis form, 32768 x 32768, 1.07e9 entries: 8 GiB as a dense float64 matrix, never held),
pruned to each neuron's 64 strongest excitatory and 64 strongest inhibitory inputs (``--top-k 64``), written as

- ``.npz`` (``write_graph``: two scipy.sparse files), ``.csv`` (``write_graph``: one line per edge), and
- a SONATA circuit (``interop.sonata.write_circuit``: HDF5 edge populations with their indices, streamed).

The extraction runs once, in the first child process, which also writes the ``.npz``; each other format runs in a
process of its own that reads that ``.npz`` back (``read_graph``), so its peak memory is its own. For each write:
wall time, tracemalloc's peak during the write alone (numpy's and Python's allocations; HDF5's own buffers are not
traced), the process's peak resident memory (``ru_maxrss``) against its resident memory before the write, and
the size on disk. The model is ``BDH(BDHConfig())`` after ``torch.manual_seed(0)`` (random weights).

    python benchmarks/bench_export.py [--top-k 64] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


def rss_mib() -> float:
    """Resident memory now (Linux /proc), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def size_mib(paths) -> float:
    files = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def timed_write(write) -> dict:
    """Run ``write()`` (returns the paths written) under tracemalloc; its numbers."""
    before = rss_mib()
    tracemalloc.start()
    start = time.perf_counter()
    paths = write()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "traced_peak_mib": peak / 2**20, "rss_before_mib": before,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "disk_mib": size_mib(paths)}


def child(fmt: str, source: str, folder: str, top_k: int) -> None:
    """One format in this process; prints its numbers as JSON."""
    import torch

    from bdh_graph.graphs import extract, read_graph, write_graph
    from bdh_graph.interop.sonata import write_circuit
    from bdh_graph.model.checkpoints import load_model

    folder = Path(folder)
    result = {"format": fmt}
    if fmt == "npz":  # source: the checkpoint; extract here, once
        torch.set_num_threads(1)
        model = load_model(source)
        start = time.perf_counter()
        circuits = extract(model, "x", "analysis", None, top_k=top_k, progress=False).circuits
        result["extraction_seconds"] = time.perf_counter() - start
        del model
    else:  # source: the .npz written by the first child
        circuits = read_graph(source)
    result.update(edges=circuits.n_edges, edges_csr_mib=sum(A.data.nbytes + A.indices.nbytes + A.indptr.nbytes
                                                            for A in (circuits.excitatory, circuits.inhibitory))
                  / 2**20)
    if fmt == "sonata":
        result.update(timed_write(lambda: [write_circuit(circuits, folder / "sonata", progress=False)
                                           ["circuit_config"].parent]))
    else:
        result.update(timed_write(lambda: write_graph(circuits, folder / f"graph.{fmt}")))
    print(json.dumps(result))


def run_child(argv: list[str]) -> dict:
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--child", nargs=3, metavar=("FORMAT", "SOURCE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.top_k)

    import torch

    from bdh_graph import BDH, BDHConfig, save_model

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        checkpoint = str(Path(tmp) / "released-size-random.safetensors")
        save_model(BDH(BDHConfig()), checkpoint)
        for fmt, source in (("npz", checkpoint), ("csv", str(Path(tmp) / "graph.npz")),
                            ("sonata", str(Path(tmp) / "graph.npz"))):
            results.append(run_child([sys.executable, __file__, "--top-k", str(args.top_k), "--child", fmt, source,
                                      tmp]))
            print(json.dumps(results[-1]), flush=True)
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"top_k": args.top_k, "results": results, "load_average": load}, indent=2))


if __name__ == "__main__":
    main()
