"""One address for a synapse, used by every command, monitor, recording and report.

A synapse of layer ``l`` joins a presynaptic unit to a postsynaptic x-neuron. Its address is

- ``layer``: the layer ``l``, ``0 .. L-1``;
- ``pre``: the presynaptic unit. At neuron level (the paper's synapses ``sigma``): model neuron ``i`` (``0 .. n-1``,
  head-major, ``i = head*N + k``) or the input neuron of byte ``b`` (index ``n + b``). At hub level (the tensor
  model's ``rho``): hub ``c`` (``0 .. d-1``);
- ``post``: the postsynaptic x-neuron, global and head-major, ``post = head*N + k`` (``0 .. n-1``); its synapse
  lives in the block ``sigma[l, head]`` (or ``rho[l, head]``) at column ``k``.

As text (``bdh-graph step --synapse``, ``bdh-graph synapses trace --synapse``, :func:`parse_synapse`) an address
is ``LAYER:PRE:POST``. ``PRE`` is an integer or a byte in quotes, written as in a Python bytes literal
(``' '``, ``'e'``, ``'\\n'``, ``'\\xe9'``), which names the input neuron of that byte: ``3:'e':17`` is the synapse
from the input neuron of ``e`` onto x-neuron 17 in layer 3. Reports and legends write input neurons the same way
(:func:`byte_name`), so an address can be copied from a report into a command. The older ``L,H,I,J`` form of
``step --synapse`` (head ``H``, x-neuron ``J`` within the head: ``post = H*N + J``) is still read.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import numpy as np

from ..graphs import graph_factors
from .monitors import SynapseMonitor

LEVELS = ("neuron", "hub")
DEFAULT_TRACED = 4  # synapses traced by default (``default_synapses``)

_INT = r"[+-]?\d+"
_QUOTED = r"b?'(?:[^'\\]|\\.)*'|b?\"(?:[^\"\\]|\\.)*\""  # a bytes literal, its b optional
ADDRESS = re.compile(rf"^\s*(?P<layer>{_INT})\s*:\s*(?P<pre>{_QUOTED}|{_INT})\s*:\s*(?P<post>{_INT})\s*$")
OLD_ADDRESS = re.compile(rf"^\s*({_INT})\s*,\s*({_INT})\s*,\s*({_INT})\s*,\s*({_INT})\s*$")  # L,H,I,J
SYNTAX = ("LAYER:PRE:POST, e.g. 3:'e':17 (PRE: a model neuron, n + byte, or a byte in quotes for its input "
          "neuron; POST: the x-neuron head*N + k), or the older L,H,I,J")


def byte_name(byte: int) -> str:
    """A byte as a quoted bytes literal: ``' '``, ``'e'``, ``'\\n'``, ``'\\xe9'`` (what :func:`parse_synapse` reads);
    a token above the bytes (a vocabulary larger than 256) as ``token 300``."""
    return repr(bytes([int(byte)]))[1:] if byte < 256 else f"token {int(byte)}"


@dataclass(frozen=True)
class Synapse:
    """The synapse ``sigma[layer, post // N][pre, post % N]`` (neuron level) or ``rho[...]`` (hub level); see the
    module doc for the indices."""

    layer: int
    pre: int
    post: int
    level: str = "neuron"

    def pre_name(self, config) -> str:
        """``neuron 12``, ``input neuron ' '`` or ``hub 3``."""
        n = config.n_neurons
        if self.level == "hub":
            return f"hub {self.pre}"
        return f"neuron {self.pre}" if self.pre < n else f"input neuron {byte_name(self.pre - n)}"

    def address(self, config) -> str:
        """The address as text, ``LAYER:PRE:POST``, input neurons as quoted bytes (what :func:`parse_synapse`
        reads)."""
        n = config.n_neurons
        # an input neuron of a byte as the byte in quotes; of a token above the bytes as its index n + token
        pre = byte_name(self.pre - n) if self.level == "neuron" and n <= self.pre < n + 256 else str(self.pre)
        return f"{self.layer}:{pre}:{self.post}"

    def describe(self, config) -> str:
        """``layer 3: input neuron 'e' -> x-neuron 17 (head 0, #17)``."""
        N = config.N
        return (f"layer {self.layer}: {self.pre_name(config)} -> x-neuron {self.post} "
                f"(head {self.post // N}, #{self.post % N})")

    def to_dict(self) -> dict:
        return {"layer": self.layer, "pre": self.pre, "post": self.post, "level": self.level}


def presynaptic_size(config, level: str) -> int:
    """Presynaptic units per layer: n+V neurons (neuron level) or d hubs (hub level)."""
    return config.n_neurons + config.vocab_size if level == "neuron" else config.n_embd


def check_synapse(synapse: Synapse, config, name: str = "synapse") -> Synapse:
    """``synapse`` itself, or a ``ValueError`` (prefixed by ``name``) if its level, layer, presynaptic or
    postsynaptic index is out of range for ``config``."""
    if synapse.level not in LEVELS:
        raise ValueError(f"{name}: level must be one of {LEVELS}, got {synapse.level!r}")
    n, L = config.n_neurons, config.n_layer
    expected = {
        "layer": (L, f"the model has {L} layers, expected 0..{L - 1}"),
        "pre": (presynaptic_size(config, synapse.level),
                f"expected a model neuron 0..{n - 1} or an input neuron n + byte, {n}..{n + config.vocab_size - 1}"
                if synapse.level == "neuron" else f"expected a hub 0..{config.n_embd - 1} (hub level)"),
        "post": (n, f"expected an x-neuron 0..{n - 1} (head*N + k, N = {config.N})"),
    }
    for field, (size, what) in expected.items():
        value = getattr(synapse, field)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < size:
            raise ValueError(f"{name}: {field} index {value!r} is out of range: {what}")
    return synapse


def parse_synapse(text: str, config, level: str = "neuron", name: str = "synapse") -> Synapse:
    """The synapse of an address ``LAYER:PRE:POST`` (or the older ``L,H,I,J``), checked against ``config``.

    Errors name the input as ``name`` (e.g. ``"--synapse"``) with the text given.

    >>> parse_synapse("3:'e':17", config).pre == config.n_neurons + ord("e")      # doctest: +SKIP
    """
    where = f"{name} {text!r}"
    if level not in LEVELS:
        raise ValueError(f"{where}: level must be one of {LEVELS}, got {level!r}")
    old = OLD_ADDRESS.match(text)
    if old:
        if level != "neuron":
            raise ValueError(f"{where}: the L,H,I,J form names a neuron-level synapse; at hub level write "
                             "LAYER:HUB:POST")
        layer, head, pre, k = (int(g) for g in old.groups())
        if not 0 <= head < config.n_head or not 0 <= k < config.N:
            raise ValueError(f"{where}: head H = {head} and x-neuron J = {k} must lie in 0..{config.n_head - 1} "
                             f"and 0..{config.N - 1} (N = {config.N} x-neurons per head)")
        return check_synapse(Synapse(layer, pre, head * config.N + k), config, where)
    match = ADDRESS.match(text)
    if not match:
        raise ValueError(f"{where}: expected {SYNTAX}")
    pre_text = match["pre"].removeprefix("b")
    if pre_text[0] in "'\"":
        if level != "neuron":
            raise ValueError(f"{where}: at hub level PRE is a hub index 0..{config.n_embd - 1}, not a byte")
        pre = config.n_neurons + _parse_byte(pre_text, where)
    else:
        pre = int(pre_text)
    return check_synapse(Synapse(int(match["layer"]), pre, int(match["post"]), level), config, where)


def _parse_byte(quoted: str, where: str) -> int:
    try:
        value = ast.literal_eval("b" + quoted)
    except (SyntaxError, ValueError):
        raise ValueError(f"{where}: {quoted} is not a byte; write a byte as in a Python bytes literal, e.g. ' ', "
                         "'e', '\\n', and a byte above 127 as '\\xNN'") from None
    if len(value) != 1:
        raise ValueError(f"{where}: {quoted} holds {len(value)} bytes; PRE names one input neuron, one byte")
    return value[0]


def default_synapses(model, tokens, count: int = DEFAULT_TRACED) -> list[Synapse]:
    """``count`` synapses worth watching over ``tokens``: in the last layer, from the input neuron of the
    commonest byte onto the x-neurons of head 0 with the strongest edges of G_x from it."""
    c = model.config
    byte = int(np.bincount(np.asarray(tokens, dtype=np.int64), minlength=c.vocab_size).argmax())
    factors = graph_factors(model, "x", "exact", head=0)
    weights = factors.pre[c.n_neurons + byte] @ factors.post  # G_x edges from the input neuron, (N,)
    return [Synapse(c.n_layer - 1, c.n_neurons + byte, int(k)) for k in np.argsort(-weights)[:count]]


def synapse_monitors(synapses: list[Synapse], config) -> list[SynapseMonitor]:
    """One :class:`SynapseMonitor` per (layer, head) watching the given neuron-level synapses."""
    groups: dict = {}
    for s in synapses:
        check_synapse(s, config)
        if s.level != "neuron":
            raise ValueError(f"a network's SynapseMonitor watches neuron-level synapses sigma, got {s}")
        groups.setdefault((s.layer, s.post // config.N), []).append((s.pre, s.post % config.N))
    return [SynapseMonitor(layer, head, pairs) for (layer, head), pairs in groups.items()]


def monitored_synapses(monitor: SynapseMonitor, config) -> list[Synapse]:
    """The addresses of the synapses a :class:`SynapseMonitor` watches, in the order of its ``values`` columns."""
    return [Synapse(monitor.layer, int(i), monitor.head * config.N + int(k)) for i, k in monitor.pairs]


__all__ = ["DEFAULT_TRACED", "LEVELS", "Synapse", "byte_name", "check_synapse", "default_synapses",
           "monitored_synapses", "parse_synapse", "presynaptic_size", "synapse_monitors"]
