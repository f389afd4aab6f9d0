"""Working-memory experiments: where the model's memory lives during inference (the paper's central claim).

BDH's working memory is its synaptic state: ``sigma`` in the graph form, seen through the hubs as
``rho = E_ext sigma`` (the hub wiring, the tensor model; docs/model.md 3-4). :func:`memory_experiments` reads a
text on the graph network with the synapses treated one way at a time and reports bits per byte, the mean over
the n-1 predictions of bytes 2..n of ``-log2 p(byte | the bytes before it)``:

- ``bits_per_byte``: the synapses as they are (it equals the tensor model's figure over the same bytes);
- ``no_memory``: the synapses erased before every token, i.e. what the model knows without working memory. With
  ``rho = 0`` the read ``a = rho k`` is zero whatever the position, so this is the tensor model stepped from a
  fresh state at every token;
- ``horizon``: forgetting with time constant tau, ``sigma <- exp(-1/tau) sigma`` (so ``rho`` alike) before each
  token's read: a write made s tokens ago keeps the fraction ``exp(-s/tau)``. tau -> infinity is full memory,
  tau -> 0 no memory; bits per byte against tau is the memory span the model uses;
- ``lesions``: the synapses of one layer (every head), of one head (in every layer), or the m strongest synapses
  (largest ``|sigma[layer, head][i, j]|`` after the full-memory reading) held at zero throughout a reading
  (``Network.lesion``). The hub wiring stores rho, not sigma; there a synapse is held at zero by taking back,
  after every write, exactly what the write added through it: ``E_ext[:, i] w_i k_j`` on column j of rho
  (``HubWiring.hold_at_zero``). The strongest are found from the Hebbian factors of the full-memory reading,
  ``sigma[i, j] = sum_t w_t[i] k_t[j]`` (the trace w and the rotated x, ``k = R_t x``; ``SynapseMonitor``'s
  rule, for every pair at once). A layer whose synapses are erased reads ``a = 0``, so its y is zero and it
  passes v on unchanged (up to LayerNorm's epsilon): as all layers share one set of weights, erasing any one
  layer runs, in effect, a model one layer shallower;
- ``repeat``: a passage read twice: bits per byte of the first reading, of the second, and of the second with the
  synapses erased in between (each over the predictions of the passage's bytes 2..n).

The tensor model runs every condition that it has on its state ``rho`` (``tensor_*`` beside each figure): all but
the strongest-synapse lesions, which name entries of sigma, a state the tensor model does not hold.
"""
from __future__ import annotations

import copy
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.special import log_softmax
import torch

from ..distributed import engine
from ..network import build_network
from ..network.address import Synapse
from ..network.monitors import Monitor
from ..network.neurons import as_tokens

REPEAT_BYTES = 256  # the passage read twice: the text's first bytes
DEFAULT_STRONGEST = (1000,)
SHOWN_STRONGEST = 10  # the strongest synapses named in a report


def time_constant_ladder(n_bytes: int) -> list[float]:
    """tau = 1, 2, 4, ... tokens up to the first power of two at least twice the text's length."""
    top = max(1, math.ceil(math.log2(2 * n_bytes)))
    return [float(2**k) for k in range(top + 1)]


