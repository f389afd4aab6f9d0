"""How activity travels between populations: as rates (the exact graph form) or as spikes.

``Network.step`` runs the paper's rounds per layer and hands two things to the channel chosen at build time
(``build_network(mode=...)``):

- ``send``: what the receivers of a round get from a population's rates: the rates themselves
  (:class:`RateChannel`), or the estimates ``sign * s * count / K`` of a Bernoulli volley (:class:`SpikeChannel`,
  see ``spikes``);
- ``synapse_rounds``: the synapse reads ``A = S @ k`` of every head, the gate that turns ``A`` into ``y``, and the
  Hebbian write of the layer, ``S += outer(p, k)``, in the order the channel needs. The rate channel reads and
  writes in one pass over the synapses, then gates (the gate reads ``A``, not the synapses, so the write may come
  before it); the spike channel reads, gates ``A`` sent as spikes, and then writes the coincidences of a fresh
  presynaptic volley and the x volley over the K micro-steps, one matrix product for every head (the volleys are
  drawn in this order, so that a seed gives the same spikes);
- counting the synaptic events of a token (``events``): the messages and updates the kernels count
  (``messages``), or in spike mode every spike along every edge and every coincidence update.
"""
from __future__ import annotations

from ..errors import FileFormatError
from .neurons import Active, active
from .spikes import Spiker, Volley


class RateChannel:
    """Messages carry the rates: the graph form that equals the tensor model."""

    mode = "rate"
    spiker = None

    def __init__(self, backend):
        self.backend = backend
        self.events = self.spikes = self.clipped = 0

    def start(self, position: int, cos, sin, record_spikes: bool = False) -> None:
        """A token begins at ``position``, whose RoPE phases are ``cos``, ``sin``."""
        self.events = 0

    def messages(self, events: int) -> None:
        """Messages sent along edges (or synapse updates) that a kernel counted."""
        self.events += events

    def send(self, population: str, rates: Active, round_: str, layer: int, posts=None) -> Active:
        return rates

    def synapse_rounds(self, synapses, layer: int, pre: Active, x: Active, k: Active, A, gate):
        """The reads ``A[h] = S_h @ k_h`` of every head and, in the same pass over the synapses, the Hebbian write
        ``S_h += outer(pre, k_h)`` (``k`` over the x-neurons of all heads, ``A`` zero, (heads, presynaptic)); then
        ``gate(A)``, whose result (y and its events) it returns."""
        self.events += synapses.read_write(layer, pre, k, A)
        return gate(A)

    def record(self) -> dict:
        """Entries of a step's record that only this channel knows."""
        return {}

    def warn_clipped(self, stacklevel: int = 2) -> None:
        """Rates are never clipped here."""

    def state(self) -> dict:
        """What a state file keeps of the channel (beside the synapses)."""
        return {}

    def restore(self, meta: dict, where: str):
        """Check a state file's ``meta`` and return the function that restores the channel from it."""
        return lambda: None


