"""Neuron-wise parts shared by both wirings: active populations, the presynaptic trace, global gain control, RoPE
phases, tokens.

The presynaptic trace (docs/model.md 4.2) is a non-negative vector ``w`` on the n model neurons and the V input
neurons whose projection ``u = E_ext w`` on the d hubs is the residual stream of the tensor model. Per token::

    w = onehot_{n+tok} / gain(E_ext onehot)                  # the input neuron of the token fires
    after each layer, with its output y:  z = [y, 0_V]
        w = w + z / gain(E_ext z);  w = w / gain(E_ext w)

``gain(u) = sqrt(var(u) + 1e-5)`` is the standard deviation LayerNorm divides by. E_ext is mean-centred, so
every hub vector ``u`` is centred and ``gain(u)^2 = w^T M w / d + 1e-5`` with ``M = E_ext^T E_ext``, the gain
control circuit of docs/model.md 4.2, computed here through the d-dimensional projection. In the Normfree variant
every gain is 1. :func:`trace_add` is the recursion, for one token here and for recorded tensor activity in
``interpretability.synapse_state.presynaptic_trace``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..model.tensor import LN_EPS, check_token_range, check_tokens, rope_cos_sin
from ..text import encode


class Active(NamedTuple):
    """The active (non-zero) neurons of a population: their ``ids``, their ``values``, and the whole vector
    ``dense``, all in backend arrays. Over the K micro-steps of a spike volley ``values`` is (K, len(ids)) and
    ``dense`` (K, neurons)."""

    ids: object
    values: object
    dense: object


def active(backend, v) -> Active:
    """The neurons of the vector ``v`` that fire."""
    return Active(*backend.active(v), v)


def trace_add(w, u, idx, y, z, gain) -> None:
    """One layer of the presynaptic trace recursion (docs/model.md 4.2), in place: the layer's output joins the trace,
    which is then renormalised::

        w = w + [y, 0_V] / gain(z);   w = w / gain(E_ext w)

    ``w`` (..., n+V) is the trace and ``u = E_ext w`` (..., d) its hub projection, ``y`` the layer's output at
    the neurons ``idx`` (ids, or a slice) and ``z = E_ext [y, 0_V]`` its hub projection; ``gain`` maps hub vectors
    to the divisors (1 in the Normfree variant). Any array type that broadcasts (numpy, torch; one token or a
    batch) will do.
    """
    gz = gain(z)
    w[..., idx] += y / gz
    u += z / gz
    gw = gain(u)
    w /= gw
    u /= gw


class Trace:
    """The presynaptic trace ``w`` (n+V) and its hub projection ``u = E_ext w`` (d), in backend arrays.

    ``E_ext`` is given neuron-major, shape (n+V, d): row i holds the edges of neuron i to the d hubs.
    """

    def __init__(self, E_ext, n: int, layer_norm: bool, backend, dtype):
        self.E_ext, self.n, self.layer_norm, self.backend = E_ext, n, layer_norm, backend
        n_pre, d = E_ext.shape
        self.w = backend.zeros(n_pre, dtype)
        self.u = backend.zeros(d, dtype)

    def gain(self, u):
        return self.backend.gain(u, LN_EPS) if self.layer_norm else 1.0

    def start(self, token: int) -> None:
        """The input neuron of ``token`` fires alone: ``w = onehot / gain``, ``u = E_ext w``."""
        neuron = self.n + token
        self.u[:] = self.E_ext[neuron]
        g = self.gain(self.u)
        self.u /= g
        self.w[:] = 0
        self.w[neuron] = 1.0 / g

    def add(self, y: Active) -> int:
        """Add a layer's output ``y`` with its gain, then renormalise (:func:`trace_add`). Returns events."""
        z = self.backend.zeros(self.u.shape[0], self.u.dtype)
        events = self.backend.rows_combine(self.E_ext, y.ids, y.values, z)  # y -> hubs along E_ext
        trace_add(self.w, self.u, y.ids, y.values, z, self.gain)
        return events


class Phases:
    """RoPE cos/sin per neuron of a head at position t, from the model's own frequencies (bit-equal phases)."""

    def __init__(self, freqs: torch.Tensor, backend, dtype):
        torch_dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
        self.freqs = freqs.detach().reshape(-1).to("cpu", torch_dtype).clone()
        self.backend, self.dtype = backend, dtype

    def at(self, t: int):
        cos, sin = rope_cos_sin(torch.tensor(float(t), dtype=self.freqs.dtype), self.freqs)
        return self.backend.asarray(cos.numpy(), self.dtype), self.backend.asarray(sin.numpy(), self.dtype)


def as_token(token, vocab_size: int) -> int:
    """One token id, range-checked; an int (Python or numpy) is checked directly, anything else as :func:`as_tokens`
    checks a sequence of one."""
    if isinstance(token, (int, np.integer)) and not isinstance(token, (bool, np.bool_)):
        check_token_range(int(token), int(token), vocab_size, "token")
        return int(token)
    return int(as_tokens([token], vocab_size, "token")[0])


def as_tokens(text_or_tokens, vocab_size: int, name: str = "tokens") -> np.ndarray:
    """Token ids (int64, 1-D) of a string (its UTF-8 bytes) or a sequence/array/tensor of ids, range-checked."""
    if isinstance(text_or_tokens, str):
        text_or_tokens = encode(text_or_tokens)
    tokens = text_or_tokens if isinstance(text_or_tokens, torch.Tensor) else np.asarray(text_or_tokens)
    if tokens.size == 0 if isinstance(tokens, np.ndarray) else tokens.numel() == 0:
        raise ValueError(f"{name} is empty: at least one token is needed")
    tokens = torch.as_tensor(tokens).cpu()
    if tokens.dim() != 1:
        raise ValueError(f"{name} must be a 1-D sequence of token ids, got shape {tuple(tokens.shape)}")
    check_tokens(tokens, vocab_size, name)
    return tokens.numpy().astype(np.int64)
