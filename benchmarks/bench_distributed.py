"""Dask (``bdh_graph.distributed``): extraction and a modularity sweep in this process against a LocalCluster of 1
and 2 worker processes, and a projection of the extraction to n = 2^17 and 2^20 on 16 and 64 workers.

1. **Extraction** of the whole graph G_x (analysis form, n x n) of ``BDH(BDHConfig(mlp_internal_dim_multiplier =
   n / 256))`` after ``torch.manual_seed(0)`` (n = 32768 is the released default size), pruned to the paper's edge
   density (``Strongest(paper_edge_count(n))`` per circuit, what ``bdh-graph export --head all`` keeps). In this
   process the tiles are timed one by one (``tile_edges``), with the bytes each sends back (its kept edges), so
   the driver's share (merging the kept edges) is the rest. On each cluster: wall time with workers already
   started (their start is timed apart), the edges compared bit for bit with the in-process ones, and each
   worker's peak resident memory.
2. **Modularity sweep** of head 0 (n/4 neurons): 5 thresholds (the default ladder, m/4 .. 4m edges around the
   paper density's m), Louvain best of 5 seeds, 3 null models: 20 graphs, each a task. The low-rank null's random
   product is drawn once, in the driver, before the tasks (``nulls.low_rank_null``), and timed apart.
3. **Projection**: time = broadcast of the factors + tiles x (time per tile) / workers, with the tile count and
   per-tile time of ``BLOCK_BYTES`` tiles (the entries of a tile, hence its cost, do not depend on n at fixed d),
   the driver's merge time per tile as the floor on a tile's turn-around, and the factors broadcast as Dask does
   (client to scheduler to one worker, then each holder copies to 2 more workers a round: 2 + ceil(log3 W) copy
   times) at ``--bandwidth`` (default 1.25 GB/s, 10 Gb/s Ethernet).

    python benchmarks/bench_distributed.py [--n 32768] [--workers 1 2] [--skip-sweep] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path

import numpy as np


def timed_tiles(neuron_graphs):
    """Wrap ``neuron_graphs.tile_edges`` (in this process) to record each tile's seconds and bytes sent back."""
    tiles = []
    original = neuron_graphs.tile_edges

    def tile_edges(*args):
        start = time.perf_counter()
        result = original(*args)
        sent = sum(a.nbytes for circuit in (result.excitatory, result.inhibitory) for a in circuit)
        tiles.append((time.perf_counter() - start, sent))
        return result

    neuron_graphs.tile_edges = tile_edges
    return tiles, original


def same(a, b) -> bool:
    return all(np.array_equal(getattr(a.circuit(c), k), getattr(b.circuit(c), k))
               for c in ("excitatory", "inhibitory") for k in ("indptr", "indices", "data"))


def worker_peaks_mib(client) -> list[float]:
    return sorted(v / 1024 for v in client.run(
        lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).values())