class SpikeChannel:
    """Every message is a volley of Bernoulli spikes over K micro-steps (``spikes``)."""

    mode = "spike"

    def __init__(self, spiker: Spiker, wiring, backend, dtype, N: int, n_head: int):
        self.spiker, self.wiring, self.backend, self.dtype = spiker, wiring, backend, dtype
        self.N, self.n_head = N, n_head
        self.events = self.spikes = self.clipped = 0
        self._x_volley: Volley | None = None
        self._volleys: dict | None = None

    def start(self, position: int, cos, sin, record_spikes: bool = False) -> None:
        self.position, self.cos, self.sin = position, cos, sin
        self.events = self.spikes = self.clipped = 0
        self._volleys = {} if record_spikes else None

    def messages(self, events: int) -> None:
        """Ignored: here a message is a spike along an edge, counted where the volley is sent."""

    def _fire(self, population: str, rates: Active, where: str) -> Volley:
        b = self.backend
        volley = self.spiker.fire(population, b.to_numpy(rates.ids), b.to_numpy(rates.values),
                                  f"{where}, position {self.position}")
        self.spikes += volley.n_spikes
        self.clipped += volley.clipped
        return volley

    def send(self, population: str, rates: Active, round_: str, layer: int, posts=None) -> Active:
        """The estimates of a volley fired at ``rates``; its spike messages are counted (``posts``: the receivers
        of the gate round)."""
        b = self.backend
        volley = self._fire(population, rates, "readout" if round_ == "readout" else f"layer {layer}")
        self.events += self.wiring.deliveries(round_, volley, posts)
        if round_ == "read":
            self._x_volley = volley  # it meets a presynaptic volley in the write
        if self._volleys is not None and round_ in ("read", "output"):
            self._volleys[(layer, population)] = volley.spike_times()
        ids, values = volley.estimate()
        ids, values = b.index_array(ids), b.asarray(values, self.dtype)
        dense = b.zeros(rates.dense.shape[0], self.dtype)
        dense[ids] = values
        return Active(ids, values, dense)

    def synapse_rounds(self, synapses, layer: int, pre: Active, x: Active, k: Active, A, gate):
        """The reads ``A[h] = S_h @ k_h`` of every head from the rotated x estimates ``k`` (their spike messages
        were counted when x fired); ``gate`` of the reads sent as spikes; then the coincidence write. Returns what
        ``gate`` returns (y and its events)."""
        b, N = self.backend, self.N
        for h in range(self.n_head):
            synapses.read(layer, h, active(b, k.dense[h * N:(h + 1) * N]), A[h])
        for h in range(self.n_head):  # each head's reads travel as spikes to the y-neurons its firing x-neurons gate
            posts = b.active(x.dense[h * N:(h + 1) * N])[0] + h * N
            A[h] = self.send(self.wiring.read_population, active(b, A[h]), "gate", layer, posts).dense
        gated = gate(A)
        self._write(synapses, layer, pre)
        return gated

    def _write(self, synapses, layer: int, pre: Active) -> None:
        """The coincidence write: the presynaptic neurons fire a fresh volley beside the x volley of the read
        round; every micro-step in which pre ``i`` and x-neuron ``j`` both fire adds ``s_pre s_x / K`` (rotated
        by RoPE) to ``S[i, j]``. For every head at once that is one product over the K micro-steps,
        ``S += P^T R_t(X)`` with ``P`` (K, presynaptic) and ``X`` (K, x-neurons) the volleys' amplitudes."""
        b, K, N, H = self.backend, self.spiker.steps, self.N, self.n_head
        pre_volley, x_volley = self._fire(self.wiring.pre_population, pre, f"layer {layer}"), self._x_volley
        ids = b.index_array(pre_volley.ids)
        P = b.asarray(pre_volley.amplitudes(), self.dtype)
        P_dense = b.zeros((K, pre.dense.shape[0]), self.dtype)  # a synapse graph looks its columns up in here
        P_dense[:, ids] = P
        X = b.zeros((K, N * H), self.dtype)
        X[:, b.index_array(x_volley.ids)] = b.asarray(x_volley.amplitudes() / K, self.dtype)
        RX = b.rope(X.reshape(K, H, N), self.cos, self.sin).reshape(K, N * H)  # R_t post(m) of every head
        ids_x = b.active(abs(RX).sum(0))[0]  # the x-neurons (and RoPE partners) that take part
        self.events += synapses.write_steps(layer, Active(ids, P, P_dense), Active(ids_x, RX[:, ids_x], RX))

    def record(self) -> dict:
        out = {"n_spikes": self.spikes, "clipped": self.clipped}
        if self._volleys is not None:
            out["spikes"] = self._volleys
        return out

    def warn_clipped(self, stacklevel: int = 2) -> None:
        self.spiker.warn_clipped(stacklevel + 1)

    def state(self) -> dict:
        return {"random_state": self.spiker.state()}

    def restore(self, meta: dict, where: str):
        if "random_state" not in meta:
            raise FileFormatError(f"network state file '{where}': a spike-mode state needs 'random_state'")
        try:
            seed, rng = Spiker.parse_state(meta["random_state"])
        except ValueError as err:
            raise FileFormatError(f"network state file '{where}': 'random_state' is {err}") from err

        def restore():
            self.spiker.seed, self.spiker.rng = seed, rng
        return restore
