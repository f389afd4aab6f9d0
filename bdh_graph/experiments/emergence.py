"""Does structure emerge with training? A head's G_x, the loss and the working memory over a run's snapshots.

``bdh-graph train --out RUN --snapshot-every K`` keeps the model at step 0 and every K steps as
``RUN/snapshots/step-NNNNNN.safetensors``; these snapshots are the series (the final ``RUN/model.safetensors`` is
one of them when the run's steps are a multiple of K; analyse it alone with ``bdh-graph analyze`` otherwise). For
each snapshot, in step order, :func:`emergence` measures

- the figures of ``bdh-graph analyze`` for one head of ``G_x`` (analysis form, excitatory circuit, the paper's
  edge density unless ``beta`` or ``edges``): in- and out-degree coefficient of variation (std / mean over all
  nodes), maximum and zero-degree nodes, the Clauset-Shalizi-Newman power-law fits, and Newman's Q (Louvain, best
  of ``seeds``) beside the three nulls with the same nodes and edges (G(n, m), degree-preserving rewiring, the
  random low-rank product), with the share of nodes in the largest component (``structure.report.analyze_graph``,
  the same call with the same seeds, so each snapshot's figures equal ``analyze``'s of that snapshot alone with the
  same ``--ladder``); with ``null_draws`` K > 0 also Q against K draws of each null (``structure.significance``,
  ``analyze --null-draws``): each null's mean, sd, z and p-value, and the verdicts then call Q above a null
  where its p-value is at most 0.05, not where Q exceeds the null's one draw;
- ``bits_per_byte``: the tensor model's bits per byte over a held-out passage (``model.evaluation``);
- ``memory``: bits per byte over the same passage on the graph network (hub wiring, exact) with the synapses as
  they are (``full``, equal to ``bits_per_byte`` up to round-off) and erased before every token (``no_memory``):
  the working-memory experiments' first two readings (``experiments.memory.memory_benefit``); ``benefit`` is no
  memory minus full.

Each snapshot is one task (``bdh_graph.distributed``): in this process or on Dask workers, which load the snapshot
from its path (so they must see the run folder), with the same result.

Across sizes, :func:`size_ladder` reads the reports (``emergence.json``) of runs of the same recipe at several
numbers of neurons per head and sets the figures of each run's last snapshot against n: the paper's claim is that
the structure grows with n.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..distributed import engine
from ..errors import RunError
from ..graphs import extract
from ..model.checkpoints import load_model, read_config
from ..model.evaluation import next_byte_report
from .memory import memory_benefit
from ..network.neurons import as_tokens
from ..structure.degrees import summary
from ..structure.powerlaw_fit import PowerLawFit
from ..structure.report import analyze_graph
from ..structure.significance import check_null_draws, null_distribution

SNAPSHOTS = "snapshots"  # the folder of a run that holds its snapshots
SNAPSHOT_NAME = re.compile(r"step-(\d{6})\.safetensors")
DEFAULT_BYTES = 256  # the held-out passage: a snapshot of the bundled size reads it in a few seconds
LADDER = (1.0,)  # modularity at the analysed edge count only (analyze's --ladder; each point costs as much again)


def find_snapshots(run_dir) -> list[tuple[int, Path]]:
    """The snapshots of the run in ``run_dir`` as ``(step, path)``, in step order, all of one configuration.

    Refused with :class:`RunError`: a folder without snapshots (saying how to make them), a snapshot whose
    configuration differs from the first's (naming both files and the fields)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise RunError(f"run folder '{run}' " + ("is a file" if run.exists() else "does not exist") +
                       "; expected the --out folder of 'bdh-graph train'")
    folder = run / SNAPSHOTS
    found = sorted((int(m.group(1)), p) for p in (folder.iterdir() if folder.is_dir() else ())
                   if (m := SNAPSHOT_NAME.fullmatch(p.name)) and p.is_file())
    if not found:
        raise RunError(f"run folder '{run}' has no snapshots (files {folder}/step-NNNNNN.safetensors); train with "
                       f"'bdh-graph train --out {run} --snapshot-every K' to keep the model at step 0 and every K "
                       "steps")
    first_step, first = found[0]
    config = read_config(first)
    for step, path in found[1:]:
        other = read_config(path)
        if other != config:
            differ = ", ".join(f"{k} {v} (not {config.to_dict()[k]})" for k, v in other.to_dict().items()
                               if config.to_dict()[k] != v)
            raise RunError(f"snapshot '{path}' has another configuration than '{first}': {differ}; a run folder "
                           "holds the snapshots of one run")
    return found


