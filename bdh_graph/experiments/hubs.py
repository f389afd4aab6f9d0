"""What the hub neurons of a head's G_x do: firing rate against degree, and the rich-club lesion.

The graph is the one ``bdh-graph analyze`` analyses (one head of ``G_x = D_x E``, analysis form, excitatory
circuit, the paper's edge density unless ``beta`` or ``edges``); its *core* is the neurons with at least one edge.
The network (hub wiring, exact) reads a text from a zero state:

- **rates**: each neuron's firing rate, its ``x`` (and its output ``y``) averaged over the text's tokens and the
  layers, against its in- and out-degree: Spearman's rank correlation rho (ties ranked by their mean, the
  zero-degree neurons included) with its two-sided p-value;
- **lesion** (the rich-club lesion of connectomics, e.g. van den Heuvel and Sporns 2011; Albert, Jeong and
  Barabasi 2000 for attack against failure): bits per byte of the text, ``-log2 p(byte | the bytes before)``
  averaged over bytes 2..T, with no neuron silenced, with the ``k`` highest-degree neurons silenced (in- plus
  out-degree; equal degrees by lower id), and with ``k`` neurons drawn at random, ``draws`` times, from the whole
  head and from its core (``Network.silence``: a silenced neuron never fires). Each draw has its own generator,
  seeded by ``seed``, ``k``, the pool and the draw (``task_rng``), so the draws do not depend on each other's
  count or order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..distributed import task_rng
from ..graphs import extract
from ..network import ActivityMonitor, build_network
from .memory import bits_per_prediction
from ..network.neurons import as_tokens
from ..structure.degrees import in_degree, out_degree

DEFAULT_K = (10, 50)  # neurons silenced
DEFAULT_DRAWS = 5  # random draws of k neurons per pool
POOLS = ("head", "core")  # where random neurons are drawn from
SIGNIFICANT = 0.01  # p-value under which a rank correlation is called a relation


@dataclass
class HubResult:
    """The experiment of the module doc; ``to_dict`` is its report (JSON-ready)."""

    head: int
    graph: dict  # nodes, edges, beta (the smallest weight kept), core
    neurons: np.ndarray  # the head's global neuron ids
    degrees: dict[str, np.ndarray]  # "in", "out"
    rates: dict[str, np.ndarray]  # "x", "y": mean over tokens and layers
    correlations: dict[str, dict[str, dict]]  # rate -> degree -> {"rho", "p"}
    no_lesion: float  # bits per byte
    lesions: list[dict]  # per k: {"k", "hubs": {neurons, bits_per_byte}, "random": {pool: [...] or reason}}
    n_bytes: int
    seconds: float

    def rate_verdict(self) -> str:
        """Whether the x-rate rises or falls with each degree (p < SIGNIFICANT), in words."""
        words = []
        for degree in ("in", "out"):
            c = self.correlations["x"][degree]
            relation = ("no relation" if not c["p"] < SIGNIFICANT else
                        "rises with" if c["rho"] > 0 else "falls with")
            words.append(f"x-rate {relation} {degree}-degree (rho = {c['rho']:+.2f}, p = {c['p']:.2g})")
        return "; ".join(words)

    def lesion_verdict(self, lesion: dict) -> str:
        """How silencing the ``k`` hubs compares with no lesion and with every random draw."""
        k, hubs = lesion["k"], lesion["hubs"]["bits_per_byte"]
        words = f"silencing the {k} highest-degree neurons: {hubs - self.no_lesion:+.3f} bits per byte"
        for pool, draws in lesion["random"].items():
            if isinstance(draws, str):
                continue
            costs = [d["bits_per_byte"] - self.no_lesion for d in draws]
            place = ("more than any" if hubs - self.no_lesion > max(costs) else
                     "less than any" if hubs - self.no_lesion < min(costs) else "within the range")
            words += (f"; {place} of {len(costs)} random draw{'s' if len(costs) > 1 else ''} of {k} from the {pool} "
                      f"({min(costs):+.3f} to {max(costs):+.3f})")
        return words

    def to_dict(self) -> dict:
        return {
            "head": self.head, "graph": self.graph, "bytes": self.n_bytes,
            "correlations": self.correlations, "no_lesion": self.no_lesion,
            "lesions": [{**lesion, "verdict": self.lesion_verdict(lesion)} for lesion in self.lesions],
            "verdicts": {"rates": self.rate_verdict()},
            "neurons": {"id": self.neurons.tolist(), "in_degree": self.degrees["in"].tolist(),
                        "out_degree": self.degrees["out"].tolist(), "x_rate": self.rates["x"].tolist(),
                        "y_rate": self.rates["y"].tolist()},
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        g = self.graph
        lines = [f"hub neurons of G_x head {self.head} ({g['nodes']} neurons, {g['edges']} edges, core of "
                 f"{g['core']}) over {self.n_bytes} bytes, {self.seconds:.0f} s:"]
        for rate in ("x", "y"):
            lines.append(f"  {rate}-rate against degree: " + ", ".join(
                f"{d} rho = {c['rho']:+.3f} (p = {c['p']:.2g})" for d, c in self.correlations[rate].items()))
        lines += [f"  {self.rate_verdict()}", f"  no neuron silenced: {self.no_lesion:.4f} bits per byte"]
        lines += [f"  {self.lesion_verdict(lesion)}" for lesion in self.lesions]
        return "\n".join(lines)


def check_hub_options(config, head: int, ks, draws: int) -> None:
    """Refuse bad arguments of :func:`hub_function` before any work, naming the argument."""
    if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not 0 <= head < config.n_head:
        raise ValueError(f"head: the model has heads 0..{config.n_head - 1}, got {head!r}")
    if not len(ks):
        raise ValueError("k: give at least one number of neurons to silence")
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= config.N]
    if bad:
        raise ValueError(f"k: the neurons silenced must number 1 to the head's N = {config.N}, got {bad}")
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draws: the random draws per pool must be an integer >= 1, got {draws!r}")


def hub_function(model, text, head: int = 0, beta: float | None = None, edges: int | None = None, ks=DEFAULT_K,
                 draws: int = DEFAULT_DRAWS, seed: int = 0, backend=None, progress: bool = False) -> HubResult:
    """The experiment of the module doc on ``model`` over ``text`` (a string, its UTF-8 bytes or token ids).

    ``head``, ``beta``, ``edges``: the graph, as ``bdh-graph analyze``; ``ks``: the numbers of neurons silenced
    (each 1..N); ``draws``: random draws per ``k`` and pool; ``seed``: of the draws; ``backend``: the network's.
    """
    started = time.perf_counter()
    c = model.config
    ks = list(ks)
    check_hub_options(c, head, ks, draws)
    tokens = as_tokens(text, c.vocab_size, "text")
    if len(tokens) < 2:
        raise ValueError(f"text has {len(tokens)} byte; bits per byte need at least 2 (the predictions of bytes 2..T)")
    _, prune, circuits = extract(model, "x", "analysis", head, beta=beta, edges=edges, circuit="excitatory")
    A, neurons = circuits.square("excitatory")
    degrees = {"in": in_degree(A), "out": out_degree(A)}
    total = degrees["in"] + degrees["out"]
    core = neurons[total > 0]
    net = build_network(model, wiring="hub", backend=backend)
    monitor = ActivityMonitor(which=("x", "y"))
    no_lesion = float(bits_per_prediction(net.run(tokens, monitors=[monitor], progress=progress), tokens).mean())
    rates = {}
    for which in ("x", "y"):
        summed = sum(np.bincount(n, weights=r, minlength=c.n_neurons)
                     for _, n, r in (monitor.raster(layer, which) for layer in range(c.n_layer)))
        rates[which] = summed[neurons] / (len(tokens) * c.n_layer)
    correlations = {which: {d: _spearman(rates[which], degrees[d]) for d in ("in", "out")} for which in rates}
    hubs = neurons[np.lexsort((neurons, -total))]  # highest degree first, lower id on ties
    pools = {"head": neurons, "core": core}
    lesions = []
    for k in ks:
        random = {}
        for index, (pool, ids) in enumerate(pools.items()):
            if k > len(ids):
                random[pool] = f"the {pool} has {len(ids)} neurons, fewer than k = {k}"
                continue
            chosen = [np.sort(task_rng(seed, k, index, draw).choice(ids, k, replace=False)) for draw in range(draws)]
            random[pool] = [{"neurons": draw.tolist(), "bits_per_byte": _silenced_bits(net, tokens, draw)}
                            for draw in chosen]
        lesions.append({"k": k, "hubs": {"neurons": np.sort(hubs[:k]).tolist(),
                                         "bits_per_byte": _silenced_bits(net, tokens, hubs[:k])},
                        "random": random})
    graph = {"nodes": int(A.shape[0]), "edges": int(A.nnz), "beta": float(A.data.min()), "core": int(len(core)),
             "prune": repr(prune)}
    return HubResult(head, graph, neurons, degrees, rates, correlations, no_lesion, lesions, len(tokens),
                     time.perf_counter() - started)


def _spearman(rate: np.ndarray, degree: np.ndarray) -> dict:
    rho, p = stats.spearmanr(rate, degree)
    return {"rho": float(rho), "p": float(p)}


def _silenced_bits(net, tokens: np.ndarray, neurons: np.ndarray) -> float:
    """Bits per byte of ``tokens`` read from a zero state with ``neurons`` silenced."""
    net.reset()
    net.silence(neurons)
    try:
        return float(bits_per_prediction(net.run(tokens, progress=False), tokens).mean())
    finally:
        net.silence(None)


__all__ = ["DEFAULT_DRAWS", "DEFAULT_K", "HubResult", "check_hub_options", "hub_function"]
