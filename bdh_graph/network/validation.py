"""Validation: the graph network against the tensor model, token by token and layer by layer (docs/model.md 4).

``validate`` steps a network and the tensor model's recurrent form side by side over a text and records, per
token and layer, the maximum absolute and relative errors of ``x``, ``y``, the residual stream ``v`` (the hub
vector ``u = E_ext w``), the synaptic state (``E_ext sigma`` in the neuron wiring, ``rho`` in the hub wiring,
against the tensor ``rho``) and, per token, of the logits; plus the fidelity of the predictions: the KL
divergence ``KL(p_tensor || p_graph)`` of the next-token distributions and top-1 agreement.

Relative error of an array = ``max |graph - tensor| / max |tensor|`` (0 where both are 0). Dense neuron
wiring and hub wiring are exact (float64: ~1e-15); pruned graphs (docs/model.md 4.6) are approximations and these
numbers are their measured fidelity.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import log_softmax

from .monitors import Monitor
from .network import build_network
from .neurons import as_tokens

LAYER_QUANTITIES = ("x", "y", "v", "state")


def _errors(graph: np.ndarray, tensor: np.ndarray) -> tuple[float, float]:
    abs_err = float(np.max(np.abs(graph - tensor), initial=0.0))
    scale = float(np.max(np.abs(tensor), initial=0.0))
    if scale > 0:
        return abs_err, abs_err / scale
    return abs_err, 0.0 if abs_err == 0 else float("inf")


@dataclass
class ValidationResult:
    """Errors of a network against the tensor model over ``T`` tokens of an ``L``-layer model.

    ``abs_errors[q]`` and ``rel_errors[q]`` for ``q`` in ``x``, ``y``, ``state`` are (T, L) arrays, for ``v``
    (T, L+1) (each layer's input, then the output); ``logits_abs``/``logits_rel`` (T,); ``kl`` (T,) in nats;
    ``top1`` (T,) bool, the two forms' most likely next tokens agree; ``events`` (T,) synaptic events.
    State errors are NaN after the tokens where they were not compared.
    """

    wiring: str
    prune: str
    synapses: str
    dtype: str
    backend: str
    n_edges: dict
    abs_errors: dict = field(default_factory=dict)
    rel_errors: dict = field(default_factory=dict)
    logits_abs: np.ndarray = None
    logits_rel: np.ndarray = None
    kl: np.ndarray = None
    top1: np.ndarray = None
    events: np.ndarray = None
    mode: str = "rate"
    spike_options: dict | None = None  # spike mode: spike_steps, seed, rate_scale

    @property
    def n_tokens(self) -> int:
        return len(self.kl)

    @property
    def max_rel(self) -> float:
        """Largest relative error of x, y, v, logits and the state over all tokens and layers."""
        values = [np.nanmax(v) for v in self.rel_errors.values() if not np.all(np.isnan(v))]
        return float(max(values + [np.max(self.logits_rel)]))

    def summary(self) -> dict:
        """Plain numbers (JSON-ready): the maxima of every error, mean and max KL, top-1 agreement."""
        out = {"wiring": self.wiring, "prune": self.prune, "synapses": self.synapses, "dtype": self.dtype,
               "backend": self.backend, "tokens": self.n_tokens, "edges": self.n_edges, "mode": self.mode}
        if self.spike_options is not None:
            out.update(self.spike_options)
        for q in LAYER_QUANTITIES:
            checked = not np.all(np.isnan(self.rel_errors[q]))
            out[f"{q}_max_abs"] = float(np.nanmax(self.abs_errors[q])) if checked else None
            out[f"{q}_max_rel"] = float(np.nanmax(self.rel_errors[q])) if checked else None
        out.update(logits_max_abs=float(self.logits_abs.max()), logits_max_rel=float(self.logits_rel.max()),
                   max_rel=self.max_rel, kl_mean=float(self.kl.mean()), kl_max=float(self.kl.max()),
                   top1_agreement=float(self.top1.mean()), events_per_token=float(self.events.mean()))
        return out


def validate(model, tokens, wiring: str = "neuron", prune=None, synapses="all", dtype=np.float64, backend=None,
             device=None, state_every: int = 1, monitors=(), progress: bool = False, **spiking) -> ValidationResult:
    """Step a network built from ``model`` and the tensor recurrent form side by side over ``tokens``.

    The tensor reference is a copy of ``model`` in ``dtype``, in eval mode (no dropout), on the network's device.
    ``tokens`` is a string (its UTF-8 bytes) or token ids; ``wiring``, ``prune``, ``synapses``, ``dtype``, ``backend``,
    ``device`` go to ``build_network``, and so do ``spiking`` options (``mode="spike"``, ``spike_steps``, ``seed``,
    ``rate_scale``): the errors of a spiking network against the rate model it estimates. The synaptic state,
    costly to compare for a large dense sigma, is compared after every ``state_every``-th token and after the
    last (0: never). ``monitors`` watch the network as in ``Network.run`` (the tensor model watches beside them).

    >>> result = validate(model, "Hello, world", wiring="hub")     # doctest: +SKIP
    >>> result.summary()["max_rel"] < 1e-9
    """
    tokens = as_tokens(tokens, model.config.vocab_size)
    if isinstance(state_every, bool) or not isinstance(state_every, int) or state_every < 0:
        raise ValueError(f"state_every must be an integer >= 0, got {state_every!r}")
    net = build_network(model, wiring=wiring, prune=prune, synapses=synapses, backend=backend, dtype=dtype,
                        device=device, **spiking)
    torch_dtype = torch.float64 if net.dtype == np.float64 else torch.float32
    reference = copy.deepcopy(model).to(device=net.backend.device, dtype=torch_dtype).eval()
    T, L = len(tokens), model.config.n_layer
    nan = lambda *shape: np.full(shape, np.nan)  # noqa: E731
    pattern = net.synapse_graph
    synapse_kind = "all" if pattern is None else f"synapse graph of {pattern.nnz} pairs"
    result = ValidationResult(net.wiring, net.description["prune"], synapse_kind, str(net.dtype),
                              net.backend.name, net.n_edges,
                              {q: nan(T, L + (q == "v")) for q in LAYER_QUANTITIES},
                              {q: nan(T, L + (q == "v")) for q in LAYER_QUANTITIES},
                              nan(T), nan(T), nan(T), np.zeros(T, bool), np.zeros(T, np.int64),
                              net.mode, net.spike_options)
    comparison = _Comparison(net, reference, result, state_every, T)
    net.run(tokens, monitors=[*monitors, comparison], progress=progress)
    return result


class _Comparison(Monitor):
    """Steps the tensor model's recurrent form beside the network and writes the errors of every token."""

    variables = frozenset({"x", "y", "u"})  # and logits and events, always recorded

    def __init__(self, net, reference, result: ValidationResult, state_every: int, T: int):
        super().__init__()
        self.net, self.reference, self.result, self.state_every, self.T = net, reference, result, state_every, T
        self.state = reference.init_state(1)

    def record(self, record: dict) -> None:
        super().record(record)
        t, L, result = len(self.tokens) - 1, self.config.n_layer, self.result
        ref_record = {}
        token = torch.tensor([record["token"]], device=self.state.rho.device)
        ref_logits, self.state = self.reference.step(token, self.state, record=ref_record)
        ref = {"x": ref_record["x"][:, 0].reshape(L, -1).cpu().numpy(),
               "y": ref_record["y"][:, 0].reshape(L, -1).cpu().numpy(), "v": ref_record["v"][:, 0].cpu().numpy()}
        graph = {"x": record["x"], "y": record["y"], "v": record["u"]}
        for q in ("x", "y", "v"):
            for layer in range(ref[q].shape[0]):
                result.abs_errors[q][t, layer], result.rel_errors[q][t, layer] = _errors(graph[q][layer], ref[q][layer])
        if self.state_every and ((t + 1) % self.state_every == 0 or t == self.T - 1):
            for layer in range(L):
                result.abs_errors["state"][t, layer], result.rel_errors["state"][t, layer] = _errors(
                    self.net.rho(layer), self.state.rho[layer, 0].cpu().numpy())
        logits, ref_logits = record["logits"], ref_logits[0].cpu().numpy()
        result.logits_abs[t], result.logits_rel[t] = _errors(logits, ref_logits)
        log_p, log_q = log_softmax(np.asarray(ref_logits, np.float64)), log_softmax(np.asarray(logits, np.float64))
        result.kl[t] = float(np.sum(np.exp(log_p) * (log_p - log_q)))
        result.top1[t] = int(np.argmax(logits)) == int(np.argmax(ref_logits))
        result.events[t] = record["events"]