STRUCTURE_HEADER = "  CV in  CV out  zero in  Q      G(n,m)  rewired  low-rank"


def structure_row(snapshot: dict) -> str:
    """The degree and modularity figures of one snapshot as a row under ``STRUCTURE_HEADER``."""
    d, m = snapshot["degrees"], snapshot["modularity"]
    return (f"{d['in']['cv']:>6.2f} {d['out']['cv']:>7.2f} {d['in']['zero_degree']:>8} {m['Q']:>6.3f} "
            f"{m['nulls']['gnm']:>7.3f} {m['nulls']['rewired']:>8.3f} {m['nulls']['low_rank']:>9.3f}")


@dataclass
class EmergenceResult:
    """The series of :func:`emergence`: one dict per snapshot (module doc), in step order; ``to_dict`` is the
    report (``emergence.json``)."""

    run: str
    options: dict
    snapshots: list[dict]
    seconds: float

    @property
    def steps(self) -> list[int]:
        return [s["step"] for s in self.snapshots]

    def modularity_verdict(self) -> str:
        """Where Q stands against the three nulls, snapshot by snapshot (:func:`above_every_null`)."""
        above = [above_every_null(s["modularity"]) for s in self.snapshots]
        last = self.snapshots[-1]["modularity"]
        name, top = max(last["nulls"].items(), key=lambda kv: kv[1])
        at_last = f"at step {self.steps[-1]}: Q = {last['Q']:.3f}, largest null {top:.3f} ({name})"
        if "null_draws" in last:
            draws = last["null_draws"]
            at_last += (f"; against {draws['draws']} draws of each null, p = " +
                        ", ".join(f"{v['p']:.2g} ({k})" for k, v in draws["nulls"].items()))
        if all(above):
            return f"Q above every null at every snapshot; {at_last}"
        if not any(above):
            return f"Q above every null at no snapshot; {at_last}"
        if above[-1]:
            first_on = next(i for i in range(len(above)) if all(above[i:]))
            return f"Q rises above every null from step {self.steps[first_on]} on; {at_last}"
        return f"Q above every null at {sum(above)} of {len(above)} snapshots, not at the last; {at_last}"

    def degree_verdict(self) -> str:
        first, last = self.snapshots[0]["degrees"], self.snapshots[-1]["degrees"]
        return "; ".join(f"{k}-degree CV {first[k]['cv']:.2f} -> {last[k]['cv']:.2f}, max {first[k]['max']:.0f} -> "
                         f"{last[k]['max']:.0f}, zero-degree nodes {first[k]['zero_degree']} -> "
                         f"{last[k]['zero_degree']}" for k in ("in", "out")) + \
            f" (of {self.snapshots[-1]['graph']['nodes']}, steps {self.steps[0]} -> {self.steps[-1]})"

    def power_law_verdict(self) -> str:
        words = []
        for k in ("in", "out"):
            plausible = [s["step"] for s in self.snapshots if s["power_law"][k].get("plausible")]
            words.append(f"{k}-degree power law plausible at {len(plausible)} of {len(self.snapshots)} snapshots" +
                         (f" (steps {', '.join(map(str, plausible))})" if 0 < len(plausible) <= 6 else ""))
        return "; ".join(words)

    def loss_verdict(self) -> str:
        first, last = self.snapshots[0], self.snapshots[-1]
        return (f"held-out bits per byte {first['bits_per_byte']:.3f} -> {last['bits_per_byte']:.3f}; memory "
                f"benefit (no memory minus full) {first['memory']['benefit']:+.3f} -> "
                f"{last['memory']['benefit']:+.3f} bits per byte")

    def verdicts(self) -> dict[str, str]:
        return {"degrees": self.degree_verdict(), "power_law": self.power_law_verdict(),
                "modularity": self.modularity_verdict(), "loss": self.loss_verdict()}

    def to_dict(self) -> dict:
        return {"run": self.run, "options": self.options, "snapshots": self.snapshots, "verdicts": self.verdicts(),
                "seconds": self.seconds}

    def summary(self) -> str:
        lines = [f"{len(self.snapshots)} snapshots of {self.run}, steps {self.steps[0]} to {self.steps[-1]}, "
                 f"G_x head {self.options['head']}, {self.seconds:.0f} s:",
                 "  step   bits/byte  memory benefit" + STRUCTURE_HEADER]
        lines += [f"  {s['step']:>6} {s['bits_per_byte']:>9.3f} {s['memory']['benefit']:>+15.3f} {structure_row(s)}"
                  for s in self.snapshots]
        lines += [f"  {verdict}" for verdict in self.verdicts().values()]
        return "\n".join(lines)


