"""One graph's structure in numbers: degrees and their power-law fits, modularity next to the null models.

``analyze_structure`` gathers the analysis of the paper's section 5.5 with the statistics network scientists expect; ``StructureAnalysis.to_dict`` and ``.markdown``
are the report's JSON and markdown. Figures are drawn elsewhere (``bdh_graph.plots``) from the same object.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from ..graphs import Circuits
from . import degrees
from .powerlaw_fit import PowerLawFit, fit_power_law
from .sweep import NULL_MODELS, SweepPoint, at_beta, modularity_sweep


@dataclass
class StructureAnalysis:
    """The analysed circuit ``graph`` (square, ``A[i, j]`` = weight of ``i -> j``) at ``beta``, and its statistics."""

    graph: sparse.csr_array
    node_ids: np.ndarray
    circuit: str
    beta: float
    meta: dict
    degrees: dict[str, np.ndarray]  # "in", "out", "in_strength", "out_strength"
    fits: dict[str, PowerLawFit | str]  # "in", "out": a fit, or why there is none
    sweep: list[SweepPoint]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def point(self) -> SweepPoint:
        """The sweep point at the analysed ``beta``."""
        return min(self.sweep, key=lambda p: abs(p.beta - self.beta))

    def to_dict(self) -> dict:
        fits = {k: (f.to_dict() if isinstance(f, PowerLawFit) else {"error": f}) for k, f in self.fits.items()}
        point = self.point
        return {
            "graph": {**self.meta, "circuit": self.circuit, "beta": self.beta, "nodes": int(self.graph.shape[0]),
                      "edges": int(self.graph.nnz)},
            "degrees": {k: degrees.summary(v) for k, v in self.degrees.items()},
            "power_law": fits,
            "modularity": {**point.result.to_dict(),
                           "nulls": {name: r.to_dict() for name, r in point.nulls.items()}},
            "sweep": [p.to_dict() for p in self.sweep],
            "timings_s": self.timings,
        }

    def markdown(self) -> str:
        r = self.to_dict()
        g, mod = r["graph"], r["modularity"]
        head = "whole graph" if g.get("head") is None else f"head {g['head']}"
        lines = [
            f"# Structure of G_{g.get('which', '?')} ({g.get('form', '?')} form, {head}, {self.circuit} circuit)",
            "",
            f"- nodes n = {g['nodes']}, edges m = {g['edges']} (weights >= beta = {self.beta:.6g})",
            "- orientation: A[i, j] = weight of the edge i -> j (i presynaptic)",
            "",
            "## Degrees and power-law fits (Clauset, Shalizi and Newman 2009)",
            "",
            "| degree | mean | max | zeros | alpha | x_min | n_tail | KS D | bootstrap p | LR vs lognormal (R, p) "
            "| LR vs exponential (R, p) | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for k in ("in", "out"):
            s, f = r["degrees"][k], r["power_law"][k]
            if "error" in f:
                lines.append(f"| {k} | {s['mean']:.2f} | {s['max']:.0f} | {s['zeros']} | | | | | | | | {f['error']} |")
                continue
            lr = [f"{c['R']:.2f}, {c['p']:.2g}" for c in f["comparisons"].values()]
            lines.append(f"| {k} | {s['mean']:.2f} | {s['max']:.0f} | {s['zeros']} | {f['alpha']:.3f} ± "
                         f"{f['sigma']:.3f} | {f['xmin']:.0f} | {f['n_tail']} | {f['ks_distance']:.4f} | "
                         f"{f['p_value']:.2f} ({f['n_bootstrap']} sets) | {' | '.join(lr)} | {f['verdict']} |")
        graph = ("directed" if mod["directed"] else "undirected (symmetrised A + A^T)") + \
                (", weighted" if mod["weighted"] else ", unweighted")
        lines += [
            "",
            "## Modularity (Louvain, best of {} seeds; graph {}; backend {})".format(
                len(mod["seeds"]), graph, mod["backend"]),
            "",
            "| graph | Q | communities |",
            "|---|---|---|",
            f"| this graph | {mod['Q']:.4f} | {mod['n_communities']} |",
        ]
        lines += [f"| null: {name} (same n, m) | {v['Q']:.4f} | {v['n_communities']} |"
                  for name, v in mod["nulls"].items()]
        if len(self.sweep) > 1:
            names = list(self.sweep[0].nulls) if self.sweep[0].nulls else []
            lines += ["", "## Modularity against beta", "",
                      "| beta | edges | Q | " + " | ".join(f"Q {n}" for n in names) + " |",
                      "|---" * (3 + len(names)) + "|"]
            for p in r["sweep"]:
                lines.append(f"| {p['beta']:.6g} | {p['edges']} | {p['Q']:.4f} | " +
                             " | ".join(f"{p.get('Q_' + n, float('nan')):.4f}" for n in names) + " |")
        return "\n".join(lines) + "\n"


def degree_fits(A, n_bootstrap: int = 100, seed: int = 0) -> tuple[dict, dict]:
    """In/out degrees and strengths of ``A``, and power-law fits of the degrees (a fit, or why there is none)."""
    deg = {"in": degrees.in_degree(A), "out": degrees.out_degree(A),
           "in_strength": degrees.in_strength(A), "out_strength": degrees.out_strength(A)}
    fits: dict[str, PowerLawFit | str] = {}
    for k in ("in", "out"):
        try:
            fits[k] = fit_power_law(deg[k], n_bootstrap=n_bootstrap, seed=seed)
        except ValueError as err:
            fits[k] = str(err)
    return deg, fits


def analyze_structure(circuits: Circuits, circuit: str = "excitatory", beta: float | None = None,
                      sweep_betas=(), seeds: int = 5, n_bootstrap: int = 100, directed: bool = False,
                      weighted: bool = False, nulls: tuple[str, ...] = NULL_MODELS, rank: int | None = None,
                      seed: int = 0, backend: str | None = None, progress: bool = False) -> StructureAnalysis:
    """Degrees, power-law fits and modularity with nulls of one circuit of ``circuits`` at ``beta``.

    ``beta`` defaults to the smallest weight kept (every edge); ``sweep_betas`` adds points to the
    modularity-against-beta curve (each >= the extraction's own threshold). ``rank`` of the low-rank null
    defaults to the model's d, recorded in ``circuits.meta``.
    """
    full, ids = circuits.square(circuit)
    if full.nnz == 0:
        raise ValueError(f"the {circuit} circuit has no edges (largest |G| = "
                         f"{circuits.meta.get('largest_abs_weight', float('nan')):.4g}): choose a smaller beta")
    beta = float(full.data.min()) if beta is None else float(beta)
    A = at_beta(full, beta)
    if A.nnz == 0:
        raise ValueError(f"no {circuit} edge has weight >= beta = {beta:g} (largest is {full.data.max():.4g})")
    rank = rank if rank is not None else circuits.meta.get("d")
    for b in sweep_betas:
        if b < full.data.min():
            raise ValueError(f"sweep beta {b:g} is below the smallest weight kept ({full.data.min():.4g}): "
                             "extract the graph with a lower threshold first")
    timings = {}
    t = time.perf_counter()
    deg, fits = degree_fits(A, n_bootstrap, seed)
    timings["power_law"] = time.perf_counter() - t
    t = time.perf_counter()
    betas = sorted({beta, *map(float, sweep_betas)})
    sweep = modularity_sweep(full, betas, rank, seeds, nulls, directed, weighted, seed, backend, progress)
    timings["modularity"] = time.perf_counter() - t
    return StructureAnalysis(A, ids, circuit, beta, dict(circuits.meta), deg, fits, sweep, timings)