def started(workers: int):
    """A started LocalCluster engine whose workers have imported bdh_graph, and the seconds that took."""
    from bdh_graph.distributed import engine

    t = time.perf_counter()
    context = engine(f"local:{workers}")
    eng = context.__enter__()
    eng.client.run(lambda: __import__("bdh_graph.graphs") and None)
    return context, eng, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32768, help="neurons (a multiple of 1024; d = 256, 4 heads)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="LocalCluster sizes")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--bandwidth", type=float, default=1.25e9, help="driver's link, bytes/s, for the projection")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from bdh_graph import BDH, BDHConfig
    from bdh_graph.graphs import (BLOCK_BYTES, Strongest, graph_factors, neuron_graphs, paper_edge_count,
                                  product_graph)
    from bdh_graph.structure.nulls import low_rank_null
    from bdh_graph.structure.sweep import NULL_MODELS, at_beta, betas_for_edges, ladder_counts, sweep_graphs

    torch.manual_seed(0)
    d = 256
    model = BDH(BDHConfig(mlp_internal_dim_multiplier=args.n // d))
    factors = graph_factors(model, "x")
    n, m = factors.shape[0], paper_edge_count(factors.shape[1])
    results = {"n": n, "d": d, "edges_per_circuit": m, "block_bytes": BLOCK_BYTES}

    # 1. extraction
    tiles, original = timed_tiles(neuron_graphs)
    t = time.perf_counter()
    here = product_graph(factors, Strongest(m), progress=False)
    wall = time.perf_counter() - t
    neuron_graphs.tile_edges = original
    compute, sent = sum(s for s, _ in tiles), sum(b for _, b in tiles)
    extraction = {"in_process_s": wall, "tiles": len(tiles), "tile_s_mean": compute / len(tiles),
                  "driver_s_per_tile": (wall - compute) / len(tiles), "bytes_back_per_tile_mean": sent / len(tiles),
                  "bytes_back_first_tile": tiles[0][1], "factors_bytes": factors.pre.nbytes + factors.post.nbytes,
                  "kept_edges": here.n_edges}
    print(f"extraction in process: {extraction}", flush=True)
    sweep_input = None
    if not args.skip_sweep:
        head = graph_factors(model, "x", head=0)
        m0 = paper_edge_count(head.shape[1])
        denser = product_graph(head, Strongest(4 * m0), progress=False).excitatory
        counts = ladder_counts(m0)
        sweep_input = [(float(b), at_beta(denser, b)) for b in betas_for_edges(denser, counts)]
        t = time.perf_counter()
        low_rank_null(head.shape[0], d, max(counts), 0)
        low_rank_s = time.perf_counter() - t
        t = time.perf_counter()
        sweep_here = sweep_graphs(sweep_input, rank=d, seeds=5, nulls=NULL_MODELS, seed=0)
        results["sweep"] = {"nodes": head.shape[0], "edge_counts": counts, "graphs": len(counts) * 4,
                            "in_process_s": time.perf_counter() - t, "low_rank_product_s": low_rank_s}
        print(f"sweep in process: {results['sweep']}", flush=True)

    for workers in args.workers:
        context, eng, start_s = started(workers)
        try:
            t = time.perf_counter()
            there = product_graph(factors, Strongest(m), progress=False, scheduler=eng)
            extraction[f"local_{workers}_s"] = time.perf_counter() - t
            extraction[f"local_{workers}_identical"] = same(here, there)
            extraction[f"local_{workers}_start_s"] = start_s
            extraction[f"local_{workers}_worker_peak_rss_mib"] = worker_peaks_mib(eng.client)
            print(f"extraction on local:{workers}: {extraction[f'local_{workers}_s']:.1f} s, identical "
                  f"{extraction[f'local_{workers}_identical']}, start {start_s:.1f} s", flush=True)
            if sweep_input is not None:
                t = time.perf_counter()
                sweep_there = sweep_graphs(sweep_input, rank=d, seeds=5, nulls=NULL_MODELS, seed=0, scheduler=eng)
                results["sweep"][f"local_{workers}_s"] = time.perf_counter() - t
                results["sweep"][f"local_{workers}_identical"] = ([p.to_dict() for p in sweep_here]
                                                                   == [p.to_dict() for p in sweep_there])
                print(f"sweep on local:{workers}: {results['sweep'][f'local_{workers}_s']:.1f} s, identical "
                      f"{results['sweep'][f'local_{workers}_identical']}", flush=True)
        finally:
            context.__exit__(None, None, None)
    results["extraction"] = extraction

    # 3. projection: same d, tiles of BLOCK_BYTES (same entries per tile, same cost), factors sent to every worker
    projection = []
    tile_s, driver_s = extraction["tile_s_mean"], extraction["driver_s_per_tile"]
    for big in (2**17, 2**20):
        n_tiles = -(-big // max(1, BLOCK_BYTES // (big * 8)))
        factor_bytes = 2 * big * d * 8
        for workers in (16, 64):
            compute = n_tiles * max(tile_s / workers, driver_s)
            # Dask's broadcast: client -> scheduler -> one worker, then copies from every holder to 2 more a round
            broadcast = (2 + math.ceil(math.log(workers, 3))) * factor_bytes / args.bandwidth
            projection.append({"n": big, "workers": workers, "tiles": n_tiles, "compute_s": compute,
                               "broadcast_s": broadcast, "total_s": compute + broadcast,
                               "one_core_s": n_tiles * tile_s, "factor_bytes_per_worker": factor_bytes,
                               "kept_edges": 2 * paper_edge_count(big)})
    results["projection"] = projection
    for p in projection:
        print(f"projection: {p}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