def above_every_null(modularity: dict) -> bool:
    """Whether a snapshot's Q stands above every null: at p <= 0.05 against each null's draws when the snapshot has
    them (``null_draws``), else above each null's one draw."""
    if "null_draws" in modularity:
        return all(v["above"] for v in modularity["null_draws"]["nulls"].values())
    return modularity["Q"] > max(modularity["nulls"].values())


def snapshot_figures(path, step: int, head: int, beta, edges, ladder, seeds: int, n_bootstrap: int, seed: int,
                     tokens, backend, null_draws: int = 0) -> dict:
    """The figures of one snapshot (a task of :func:`emergence`; module doc), JSON-ready."""
    model = load_model(path)
    factors, prune, circuits = extract(model, "x", "analysis", head, beta=beta, edges=edges, circuit="excitatory")
    cut = beta if beta is not None else float(circuits.circuit("excitatory").data.min())
    analysis = analyze_graph(factors, circuits, "excitatory", cut, ladder, seeds=seeds, n_bootstrap=n_bootstrap,
                             seed=seed)
    point = analysis.point
    full, no_memory = memory_benefit(model, tokens, backend=backend)
    significance = {} if not null_draws else {"null_draws": null_distribution(
        analysis.graph, factors.meta.get("d"), null_draws, seeds, seed=seed).to_dict()}
    return {
        "step": step, "checkpoint": str(path),
        "bits_per_byte": next_byte_report(model, tokens, shown=0)["bits_per_byte"],
        "graph": {"nodes": int(analysis.graph.shape[0]), "edges": analysis.n_edges, "beta": analysis.beta,
                  "prune": repr(prune)},
        "degrees": {k: {"cv": s["cv"], "max": s["max"], "zero_degree": s["zeros"], "mean": s["mean"]}
                    for k, s in ((k, summary(analysis.degrees[k])) for k in ("in", "out"))},
        "power_law": {k: _fit(f) for k, f in analysis.fits.items()},
        "modularity": {"Q": point.Q, "nulls": {name: r.Q for name, r in point.nulls.items()},
                       "largest_component_share": point.result.giant_component,
                       "nulls_largest_component_share": {name: r.giant_component for name, r in point.nulls.items()},
                       "n_communities": point.result.n_communities, **significance},
        "memory": {"full": full.bits_per_byte, "no_memory": no_memory.bits_per_byte,
                   "benefit": no_memory.bits_per_byte - full.bits_per_byte},
    }


def _fit(fit: PowerLawFit | str) -> dict:
    if not isinstance(fit, PowerLawFit):
        return {"error": fit}
    return {"alpha": fit.alpha, "x_min": fit.xmin, "n_tail": fit.n_tail, "p_value": fit.p_value,
            "plausible": fit.plausible, "verdict": fit.verdict}