def bits_per_prediction(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """``-log2 p(tokens[t+1] | logits[t])`` for t = 0 .. T-2: the bits of each prediction of bytes 2..T."""
    log_p = log_softmax(np.asarray(logits, dtype=np.float64)[:-1], axis=1)
    return -log_p[np.arange(len(log_p)), tokens[1:]] / math.log(2)


@dataclass
class Reading:
    """One reading of a text with the synapses treated one way: ``bits`` of each prediction (bytes 2..n) on the
    network, and on the tensor model where it has the condition (else None)."""

    label: str
    bits: np.ndarray
    tensor_bits: np.ndarray | None = None
    spec: dict = field(default_factory=dict)  # what was done: e.g. {"time_constant": 16.0} or {"layer": 2}

    @property
    def bits_per_byte(self) -> float:
        return float(self.bits.mean())

    @property
    def tensor_bits_per_byte(self) -> float | None:
        return None if self.tensor_bits is None else float(self.tensor_bits.mean())

    def to_dict(self) -> dict:
        return {**self.spec, "bits_per_byte": self.bits_per_byte, "tensor_bits_per_byte": self.tensor_bits_per_byte}


@dataclass
class MemoryResult:
    """The working-memory experiments over a text (:func:`memory_experiments`); ``to_dict`` is the report."""

    tokens: np.ndarray
    network: dict  # wiring, backend, device, dtype, prune, synapses
    full: Reading
    no_memory: Reading
    horizon: list[Reading]
    lesions: list[Reading]
    repeat: dict[str, Reading]  # first, second, second_erased
    strongest: list[dict]  # the strongest synapses after the full-memory reading: address, sigma
    seconds: float

    @property
    def benefit(self) -> float:
        """What working memory is worth over the text: no-memory minus full-memory bits per byte."""
        return self.no_memory.bits_per_byte - self.full.bits_per_byte

    def memory_span(self) -> float | None:
        """The time constant at which forgetting keeps half the benefit of full memory: the first tau of the
        ladder whose benefit reaches half, interpolated linearly in log tau from the tau before it. None when
        memory does not help (benefit <= 0) or the ladder never reaches half (the span is longer)."""
        half = self.benefit / 2
        if half <= 0:
            return None
        previous = None
        for reading in self.horizon:
            tau, gain = reading.spec["time_constant"], self.no_memory.bits_per_byte - reading.bits_per_byte
            if gain >= half:
                if previous is None:
                    return tau
                tau0, gain0 = previous
                share = (half - gain0) / (gain - gain0)
                return float(math.exp(math.log(tau0) + share * (math.log(tau) - math.log(tau0))))
            previous = tau, gain
        return None

    def horizon_verdict(self) -> str:
        full, none = self.full.bits_per_byte, self.no_memory.bits_per_byte
        best = min(self.horizon, key=lambda r: r.bits_per_byte)
        best_tau = f"tau = {_tokens(best.spec['time_constant'])} ({best.bits_per_byte:.2f} bits per byte)"
        if self.benefit <= 0:
            return (f"memory does not help over this text: full memory {full:.2f} vs no memory {none:.2f} bits per "
                    f"byte; forgetting does best at {best_tau}")
        span, shortest = self.memory_span(), self.horizon[0].spec["time_constant"]
        half = f"memory span: half the benefit of memory ({self.benefit:.2f} bits per byte) is reached"
        if span is None:
            verdict = f"{half} only beyond tau = {_tokens(self.horizon[-1].spec['time_constant'])}"
        elif span == shortest:
            verdict = f"{half} already at tau = {_tokens(shortest)}, the shortest tried"
        else:
            verdict = f"{half} at tau = {_tokens(float(f'{span:.3g}'))}"
        if best.bits_per_byte < full:
            verdict += f"; forgetting beats full memory, best at {best_tau}"
        return verdict

    def middle(self) -> Reading:
        """The forgetting reading shown beside full and no memory: the ladder's tau nearest the memory span when
        the span lies inside the ladder, else the ladder's middle."""
        span = self.memory_span()
        if span is None or span == self.horizon[0].spec["time_constant"]:
            return self.horizon[len(self.horizon) // 2]
        return min(self.horizon, key=lambda r: abs(math.log(r.spec["time_constant"] / span)))

    def per_byte_verdict(self) -> str:
        middle = self.middle()
        better = float(np.mean(self.full.bits < self.no_memory.bits))
        return (f"per-byte loss: full memory beats no memory on {better:.0%} of the bytes; bits per byte: full "
                f"{self.full.bits_per_byte:.2f}, forgetting with tau = {middle.spec['time_constant']:g} "
                f"{middle.bits_per_byte:.2f}, none {self.no_memory.bits_per_byte:.2f}")

    def lesion_verdict(self) -> str:
        if not self.lesions:
            return "lesions: none asked for"
        worst = max(self.lesions, key=lambda r: r.bits_per_byte)
        cost = worst.bits_per_byte - self.full.bits_per_byte
        if cost <= 0:
            return (f"lesions: none raises the loss above full memory ({self.full.bits_per_byte:.2f} bits per byte)")
        return (f"lesions: erasing {worst.label} costs most, +{cost:.2f} bits per byte over full memory "
                f"({self.full.bits_per_byte:.2f})")

    def repeat_verdict(self) -> str:
        first, second, erased = (self.repeat[k].bits_per_byte for k in ("first", "second", "second_erased"))
        return (f"repeat: a {self.repeat['first'].spec['bytes']}-byte passage read twice: {first:.2f} then "
                f"{second:.2f} bits per byte ({first - second:+.2f} recalled); with the synapses erased in between "
                f"{erased:.2f}")

    def to_dict(self) -> dict:
        """The report (JSON-ready): each figure of the network with its tensor twin ``tensor_...`` (None where the
        tensor model has no such condition), the per-byte losses of the figure and the verdicts."""
        repeat = {"bytes": self.repeat["first"].spec["bytes"]}
        for name, reading in self.repeat.items():
            repeat[name], repeat[f"tensor_{name}"] = reading.bits_per_byte, reading.tensor_bits_per_byte
        middle = self.middle()
        return {
            "bytes": len(self.tokens), "network": self.network,
            "bits_per_byte": self.full.bits_per_byte, "tensor_bits_per_byte": self.full.tensor_bits_per_byte,
            "no_memory": self.no_memory.bits_per_byte, "tensor_no_memory": self.no_memory.tensor_bits_per_byte,
            "horizon": [r.to_dict() for r in self.horizon], "memory_span": self.memory_span(),
            "lesions": [{"lesion": r.label, **r.to_dict()} for r in self.lesions],
            "strongest_synapses": self.strongest, "repeat": repeat,
            "per_byte": {"full": self.full.bits.tolist(), "no_memory": self.no_memory.bits.tolist(),
                         "time_constant": middle.spec["time_constant"], "forgetting": middle.bits.tolist()},
            "verdicts": {"horizon": self.horizon_verdict(), "per_byte": self.per_byte_verdict(),
                         "lesions": self.lesion_verdict(), "repeat": self.repeat_verdict()},
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        """The report in words, one figure a line."""
        net = self.network

        def both(r: Reading) -> str:
            tensor = "" if r.tensor_bits is None else f" (tensor model {r.tensor_bits_per_byte:.4f})"
            return f"{r.bits_per_byte:.4f}{tensor}"

        lines = [f"working memory of the {net['wiring']} network ({net['backend']}, {net['dtype']}, prune "
                 f"{net['prune']}) over {len(self.tokens)} bytes, {self.seconds:.0f} s:",
                 f"  full memory: {both(self.full)} bits per byte",
                 f"  no memory:   {both(self.no_memory)}",
                 "  forgetting:  " + ", ".join(f"tau {r.spec['time_constant']:g}: {r.bits_per_byte:.3f}"
                                               for r in self.horizon),
                 f"  {self.horizon_verdict()}"]
        lines += [f"  lesion {r.label}: {both(r)}" for r in self.lesions]
        lines += [f"  {self.lesion_verdict()}", f"  {self.repeat_verdict()}"]
        return "\n".join(lines)


def _tokens(tau: float) -> str:
    return f"{tau:g} token" + ("" if tau == 1 else "s")


class HebbianFactors(Monitor):
    """Records each token's Hebbian factors, per layer the trace ``w`` (n+V, kept sparse) and ``k = R_t x`` (n),
    from which every synapse after the reading is ``sigma[layer, head][i, j] = sum_t gamma_h ** (T-1-t) w_t[i]
    k_t[j]`` (``gamma_h`` a damped model's factor, 1 without damping)."""

    variables = frozenset({"w", "k"})

    def __init__(self):
        super().__init__()
        self._w: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (layer, neuron, value) of each token
        self._k: list[np.ndarray] = []

    def record(self, record: dict) -> None:
        super().record(record)
        layer, neuron = np.nonzero(record["w"])
        self._w.append((layer, neuron, record["w"][layer, neuron]))
        self._k.append(record["k"])

    def attach(self, network) -> None:
        super().attach(network)
        self._decay = network.decay()  # a damped model's write of token t is weighted by gamma_h ** (T-1-t)

    def sigma(self, layer: int, head: int) -> np.ndarray:
        """``sigma[layer, head]`` (n+V, N) after the recorded tokens, dense: ``sum_t gamma_h ** (T-1-t) w_t k_t^T``
        (gamma = 1 without damping)."""
        self._attached("sigma")
        c = self.config
        T = len(self._k)
        rows = [(np.full(int((lay == layer).sum()), t), neuron[lay == layer], value[lay == layer])
                for t, (lay, neuron, value) in enumerate(self._w)]
        t, i, v = (np.concatenate(parts) for parts in zip(*rows))
        W = sp.csr_array((v, (t, i)), shape=(T, c.n_neurons + c.vocab_size))
        K = np.stack([k[layer, head * c.N:(head + 1) * c.N] for k in self._k])  # T, N
        return W.T @ (K * (self._decay[head] ** np.arange(T - 1, -1, -1))[:, None])


def strongest_synapses(net, factors: HebbianFactors, m: int) -> dict[str, np.ndarray]:
    """The ``m`` synapses of ``net`` with the largest ``|sigma|`` after the reading ``factors`` recorded, over all
    layers and heads (on a synapse graph, among the synapses that exist). Returns arrays ``layer``, ``head``,
    ``pre`` (i), ``post`` (j within the head) and ``sigma``, strongest first (equal ones in a fixed order)."""
    c = net.config
    columns: dict[str, list] = {name: [] for name in ("layer", "head", "pre", "post", "sigma")}
    for layer in range(c.n_layer):
        for head in range(c.n_head):
            S = factors.sigma(layer, head)
            if net.synapse_graph is None:
                strength = np.abs(S).ravel()
            else:
                pre, post = sp.csr_array(net.synapse_graph[:, head * c.N:(head + 1) * c.N]).nonzero()
                strength = np.abs(S[pre, post])
            keep = np.arange(strength.size) if m >= strength.size else np.argpartition(-strength, m - 1)[:m]
            if net.synapse_graph is None:
                pre, post = np.unravel_index(keep, S.shape)
            else:
                pre, post = pre[keep], post[keep]
            for name, values in (("layer", np.full(len(pre), layer)), ("head", np.full(len(pre), head)),
                                 ("pre", pre), ("post", post), ("sigma", S[pre, post])):
                columns[name].append(np.asarray(values))
    found = {name: np.concatenate(parts) for name, parts in columns.items()}
    order = np.lexsort((found["post"], found["pre"], found["head"], found["layer"], -np.abs(found["sigma"])))[:m]
    return {name: values[order] for name, values in found.items()}


def n_synapses(net) -> int:
    """Synapses sigma of the network: every (presynaptic neuron, x-neuron) pair of every layer, or those of its
    synapse graph (the hub wiring stores rho, but its sigma has every pair)."""
    c = net.config
    per_layer = (c.n_neurons + c.vocab_size) * c.n_neurons if net.synapse_graph is None else net.synapse_graph.nnz
    return c.n_layer * per_layer


def check_experiments(config, n_tokens: int, time_constants, layers, heads, strongest, repeat_bytes) -> None:
    """Refuse bad arguments of :func:`memory_experiments` before any work, naming the argument."""
    if n_tokens < 2:
        raise ValueError(f"text has {n_tokens} byte; the memory experiments need at least 2 (bits per byte are "
                         "the predictions of bytes 2..n)")
    if not time_constants:
        raise ValueError("time_constants is empty: give at least one time constant (tokens)")
    bad = [tau for tau in time_constants if isinstance(tau, bool) or not isinstance(tau, Real) or not tau > 0]
    if bad:
        raise ValueError(f"time_constants must be numbers > 0 (tokens), got {bad}")
    for name, given, top in (("layers", layers, config.n_layer), ("heads", heads, config.n_head)):
        bad = [v for v in given if not _is_int(v) or not 0 <= v < top]
        if bad:
            raise ValueError(f"{name}: the model has {name} 0..{top - 1}, got {bad}")
    bad = [m for m in strongest if not _is_int(m) or m < 1]
    if bad:
        raise ValueError(f"strongest: the number of synapses lesioned must be an integer >= 1, got {bad}")
    if not _is_int(repeat_bytes) or repeat_bytes < 2:
        raise ValueError(f"repeat_bytes must be an integer >= 2, got {repeat_bytes!r}")


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def memory_experiments(model, text, wiring: str = "hub", prune=None, synapses="all", dtype=np.float64,
                       backend=None, device=None, time_constants=None, layers=None, heads=None,
                       strongest=DEFAULT_STRONGEST, repeat_bytes: int = REPEAT_BYTES, tensor: bool = True,
                       progress: bool = False, scheduler=None) -> MemoryResult:
    """The working-memory experiments of the module doc over ``text`` (a string, its UTF-8 bytes, or token ids).

    Args:
        model: a tensor ``BDH``; the network is built from it (``wiring``, ``prune``, ``synapses``, ``dtype``,
            ``backend``, ``device`` as in ``build_network``, rate mode) and the tensor model's figures come from a
            copy of it in ``dtype``, in eval mode.
        time_constants: the forgetting ladder in tokens, each > 0 (default: ``time_constant_ladder``).
        layers, heads: the layers and heads lesioned, one at a time (default: each); a head is lesioned in every
            layer.
        strongest: for each m, a lesion of the m strongest synapses (|sigma| after the full-memory reading).
        repeat_bytes: the passage read twice is the text's first ``repeat_bytes`` bytes (the whole text if
            shorter).
        tensor: also run the tensor model.
        progress: a progress bar over the readings.
        scheduler: where the readings run (``bdh_graph.distributed.engine``: None, this process; ``"local:N"``, a
            scheduler address or an ``Engine``). Each reading is a task; a worker builds its network from the
            model once and reads every condition it is given on it, from a zero state. The results are the same.

    >>> result = memory_experiments(model, "Dragons hatch from eggs. Dragons hatch.")   # doctest: +SKIP
    >>> result.to_dict()["bits_per_byte"], result.to_dict()["no_memory"]
    """
    c = model.config
    tokens = as_tokens(text, c.vocab_size, "text")
    time_constants = list(time_constant_ladder(len(tokens)) if time_constants is None else time_constants)
    layers = list(range(c.n_layer)) if layers is None else list(layers)
    heads = list(range(c.n_head)) if heads is None else list(heads)
    strongest = list(strongest)
    check_experiments(c, len(tokens), time_constants, layers, heads, strongest, repeat_bytes)
    time_constants = sorted(float(tau) for tau in time_constants)
    reader = _Reader(model, tokens, dict(wiring=wiring, prune=prune, synapses=synapses, dtype=dtype,
                                         backend=backend, device=device), tensor)
    with engine(scheduler) as eng, _one_torch_thread():
        return _experiments(reader, eng, time_constants, layers, heads, strongest, repeat_bytes, progress)


def memory_benefit(model, text, wiring: str = "hub", backend=None) -> tuple[Reading, Reading]:
    """The ``full`` and ``no_memory`` readings of :func:`memory_experiments` alone, on the network in float64 in
    this process (what an emergence study records for each snapshot): ``(full, no_memory)``, the same readings as
    :func:`memory_experiments` with these arguments gives."""
    tokens = as_tokens(text, model.config.vocab_size, "text")
    check_experiments(model.config, len(tokens), [1.0], [], [], [], 2)
    reader = _Reader(model, tokens, dict(wiring=wiring, prune=None, synapses="all", dtype=np.float64,
                                         backend=backend, device=None), tensor=False)
    readings = {key: _read(reader, condition)[0] for key, condition in _memory_conditions().items()}
    return readings["full"], readings["no_memory"]


def _memory_conditions(strongest: int = 0) -> dict[str, _Condition]:
    """The two readings every memory study starts from: full memory (finding the ``strongest`` synapses after it)
    and no memory (the synapses erased before every token)."""
    return {"full": _Condition("full memory", {}, strongest=strongest),
            "no_memory": _Condition("no memory", {}, decay=0.0)}


class _Reader:
    """Reads the text from a zero state on the network and the tensor model, one condition at a time. The network
    (and the tensor model's copy in its dtype) is built on first use, once per thread: in this process once, on
    Dask once per worker thread, from the model scattered to it (the cache does not travel)."""

    def __init__(self, model, tokens: np.ndarray, options: dict, tensor: bool) -> None:
        self.model, self.tokens, self.options, self.tensor = model, tokens, options, tensor
        self._local = threading.local()

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "_local"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def network(self):
        if getattr(self._local, "net", None) is None:
            self._local.net = build_network(self.model, **self.options)
        return self._local.net

    def reference(self):
        """The tensor model in the network's dtype, in eval mode (None without ``tensor``)."""
        if not self.tensor:
            return None
        if getattr(self._local, "reference", None) is None:
            torch_dtype = torch.float64 if self.network().dtype == np.float64 else torch.float32
            self._local.reference = copy.deepcopy(self.model).to(device=self.options["device"] or "cpu",
                                                                 dtype=torch_dtype).eval()
        return self._local.reference


@dataclass(frozen=True)
class _Condition:
    """One reading's treatment of the synapses: scaled by ``decay`` before each token's read, the ``erased``
    (layer, head) blocks of the tensor model's rho, the network's ``lesion``; with ``strongest`` > 0 the reading
    also finds the ``strongest`` synapses after it (``strongest_synapses``)."""

    label: str
    spec: dict
    decay: float = 1.0
    erased: tuple = ()
    lesion: dict | None = None
    in_tensor: bool = True
    strongest: int = 0

    def read(self, reader: _Reader) -> tuple[Reading, dict | None]:
        net, reference, tokens = reader.network(), reader.reference(), reader.tokens
        factors = HebbianFactors() if self.strongest else None
        bits = bits_per_prediction(_network_logits(net, tokens, self.decay, self.lesion,
                                                   [factors] if factors else ()), tokens)
        tensor_bits = None
        if reference is not None and self.in_tensor:
            tensor_bits = bits_per_prediction(_tensor_logits(reference, tokens, self.decay, self.erased)[0], tokens)
        found = strongest_synapses(net, factors, self.strongest) if factors else None
        return Reading(self.label, bits, tensor_bits, self.spec), found


@dataclass(frozen=True)
class _Repeat:
    """The passage read twice (:func:`_repeat`)."""

    passage: np.ndarray

    def read(self, reader: _Reader) -> tuple[dict[str, Reading], None]:
        return _repeat(reader.network(), reader.reference(), self.passage), None


def _read(reader: _Reader, condition) -> tuple:
    """One reading (a task of :func:`memory_experiments`)."""
    with _one_torch_thread():
        return condition.read(reader)


def _read_all(eng, shared: _Reader, conditions: dict, desc: str, progress: bool) -> dict:
    """Every condition read as a task of ``eng``: each result (reading, strongest synapses found) under the
    condition's key."""
    keys = list(conditions)
    return {keys[index]: result
            for index, result in eng.map(_read, ((shared, condition) for condition in conditions.values()),
                                         len(keys), desc, "reading", progress)}


def _experiments(reader: _Reader, eng, time_constants, layers, heads, strongest, repeat_bytes,
                 progress) -> MemoryResult:
    """:func:`memory_experiments` after its arguments were checked: the readings as tasks of ``eng``, in two
    waves (the strongest synapses' lesions need the full-memory reading), each keyed by its condition."""
    c, tokens = reader.model.config, reader.tokens
    started = time.perf_counter()
    net = reader.network()
    too_many = [m for m in strongest if m > n_synapses(net)]
    if too_many:
        raise ValueError(f"strongest: the network has {n_synapses(net)} synapses sigma, got {too_many}")
    first = _memory_conditions(max(strongest, default=0))
    for tau in time_constants:
        first["tau", tau] = _Condition(f"tau = {tau:g}", {"time_constant": tau,
                                                          "retained_per_token": math.exp(-1 / tau)},
                                       decay=math.exp(-1 / tau))
    for layer in layers:
        blocks = tuple((layer, head) for head in range(c.n_head))
        first["layer", layer] = _Condition(f"layer {layer}", {"layer": layer}, erased=blocks,
                                           lesion={block: "all" for block in blocks})
    for head in heads:
        blocks = tuple((layer, head) for layer in range(c.n_layer))
        first["head", head] = _Condition(f"head {head}", {"head": head}, erased=blocks,
                                         lesion={block: "all" for block in blocks})
    first["repeat"] = _Repeat(tokens[:repeat_bytes])
    with eng.shared(reader) as (shared,):  # one copy for both waves: a worker keeps the network it built
        done = _read_all(eng, shared, first, "memory experiments", progress)
        found = done["full"][1]
        done |= _read_all(eng, shared, _strongest_lesions(c, found, strongest),
                          "memory experiments: the strongest synapses", progress)
    reading = {key: result[0] for key, result in done.items()}
    lesions = ([reading["layer", layer] for layer in layers] + [reading["head", head] for head in heads]
               + [reading["strongest", m] for m in strongest])
    shown = [] if not strongest else [
        {"address": Synapse(int(layer), int(i), int(head) * c.N + int(j)).address(c), "sigma": float(sigma)}
        for layer, head, i, j, sigma in zip(*(found[k][:SHOWN_STRONGEST]
                                              for k in ("layer", "head", "pre", "post", "sigma")))]
    description = {"wiring": net.wiring, "backend": net.backend.name, "device": str(net.backend.device),
                   "dtype": str(net.dtype), "prune": net.description["prune"],
                   "synapses": "all" if net.synapse_graph is None else f"synapse graph of {net.synapse_graph.nnz}"}
    return MemoryResult(tokens, description, reading["full"], reading["no_memory"],
                        [reading["tau", tau] for tau in time_constants], lesions, reading["repeat"], shown,
                        time.perf_counter() - started)


def _strongest_lesions(config, found: dict | None, strongest: list[int]) -> dict[tuple, _Condition]:
    """For each m of ``strongest`` a lesion of the m strongest synapses of ``found`` (``strongest_synapses`` for the
    largest m: the m strongest for every m are its first m), under the key ``("strongest", m)``."""
    conditions = {}
    for m in strongest:
        top = {name: values[:m] for name, values in found.items()}
        lesion = {}
        for layer, head in sorted(set(zip(top["layer"].tolist(), top["head"].tolist()))):
            mine = (top["layer"] == layer) & (top["head"] == head)
            lesion[(layer, head)] = np.stack([top["pre"][mine], top["post"][mine]], axis=1)
        spec = {"strongest": m, "per_layer": np.bincount(top["layer"], minlength=config.n_layer).tolist(),
                "from_input_neurons": int((top["pre"] >= config.n_neurons).sum()),
                "smallest_sigma": float(np.abs(top["sigma"][-1]))}
        conditions["strongest", m] = _Condition(f"the {m} strongest synapses", spec, lesion=lesion, in_tensor=False)
    return conditions


def _network_logits(net, tokens: np.ndarray, decay: float = 1.0, lesion=None, monitors=()) -> np.ndarray:
    """Logits (T, V) of the network reading ``tokens`` from a zero state: the synapses scaled by ``decay`` before
    each token's read, the ``lesion`` (``Network.lesion``) held throughout."""
    net.reset()
    net.lesion(lesion)
    try:
        if decay == 1.0:
            return net.run(tokens, monitors=monitors, progress=False)
        logits = np.empty((len(tokens), net.config.vocab_size))
        for t, token in enumerate(tokens):
            net.scale_synapses(decay)
            logits[t] = net.step(int(token))
        return logits
    finally:
        net.lesion(None)


@contextmanager
def _one_torch_thread():
    """One CPU thread for torch: a step of one sequence is too small to share, and on a busy machine torch's
    thread pool mostly waits. Measured on 2 busy cores: the tensor model's steps ran 30 times slower with two
    threads, and once torch's pool had run, the network's Numba kernels 4 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def _tensor_logits(model, tokens: np.ndarray, decay: float = 1.0, erased=(), state=None):
    """Logits (T, V) of the tensor model's recurrent form reading ``tokens`` (from ``state``, default zero) with
    ``rho`` scaled by ``decay`` and the ``erased`` (layer, head) blocks set to zero before each token's read;
    and the state after."""
    state = model.init_state(1) if state is None else state
    # copied out token by token: a list of small torch tensors kept alive grew the heap by megabytes a token
    logits = np.empty((len(tokens), model.config.vocab_size))
    for t, token in enumerate(torch.as_tensor(tokens).to(model.decoder.device)):
        if decay != 1.0:
            state.rho.mul_(decay)
        for layer, head in erased:
            state.rho[layer, :, head] = 0
        out, state = model.step(token.view(1), state)
        logits[t] = out[0].double().cpu().numpy()
    return logits, state


def _repeat(net, reference, passage: np.ndarray) -> dict[str, Reading]:
    """The passage read twice, with full memory and with the synapses erased in between (readings of bytes
    2..n of each copy)."""
    spec = {"bytes": len(passage)}
    twice = np.concatenate([passage, passage])
    n = len(passage)
    net.reset()
    logits = net.run(twice, progress=False)
    first, second = bits_per_prediction(logits[:n], passage), bits_per_prediction(logits[n:], passage)
    net.reset()
    net.run(passage, progress=False)
    net.scale_synapses(0.0)
    erased = bits_per_prediction(net.run(passage, progress=False), passage)
    tensor = {"first": None, "second": None, "second_erased": None}
    if reference is not None:
        logits, state = _tensor_logits(reference, passage)
        tensor["first"] = bits_per_prediction(logits, passage)
        after_first = state.clone()
        tensor["second"] = bits_per_prediction(_tensor_logits(reference, passage, state=state)[0], passage)
        after_first.rho.zero_()
        tensor["second_erased"] = bits_per_prediction(_tensor_logits(reference, passage, state=after_first)[0],
                                                      passage)
    return {"first": Reading("first reading", first, tensor["first"], spec),
            "second": Reading("second reading", second, tensor["second"], spec),
            "second_erased": Reading("second reading, synapses erased in between", erased, tensor["second_erased"],
                                     spec)}


__all__ = ["MemoryResult", "Reading", "HebbianFactors", "memory_experiments", "memory_benefit",
           "strongest_synapses", "time_constant_ladder", "bits_per_prediction"]
