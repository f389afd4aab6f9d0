"""One graph's structure in numbers: degrees and their power-law fits, modularity over a ladder of edge counts next
to the null models, and the same analysis of a baseline graph (an untrained model) side by side.

``analyze_structure`` analyses one circuit of extracted ``Circuits``; ``analyze_graph`` is what
``bdh-graph analyze`` runs: it extracts the denser graph the edge-count ladder needs and, given a baseline's
graph factors, analyses the baseline at the same edge counts. ``StructureAnalysis.to_dict`` and ``.markdown`` are
the report's JSON and markdown. Figures are drawn elsewhere (``bdh_graph.plots``) from the same object.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from ..display import html_summary
from ..distributed import engine
from ..errors import GraphInputError
from ..graphs import Circuits, GraphFactors, Strongest, product_graph
from . import degrees
from .powerlaw_fit import PowerLawFit, fit_power_law
from .sweep import LADDER, NULL_MODELS, SweepPoint, at_beta, betas_for_edges, ladder_counts, sweep_graphs

FRAGMENTED = 0.9  # a graph with less than this share of its nodes in the largest component is called fragmented


@dataclass
class StructureAnalysis:
    """The analysed circuit ``graph`` (square, ``A[i, j]`` = weight of ``i -> j``) at ``beta``, and its statistics.

    ``cuts`` gives, for each circuit of the extraction, the threshold it was cut at and the edges it kept;
    ``baseline`` is the same analysis of a baseline graph at the same edge counts (``baseline_meta`` says which).
    """

    graph: sparse.csr_array
    node_ids: np.ndarray
    circuit: str
    beta: float
    meta: dict
    degrees: dict[str, np.ndarray]  # "in", "out", "in_strength", "out_strength"
    fits: dict[str, PowerLawFit | str]  # "in", "out": a fit, or why there is none
    sweep: list[SweepPoint]
    timings: dict[str, float] = field(default_factory=dict)
    cuts: dict[str, dict] = field(default_factory=dict)
    baseline: StructureAnalysis | None = None
    baseline_meta: dict = field(default_factory=dict)

    @property
    def point(self) -> SweepPoint:
        """The sweep point at the analysed ``beta``."""
        return min(self.sweep, key=lambda p: abs(p.beta - self.beta))

    @property
    def n_edges(self) -> int:
        return int(self.graph.nnz)

    def modularity_verdict(self) -> str:
        """Where Q stands against the largest null over the sweep, and where graph or nulls fragment."""
        points = [p for p in self.sweep if p.result is not None and p.nulls]
        if not points:
            return "no null model measured"
        above = [p for p in points if p.Q > max(r.Q for r in p.nulls.values())]
        here = self.point
        words = [f"Q above every null at {len(above)} of {len(points)} edge counts"]
        if here.result is not None and here.nulls:
            name, top = max(here.nulls.items(), key=lambda kv: kv[1].Q)
            words.append(f"at m = {here.edges}: Q = {here.Q:.3f} against {top.Q:.3f} ({name})")
        fragmented = []
        for label, share in [("graph", lambda p: p.result.giant_component),
                             *[(name, lambda p, n=name: p.nulls[n].giant_component) for name in points[0].nulls]]:
            low = [p.edges for p in points if share(p) < FRAGMENTED]
            if low:
                fragmented.append(f"{label} at m <= {max(low)}")
        words.append(f"fragmented (< {FRAGMENTED:.0%} of nodes in the largest component): " +
                     (", ".join(fragmented) if fragmented else "none"))
        return "; ".join(words)

    def summary(self) -> dict:
        """The numbers a trained model is compared on with its baseline: degree spread, tails, Q against nulls."""
        point = self.point
        out = {"nodes": int(self.graph.shape[0]), "edges": self.n_edges, "beta": self.beta}
        for k in ("in", "out"):
            s, f = degrees.summary(self.degrees[k]), self.fits[k]
            out[k] = {"cv": s["cv"], "max": s["max"], "zeros": s["zeros"],
                      **({"alpha": f.alpha, "sigma": f.sigma, "xmin": f.xmin, "n_tail": f.n_tail,
                          "p_value": f.p_value, "verdict": f.verdict} if isinstance(f, PowerLawFit) else {"error": f})}
        if point.result is not None:
            out["modularity"] = {"Q": point.Q, "giant_component": point.result.giant_component,
                                 "nulls": {n: {"Q": r.Q, "giant_component": r.giant_component}
                                           for n, r in point.nulls.items()},
                                 "Q_minus_largest_null": point.Q - max((r.Q for r in point.nulls.values()),
                                                                       default=float("nan")),
                                 "verdict": self.modularity_verdict()}
        return out

    def _repr_html_(self) -> str:
        rows = [("graph", f"{self.graph.shape[0]} nodes, {self.n_edges:,} edges ({self.circuit} circuit, "
                          f"weights >= beta = {self.beta:.4g})")]
        baseline = f"{self.baseline_meta.get('kind', '')} baseline ".lstrip()
        for who, analysis in [("", self), (baseline, self.baseline)]:
            if analysis is None:
                continue
            rows += [(f"{who}{k}-degree", fit.verdict if isinstance(fit, PowerLawFit) else fit)
                     for k, fit in analysis.fits.items()]
            rows.append((f"{who}modularity", analysis.modularity_verdict()))
        return html_summary("structure analysis", rows)

    def partition_csv(self) -> str:
        """The analysed graph's Louvain partition as CSV, ``neuron,community`` (global neuron ids)."""
        labels = self.point.result.labels
        return "neuron,community\n" + "".join(f"{i},{c}\n" for i, c in zip(self.node_ids.tolist(), labels.tolist()))

    def to_dict(self) -> dict:
        fits = {k: (f.to_dict() if isinstance(f, PowerLawFit) else {"error": f}) for k, f in self.fits.items()}
        point = self.point
        report = {
            "graph": {**self.meta, "circuit": self.circuit, "beta": self.beta, "nodes": int(self.graph.shape[0]),
                      "edges": self.n_edges, "cuts": self.cuts},
            "degrees": {k: degrees.summary(v) for k, v in self.degrees.items()},
            "power_law": fits,
            "modularity": {**(point.result.to_dict() if point.result is not None else {}),
                           "nulls": {name: r.to_dict() for name, r in point.nulls.items()},
                           "verdict": self.modularity_verdict()},
            "sweep": [p.to_dict() for p in self.sweep],
            "timings_s": self.timings,
        }
        if self.baseline is not None:
            report["baseline"] = {**self.baseline_meta, **self.baseline.to_dict()}
            report["comparison"] = {"this": self.summary(), "baseline": self.baseline.summary()}
        return report

    def brief(self) -> str:
        """The head of the markdown report: the graph, then the summary table (this graph's figures beside the
        baseline's, when there is one) and the modularity verdict. ``bdh-graph analyze`` prints it."""
        return "\n".join(self._head_lines()) + "\n"

    def markdown(self) -> str:
        """The report in markdown: :meth:`brief`, then the degree and power-law table, the modularity table and
        the modularity-against-edges table."""
        r = self.to_dict()
        mod = r["modularity"]
        lines = [
            *self._head_lines(),
            "",
            "## Degrees and power-law fits (Clauset, Shalizi and Newman 2009)",
            "",
            "| degree | mean | CV | max | zeros | alpha | x_min | n_tail | KS D | bootstrap p | "
            "LR vs lognormal (R, p) | LR vs exponential (R, p) | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for k in ("in", "out"):
            s, f = r["degrees"][k], r["power_law"][k]
            stats = f"| {k} | {s['mean']:.2f} | {s['cv']:.2f} | {s['max']:.0f} | {s['zeros']} |"
            if "error" in f:
                lines.append(f"{stats} | | | | | | | {f['error']} |")
                continue
            lr = [f"{c['R']:.2f}, {c['p']:.2g}" for c in f["comparisons"].values()]
            lines.append(f"{stats} {f['alpha']:.3f} ± {f['sigma']:.3f} | {f['xmin']:.0f} | {f['n_tail']} | "
                         f"{f['ks_distance']:.4f} | {f['p_value']:.2f} ({f['n_bootstrap']} sets) | {' | '.join(lr)} | "
                         f"{f['verdict']} |")
        if "Q" in mod:
            graph = ("directed" if mod["directed"] else "undirected (symmetrised A + A^T)") + \
                    (", weighted" if mod["weighted"] else ", unweighted")
            lines += [
                "",
                f"## Modularity (Louvain, best of {len(mod['seeds'])} seeds; graph {graph}; backend {mod['backend']})",
                "",
                "| graph | Q | Q over seeds | communities | nodes in largest component |",
                "|---|---|---|---|---|",
                _modularity_row("this graph", mod),
                *[_modularity_row(f"null: {name} (same n, m)", v) for name, v in mod["nulls"].items()],
            ]
        names = list(self.sweep[0].nulls) if self.sweep and self.sweep[0].nulls else []
        if len(self.sweep) > 1:
            lines += ["", "## Modularity against the number of edges (Q [min, max over seeds], share of nodes in "
                          "the largest component)", "",
                      "| beta | edges | Q | " + " | ".join(f"Q {n}" for n in names) + " |",
                      "|---" * (3 + len(names)) + "|"]
            for p in r["sweep"]:
                lines.append(f"| {p['beta']:.6g} | {p['edges']} | {_cell(p)} | " +
                             " | ".join(_cell(p["nulls"][n]) if n in p["nulls"] else "" for n in names) + " |")
        return "\n".join(lines) + "\n"

    def _head_lines(self) -> list[str]:
        g = self.meta
        head = "whole graph" if g.get("head") is None else f"head {g['head']}"
        sides = {"this model": self.summary()}
        title = "## Summary"
        if self.baseline is not None:
            kind = self.baseline_meta.get("kind", "baseline")
            sides[kind] = self.baseline.summary()
            title += (f", against the baseline: {kind} model of the same configuration (seed "
                      f"{self.baseline_meta.get('seed', '?')}), at the same edge counts")
        return [
            f"# Structure of G_{g.get('which', '?')} ({g.get('form', '?')} form, {head}, {self.circuit} circuit)",
            "",
            f"- nodes n = {self.graph.shape[0]}, edges m = {self.n_edges} (weights >= beta = {self.beta:.6g})",
            "- cuts of the extraction: " + ", ".join(
                f"{name} G {'>= ' if name == 'excitatory' else '<= -'}{c['beta']:.6g} ({c['edges']} edges"
                f"{', analysed' if self.circuit in (name, 'both') else ''})" for name, c in self.cuts.items()),
            "- orientation: A[i, j] = weight of the edge i -> j (i presynaptic)",
            "",
            title,
            "",
            *_summary_table(sides),
            "",
            f"Modularity: {self.modularity_verdict()}.",
        ]


def _cell(v: dict) -> str:
    lo, hi = v["Q_spread"]
    return f"{v['Q']:.4f} [{lo:.4f}, {hi:.4f}], {v['giant_component']:.0%}"


def _modularity_row(label: str, v: dict) -> str:
    lo, hi = v["Q_spread"]
    return f"| {label} | {v['Q']:.4f} | [{lo:.4f}, {hi:.4f}] | {v['n_communities']} | {v['giant_component']:.1%} |"


def _summary_table(sides: dict[str, dict]) -> list[str]:
    """The figures of ``StructureAnalysis.summary`` as a markdown table, one column per side (a figure a side
    lacks is "-")."""
    summaries = list(sides.values())
    lines = ["| | " + " | ".join(sides) + " |", "|---" * (1 + len(sides)) + "|"]

    def row(label, get, fmt="{:.3g}"):
        values = []
        for side in summaries:
            try:
                values.append(fmt.format(get(side)))
            except (KeyError, TypeError):
                values.append("-")
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    row("nodes, edges", lambda s: (s["nodes"], s["edges"]), "{0[0]}, {0[1]}")
    row("beta (cut that keeps these edges)", lambda s: s["beta"], "{:.4g}")
    for k in ("in", "out"):
        row(f"{k}-degree CV (std / mean)", lambda s, k=k: s[k]["cv"], "{:.2f}")
        row(f"{k}-degree max", lambda s, k=k: s[k]["max"], "{:.0f}")
        row(f"{k}-degree tail: alpha from x_min (nodes in the tail)",
            lambda s, k=k: (s[k]["alpha"], s[k]["sigma"], s[k]["xmin"], s[k]["n_tail"]),
            "{0[0]:.2f} ± {0[1]:.2f} from {0[2]:.0f} ({0[3]})")
        row(f"{k}-degree verdict", lambda s, k=k: s[k].get("verdict", s[k].get("error")), "{}")
    row("Q (largest component share)", lambda s: (s["modularity"]["Q"], s["modularity"]["giant_component"]),
        "{0[0]:.3f} ({0[1]:.0%})")
    for name in summaries[0].get("modularity", {}).get("nulls", {}):
        row(f"Q of null {name} (largest component share)",
            lambda s, n=name: (s["modularity"]["nulls"][n]["Q"], s["modularity"]["nulls"][n]["giant_component"]),
            "{0[0]:.3f} ({0[1]:.0%})")
    row("Q minus the largest null's", lambda s: s["modularity"]["Q_minus_largest_null"], "{:+.3f}")
    return lines


def degree_fits(A, n_bootstrap: int = 100, seed: int = 0, progress: bool = False) -> tuple[dict, dict]:
    """In/out degrees and strengths of ``A``, and power-law fits of the degrees (a fit, or why there is none)."""
    deg = {"in": degrees.in_degree(A), "out": degrees.out_degree(A),
           "in_strength": degrees.in_strength(A), "out_strength": degrees.out_strength(A)}
    fits: dict[str, PowerLawFit | str] = {}
    for k in ("in", "out"):
        try:
            fits[k] = fit_power_law(deg[k], n_bootstrap=n_bootstrap, seed=seed, progress=progress)
        except GraphInputError as err:  # too few distinct degrees: the report says why there is no fit
            fits[k] = str(err)
    return deg, fits


def circuit_cuts(circuits: Circuits, circuit: str, beta: float) -> dict[str, dict]:
    """For each circuit of an extraction, the cut it was pruned at (its smallest weight kept) and its edge count;
    the analysed ``circuit`` (both, for ``"both"``) counts only its weights ``>= beta``."""
    cuts = {}
    for name in ("excitatory", "inhibitory"):
        data = circuits.circuit(name).data
        if circuit in (name, "both"):
            data = data[data >= beta]
        cuts[name] = {"beta": float(data.min()) if data.size else float("nan"), "edges": int(data.size)}
    return cuts


def _analysed(circuits: Circuits, circuit: str, beta: float | None):
    """The ``circuit`` of ``circuits`` as a square graph ``full`` with its node ``ids``, the ``beta`` analysed
    (default: the smallest weight kept) and ``A``, its edges of weight >= beta; refused when none is left."""
    full, ids = circuits.square(circuit)
    if full.nnz == 0:
        raise GraphInputError(f"the {circuit} circuit has no edges (largest |G| = "
                         f"{circuits.meta.get('largest_abs_weight', float('nan')):.4g}): choose a smaller beta")
    beta = float(full.data.min()) if beta is None else float(beta)
    A = at_beta(full, beta)
    if A.nnz == 0:
        raise GraphInputError(f"no {circuit} edge has weight >= beta = {beta:g} (largest is {full.data.max():.4g})")
    return full, ids, beta, A


def analyze_structure(circuits: Circuits, circuit: str = "excitatory", beta: float | None = None,
                      sweep_betas=(), seeds: int = 5, n_bootstrap: int = 100, directed: bool = False,
                      weighted: bool = False, nulls: tuple[str, ...] = NULL_MODELS, rank: int | None = None,
                      seed: int = 0, backend: str | None = None, progress: bool = False,
                      sweep_circuits: Circuits | None = None, scheduler=None) -> StructureAnalysis:
    """Degrees, power-law fits and modularity with nulls of one circuit of ``circuits`` at ``beta``.

    ``beta`` defaults to the smallest weight kept (every edge); ``sweep_betas`` adds points to the
    modularity-against-beta curve, cut from ``sweep_circuits`` (default ``circuits``; each beta >= its smallest
    weight kept). ``rank`` of the low-rank null defaults to the model's d, recorded in ``circuits.meta``.
    ``scheduler``: where the sweep's graphs are analysed (``bdh_graph.distributed.engine``; default this process).
    """
    full, ids, beta, A = _analysed(circuits, circuit, beta)
    rank = rank if rank is not None else circuits.meta.get("d")
    sweep_full = full if sweep_circuits is None else sweep_circuits.square(circuit)[0]
    for b in sweep_betas:
        if b < sweep_full.data.min():
            raise GraphInputError(f"sweep beta {b:g} is below the smallest weight kept ({sweep_full.data.min():.4g}): "
                             "extract the graph with a lower threshold first")
    timings = {}
    t = time.perf_counter()
    deg, fits = degree_fits(A, n_bootstrap, seed, progress)
    timings["power_law"] = time.perf_counter() - t
    t = time.perf_counter()
    graphs = [(beta, A), *((b, at_beta(sweep_full, b)) for b in sorted(set(map(float, sweep_betas)) - {beta}))]
    sweep = sweep_graphs(sorted(graphs, key=lambda bg: bg[0]), rank, seeds, nulls, directed, weighted, seed,
                         backend, progress, scheduler)
    timings["modularity"] = time.perf_counter() - t
    return StructureAnalysis(A, ids, circuit, beta, dict(circuits.meta), deg, fits, sweep, timings,
                             circuit_cuts(circuits, circuit, beta))


def _strongest(factors: GraphFactors, circuits: Circuits | None, circuit: str, m: int, progress,
               scheduler=None) -> Circuits:
    """``circuits`` if its ``circuit`` holds at least ``m`` edges, else the ``m`` strongest edges of each circuit
    extracted from ``factors``."""
    if circuits is not None and circuits.circuit(circuit).nnz >= m:
        return circuits
    return product_graph(factors, Strongest(m), progress, scheduler=scheduler)


def analyze_graph(factors: GraphFactors, circuits: Circuits, circuit: str = "excitatory",
                  beta: float | None = None, ladder=LADDER, sweep_betas=(), baseline: GraphFactors | None = None,
                  baseline_meta: dict | None = None, seeds: int = 5, n_bootstrap: int = 100, directed: bool = False,
                  weighted: bool = False, nulls: tuple[str, ...] = NULL_MODELS, seed: int = 0,
                  backend: str | None = None, progress: bool = False, scheduler=None) -> StructureAnalysis:
    """The analysis of ``bdh-graph analyze``: one circuit of ``circuits`` (extracted from ``factors``) at
    ``beta`` (default: every edge kept), modularity at the edge counts ``ladder`` x m around its m edges (and at
    ``sweep_betas``), and with ``baseline`` (another model's graph factors, same shape) the same analysis of the
    baseline at the same edge counts: its m strongest edges, and the ladder's counts.

    Where the ladder needs more edges than ``circuits`` holds, the strongest edges are extracted again from
    ``factors`` (one more tiled pass). ``scheduler`` runs the tiles and the sweep's graphs
    (``bdh_graph.distributed.engine``: None, this process; ``"local:N"``, an address or an ``Engine``).
    """
    _, _, beta, A = _analysed(circuits, circuit, beta)
    m = int(A.nnz)
    if baseline is not None and baseline.shape != factors.shape:
        raise GraphInputError(f"the baseline's graph has shape {baseline.shape}, this graph {factors.shape}")
    with engine(scheduler) as eng:  # one cluster for every step: tiles, sweeps, the baseline's
        counts = ladder_counts(m, ladder)
        options = dict(seeds=seeds, n_bootstrap=n_bootstrap, directed=directed, weighted=weighted, nulls=nulls,
                       rank=factors.meta.get("d"), seed=seed, backend=backend, progress=progress, scheduler=eng)
        t = time.perf_counter()
        denser = _strongest(factors, circuits, circuit, max(counts), progress, eng)
        extraction = time.perf_counter() - t
        kept = denser.square(circuit)[0]
        counts = [c for c in counts if c <= kept.nnz]  # a small graph may have fewer edges of this sign
        ladder_betas = betas_for_edges(kept, [c for c in counts if c != m])
        analysis = analyze_structure(circuits, circuit, beta, [*ladder_betas, *sweep_betas],
                                     sweep_circuits=denser, **options)
        analysis.timings["ladder_extraction"] = extraction
        if baseline is not None:
            t = time.perf_counter()
            base = _strongest(baseline, None, circuit, max(counts), progress, eng)
            base_full = base.square(circuit)[0]
            if base_full.nnz < m:
                raise GraphInputError(f"the baseline's {circuit} circuit has {base_full.nnz} edges, fewer than the {m} "
                                 "analysed here")
            base_beta, *base_betas = betas_for_edges(base_full, [m, *(c for c in counts if c != m and
                                                                       c <= base_full.nnz)])
            extraction = time.perf_counter() - t
            analysis.baseline = analyze_structure(base, circuit, float(base_beta), base_betas, **options)
            analysis.baseline.timings["extraction"] = extraction
            analysis.baseline_meta = dict(baseline_meta or {})
    return analysis