def emergence(run_dir, text, head: int = 0, beta: float | None = None, edges: int | None = None, ladder=LADDER,
              seeds: int = 5, n_bootstrap: int = 100, seed: int = 0, backend=None, null_draws: int = 0,
              progress: bool = False, scheduler=None) -> EmergenceResult:
    """The series of the module doc over the snapshots of ``run_dir``, the passage ``text`` (a string, its UTF-8
    bytes or token ids; at least 2 bytes) held out.

    ``head``, ``beta``, ``edges``, ``ladder``, ``seeds``, ``n_bootstrap``, ``seed``, ``null_draws``: as
    ``bdh-graph analyze`` (``ladder`` defaults to the analysed edge count alone; ``null_draws`` 0 or at least 2,
    0 for none); ``backend``: the network's; ``scheduler``: where the
    snapshots run, one task each (``bdh_graph.distributed.engine``; None: this process).
    """
    started = time.perf_counter()
    found = find_snapshots(run_dir)
    config = read_config(found[0][1])
    if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < config.n_head:
        raise ValueError(f"head: the run's model has heads 0..{config.n_head - 1}, got {head!r}")
    tokens = as_tokens(text, config.vocab_size, "text")
    if len(tokens) < 2:
        raise ValueError(f"text has {len(tokens)} byte; bits per byte need at least 2 (the predictions of bytes 2..T)")
    null_draws = check_null_draws(null_draws)
    options = dict(head=head, beta=beta, edges=edges, ladder=list(ladder), seeds=seeds, n_bootstrap=n_bootstrap,
                   seed=seed, tokens=tokens, backend=backend, null_draws=null_draws)
    with engine(scheduler) as eng:
        arguments = ((str(path), step, *options.values()) for step, path in found)
        done = dict(eng.map(snapshot_figures, arguments, len(found), "emergence", "snapshot", progress))
    options = {k: v for k, v in options.items() if k != "tokens"} | {"bytes": len(tokens)}
    return EmergenceResult(str(run_dir), options, [done[i] for i in range(len(found))], time.perf_counter() - started)


REPORT = "emergence.json"  # the report ``bdh-graph emergence --out DIR`` writes in DIR
COMPARED_OPTIONS = ("head", "beta", "edges", "ladder", "seeds", "n_bootstrap", "seed", "bytes")  # equal on a ladder


def report_file(path) -> Path:
    """``path`` itself, or the report in it when it is a folder (the ``--out`` of ``bdh-graph emergence``)."""
    path = Path(path)
    return path / REPORT if path.is_dir() else path


def read_report(path) -> dict:
    """The emergence report at ``path`` (an ``emergence.json``, or the ``--out`` folder holding one), parsed as
    JSON (never executed). Refused with :class:`RunError`, naming the file: missing, not JSON, not a report of
    ``bdh-graph emergence``."""
    file = report_file(path)
    where = f"emergence report '{file}'"
    if not file.is_file():
        raise RunError(f"{where} does not exist; 'bdh-graph emergence RUN_DIR --out DIR' writes DIR/{REPORT}")
    try:
        data = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"{where} is not JSON ({error})") from None
    snapshots = data.get("snapshots") if isinstance(data, dict) else None
    if not (isinstance(snapshots, list) and snapshots and isinstance(data.get("options"), dict) and
            all(isinstance(s, dict) and {"step", "graph", "degrees", "modularity"} <= set(s) for s in snapshots)):
        raise RunError(f"{where} is not a report of 'bdh-graph emergence' (a JSON object with 'options' and a "
                       "non-empty list of 'snapshots', each with its step, graph, degrees and modularity)")
    return data


