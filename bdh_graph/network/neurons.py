"""Neuron-wise parts shared by both wirings: the presynaptic trace, global gain control, RoPE phases, tokens.

The presynaptic trace (SPEC.md 3.1) is a non-negative vector ``w`` on the n model neurons and the V input
neurons whose projection ``u = E_ext w`` on the d hubs is the residual stream of the tensor model. Per token::

    w = onehot_{n+tok} / gain(E_ext onehot)                  # the input neuron of the token fires
    after each layer, with its output y:  z = [y, 0_V]
        w = w + z / gain(E_ext z);  w = w / gain(E_ext w)

``gain(u) = sqrt(var(u) + 1e-5)`` is the standard deviation LayerNorm divides by. E_ext is mean-centred, so
every hub vector ``u`` is centred and ``gain(u)^2 = w^T M w / d + 1e-5`` with ``M = E_ext^T E_ext``, the gain
control circuit of SPEC.md 3.1, computed here through the d-dimensional projection. In the Normfree variant
every gain is 1.
"""
from __future__ import annotations

import numpy as np
import torch

from ..model.tensor import check_tokens, rope_cos_sin
from ..text import encode


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
        return self.backend.gain(u) if self.layer_norm else 1.0

    def start(self, token: int) -> None:
        """The input neuron of ``token`` fires alone: ``w = onehot / gain``, ``u = E_ext w``."""
        neuron = self.n + token
        self.u[:] = self.E_ext[neuron]
        g = self.gain(self.u)
        self.u /= g
        self.w[:] = 0
        self.w[neuron] = 1.0 / g

    def add(self, y_idx, y_val) -> int:
        """Add a layer's output ``y`` (active ids, values) with its gain, then renormalise. Returns events."""
        z = self.backend.zeros(self.u.shape[0], self.u.dtype)
        events = self.backend.rows_combine(self.E_ext, y_idx, y_val, z)  # y -> hubs along E_ext
        gz = self.gain(z)
        self.w[y_idx] += y_val / gz
        self.u += z / gz
        gw = self.gain(self.u)
        self.w /= gw
        self.u /= gw
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