@dataclass
class SizeLadder:
    """The last snapshot of each run of a ladder (the dict of :func:`snapshot_figures` with ``report``, the file
    it came from, and ``neurons``, the head's N), in the order of N; ``to_dict`` is the report
    (``emergence_sizes.json``)."""

    options: dict
    rungs: list[dict]

    @property
    def neurons(self) -> list[int]:
        return [r["neurons"] for r in self.rungs]

    def _at_each_n(self, values, form: str = "{:.2f}") -> str:
        return ", ".join(form.format(v) for v in values) + f" at n = {', '.join(map(str, self.neurons))}"

    @staticmethod
    def _trend(values) -> str:
        steps = np.sign(np.diff(values))
        return "rises with n" if (steps > 0).all() else "falls with n" if (steps < 0).all() else "not monotone in n"

    def degree_verdict(self) -> str:
        words = []
        for k in ("in", "out"):
            cv = [r["degrees"][k]["cv"] for r in self.rungs]
            zero = [r["degrees"][k]["zero_degree"] / r["neurons"] for r in self.rungs]
            words.append(f"{k}-degree CV {self._trend(cv)} ({self._at_each_n(cv)}), nodes without an edge "
                         f"{', '.join(f'{z:.0%}' for z in zero)}")
        return "; ".join(words)

    def power_law_verdict(self) -> str:
        words = []
        for k in ("in", "out"):
            plausible = [r["neurons"] for r in self.rungs if r["power_law"][k].get("plausible")]
            words.append(f"{k}-degree power law plausible at " +
                         (f"n = {', '.join(map(str, plausible))}" if plausible else "no n"))
        return "; ".join(words)

    def modularity_verdict(self) -> str:
        margin = [r["modularity"]["Q"] - max(r["modularity"]["nulls"].values()) for r in self.rungs]
        above = [n for n, r in zip(self.neurons, self.rungs) if above_every_null(r["modularity"])]
        where = ("at every n" if len(above) == len(margin) else "at no n" if not above else
                 f"at n = {', '.join(map(str, above))} only")
        tested = [(n, r["modularity"]["null_draws"]) for n, r in zip(self.neurons, self.rungs)
                  if "null_draws" in r["modularity"]]
        against = "" if not tested else " (p <= 0.05 against each null's draws" + \
            ("" if len(tested) == len(self.rungs) else f" at n = {', '.join(str(n) for n, _ in tested)}") + ")"
        return (f"Q above every null {where}{against}; Q minus the largest null {self._trend(margin)} "
                f"({self._at_each_n(margin, '{:+.3f}')})")

    def loss_verdict(self) -> str:
        bits = [r["bits_per_byte"] for r in self.rungs]
        return f"held-out bits per byte {self._at_each_n(bits, '{:.3f}')}"

    def verdicts(self) -> dict[str, str]:
        return {"degrees": self.degree_verdict(), "power_law": self.power_law_verdict(),
                "modularity": self.modularity_verdict(), "loss": self.loss_verdict()}

    def to_dict(self) -> dict:
        return {"options": self.options, "rungs": self.rungs, "verdicts": self.verdicts()}

    def summary(self) -> str:
        lines = [f"{len(self.rungs)} runs, the last snapshot of each, G_x head {self.options['head']}:",
                 "       n   step  bits/byte" + STRUCTURE_HEADER]
        lines += [f"  {r['neurons']:>6} {r['step']:>6} {r['bits_per_byte']:>10.3f} {structure_row(r)}"
                  for r in self.rungs]
        lines += [f"  {verdict}" for verdict in self.verdicts().values()]
        return "\n".join(lines)


def size_ladder(reports) -> SizeLadder:
    """The ladder of the module doc from the emergence reports ``reports`` (paths, :func:`read_report`), one run
    per size. Refused with :class:`RunError`: fewer than two reports, two of the same N, or reports measured with
    other options (head, pruning, seeds, passage; the backend may differ: the figures do not depend on it)."""
    paths = [report_file(p) for p in reports]
    if len(paths) < 2:
        raise RunError(f"a size ladder needs the emergence reports of at least two runs, got {len(paths)}")
    rungs, first = [], None
    for path in paths:
        data = read_report(path)
        options = {k: data["options"].get(k) for k in COMPARED_OPTIONS}
        if first is None:
            first = (path, options)
        elif options != first[1]:
            differ = ", ".join(f"{k} {options[k]!r} (not {first[1][k]!r})" for k in COMPARED_OPTIONS
                               if options[k] != first[1][k])
            raise RunError(f"emergence report '{path}' was measured with other options than '{first[0]}': {differ}; "
                           "run 'bdh-graph emergence' on every rung with the same options")
        last = data["snapshots"][-1]
        rungs.append({"report": str(path), "neurons": int(last["graph"]["nodes"]), **last})
    seen: dict[int, str] = {}
    for rung in rungs:
        if rung["neurons"] in seen:
            raise RunError(f"emergence reports '{seen[rung['neurons']]}' and '{rung['report']}' are of the same size "
                           f"(n = {rung['neurons']}); a ladder holds one run per size")
        seen[rung["neurons"]] = rung["report"]
    return SizeLadder(first[1], sorted(rungs, key=lambda r: r["neurons"]))


__all__ = ["DEFAULT_BYTES", "EmergenceResult", "LADDER", "REPORT", "SizeLadder", "emergence", "find_snapshots",
           "read_report", "size_ladder", "snapshot_figures"]
