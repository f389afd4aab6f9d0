"""The synaptic state of the tensor model in neuron coordinates (docs/model.md), recorded sentence by sentence.

The tensor model keeps hub-level synapses ``rho[l, head]`` (d, N). The graph form keeps one synapse per
(presynaptic neuron i, postsynaptic x-neuron j) pair, ``sigma[l, head]`` ((n+V) x N), with ``rho = E_ext sigma``.
Both are sums of Hebbian outer products over the tokens read so far::

    sigma[l, head][i, j] = sum_t w_t^l[i] (R_t x_t^l)[j]        neuron level: pre = trace w (n+V), post = k
    rho[l, head][c, j]   = sum_t v_t^l[c] (R_t x_t^l)[j]        hub level:    pre = residual v (d),  post = k

so a sentence's synaptic state is fixed by the per-token presynaptic activity (``w`` or ``v``) and the rotated
x-activity ``k = R_t x``. In a damped model (docs/model.md 7.3) the write of token t reaches the state after token T
weighted by ``gamma_h ** (T - t)``, ``h`` the head of the postsynaptic x-neuron: a record keeps the factors and
``gamma`` of every x-neuron, and weighs the sums by it. ``record_sentences`` runs the tensor model (batched) and
keeps exactly these factors; any entry of sigma or rho is then one dot product over the tokens, and whole blocks
are matrix products.

Indices are those of a synapse's address (``bdh_graph.network.address``): presynaptic ``i < n`` is model neuron
i (head-major, ``i = head*N + k``), ``i = n + b`` the input neuron of byte b; a postsynaptic index ``j`` is the
global x-neuron ``head*N + k``, whose block is ``sigma[l, j // N]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..graphs import graph_factors
from ..model.tensor import LN_EPS, BDH, layer_norm, rope, rope_cos_sin
from ..network.address import LEVELS, Synapse, check_synapse
from ..network.neurons import trace_add
from ..text import encode

DEFAULT_MAX_TOKENS = 256  # the training block size of the bundled model: its context


def extended_decoder(model: BDH, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``E_ext = C [E | embed^T]`` (d, n+V): model neurons and input neurons to the hubs (``graphs.graph_factors``,
    exact form; ``C = I`` in the Normfree variant, whose residual stream is not centred)."""
    return torch.from_numpy(np.ascontiguousarray(graph_factors(model, "x", "exact").pre.T)).to(dtype)


def presynaptic_trace(model: BDH, tokens: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The presynaptic trace ``w`` (L+1, B, T, n+V) of docs/model.md 4.2 from the tensor model's ``y`` (L, B, T, n).

    ``w[l]`` is the trace entering layer l (``w[L]`` the output), the neuron-coordinate twin of the residual
    stream: ``v[l] = E_ext w[l]``. With ``gain(w) = sqrt(|E_ext w|^2 / d + 1e-5)`` (the std LayerNorm divides by;
    ``E_ext w`` is centred) and ``z_l = [y_l, 0_V]``::

        w[0]   = onehot_{n+tok} / gain(onehot_{n+tok})
        w[l+1] = (w[l] + z_l / gain(z_l)) / gain(w[l] + z_l / gain(z_l))

    In the Normfree variant every gain is 1. The recursion is ``network.neurons.trace_add``, which the simulator
    steps one token at a time; here it runs batched over recorded tensor activity.
    """
    c = model.config
    n, V, L = c.n_neurons, c.vocab_size, c.n_layer
    if tokens.dim() != 2 or y.shape != (L, *tokens.shape, n):
        raise ValueError(f"tokens must be (B, T) and y (L, B, T, n) = (L, B, T, {n}) with L={L}; "
                         f"got tokens {tuple(tokens.shape)} and y {tuple(y.shape)}")
    E_ext = extended_decoder(model, y.dtype).to(y.device)  # d, n+V

    def gain(u: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(u.pow(2).mean(-1, keepdim=True) + LN_EPS) if c.layer_norm else torch.ones_like(u[..., :1])

    w = torch.zeros(*tokens.shape, n + V, dtype=y.dtype, device=y.device)
    w.scatter_(-1, (tokens + n).unsqueeze(-1), 1.0)
    u = E_ext.T[tokens + n]  # B, T, d: the hub projection E_ext w, carried along for the gains
    g = gain(u)
    w, u = w / g, u / g
    traces = [w]
    for layer in range(L):
        w = w.clone()
        trace_add(w, u, slice(0, n), y[layer], y[layer] @ E_ext[:, :n].T, gain)  # in place on w, u
        traces.append(w)
    return torch.stack(traces)


@dataclass
class SentenceRecord:
    """The Hebbian factors of one sentence, per layer: ``pre`` (L, T, n_pre) and ``post = R_t x`` (L, T, n).

    ``pre`` is the trace ``w`` (n_pre = n+V) at neuron level or the residual ``v`` (n_pre = d) at hub level.
    """

    text: str
    tokens: torch.Tensor
    pre: torch.Tensor
    post: torch.Tensor
    level: str
    decay: torch.Tensor | None = None  # gamma of each x-neuron's head (n,); None: no damping

    def _ages(self, posts) -> torch.Tensor | None:
        """``gamma_j ** (T-1-t)``, (len(posts), T): how much of token t's write to x-neuron j is left at the end."""
        if self.decay is None:
            return None
        age = torch.arange(self.post.shape[1] - 1, -1, -1, dtype=self.post.dtype)
        return self.decay[posts].to(self.post.dtype).reshape(-1, 1) ** age

    def synapse_values(self, layers, pres, posts) -> torch.Tensor:
        """``sigma`` (or ``rho``) entries after the whole sentence: ``sum_t gamma_j ** (T-1-t) pre[l, t, i] post[l, t,
        j]``, (M,) (gamma = 1 without damping)."""
        writes = self.pre[layers, :, pres] * self.post[layers, :, posts]
        ages = self._ages(torch.as_tensor(posts).reshape(-1))
        return (writes if ages is None else writes * ages).sum(-1)

    def synapse_trace(self, layer: int, pre: int, post: int) -> torch.Tensor:
        """The entry after each token, ``sum_{tau <= t} gamma_j ** (t - tau) pre[l, tau, i] post[l, tau, j]``, (T,)."""
        writes = self.pre[layer, :, pre] * self.post[layer, :, post]
        if self.decay is None:
            return torch.cumsum(writes, 0)
        gamma, value, trace = float(self.decay[post]), 0.0, torch.empty_like(writes)
        for t, write in enumerate(writes.tolist()):  # the state decays before each token's write
            value = gamma * value + write
            trace[t] = value
        return trace


def check_sentences(sentences, name: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> list[str]:
    """Refuse a list that is empty, holds non-strings or empty strings, or a sentence over ``max_tokens`` bytes."""
    if isinstance(sentences, str) or not hasattr(sentences, "__len__"):
        raise TypeError(f"{name} must be a list of sentences (str), got {type(sentences).__name__}")
    if len(sentences) == 0:
        raise ValueError(f"{name}: the list is empty; expected at least one sentence")
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str) or not sentence.strip():
            raise ValueError(f"{name}[{index}] is {sentence!r}; expected a non-empty sentence (str)")
        length = len(sentence.encode("utf-8"))
        if length > max_tokens:
            raise ValueError(f"{name}[{index}] ({sentence[:40]!r}...) is {length} tokens (bytes) long, "
                             f"longer than the context of max_tokens={max_tokens}")
    return list(sentences)


def _check_eval(model: BDH) -> None:
    if model.training and model.config.dropout > 0:
        raise ValueError("model is in training mode (dropout active); call model.eval() before recording")


@torch.no_grad()
def layer_activity(model: BDH, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """``x``, ``y`` (L, B, T, n, head-major) and the layer inputs ``v`` (L, B, T, d) of the parallel form.

    They are taken from ``BDH.forward`` itself, at its calls of the attention ``model.attn(x, v) -> (a, _)``; only
    ``y = relu(LN(a) D_y) * x`` is formed here. Cost O(T^2) per sentence instead of the recurrent form's
    O(T d n), and equal to ``BDH.step``'s records up to round-off (tested).
    """
    _check_eval(model)
    calls = []
    handle = model.attn.register_forward_hook(lambda module, inputs, out: calls.append((*inputs[:2], out[0])))
    try:
        model(tokens)
    finally:
        handle.remove()
    x, v, a = (torch.stack(t) for t in zip(*calls))  # L, B, h, T, N / L, B, 1, T, d / L, B, h, T, d
    y = torch.relu(layer_norm(a, model.config.layer_norm) @ model.encoder_v) * x
    heads_last = (0, 1, 3, 2, 4)
    return {"x": x.permute(heads_last).flatten(-2), "y": y.permute(heads_last).flatten(-2), "v": v[:, :, 0]}


@torch.no_grad()
def record_sentences(model: BDH, sentences: list[str], level: str = "neuron",
                     max_tokens: int = DEFAULT_MAX_TOKENS, batch_size: int = 16,
                     dtype: torch.dtype = torch.float32, name: str = "sentences",
                     progress: bool = False) -> list[SentenceRecord]:
    """Run the tensor model over each sentence from a zero state and keep its Hebbian factors (module doc).

    Sentences run ``batch_size`` at a time through the parallel form (``layer_activity``), padded at the end:
    the model is causal, so padding never changes the activity of the real tokens, which are all that is kept.
    ``level`` is ``"neuron"`` (pre = trace w, the paper's synapses sigma) or ``"hub"`` (pre = residual v, the
    tensor model's rho). Factors are stored in ``dtype``: about ``4 L (n_pre + n)`` bytes per token in float32.
    ``name`` names the list in errors and in the progress bar (``progress``).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    sentences = check_sentences(sentences, name, max_tokens)
    device = model.decoder.device
    N = model.config.N
    decay = model.decay().double().cpu().repeat_interleave(N) if model.config.damping else None  # (n,)
    records = []
    for start in tqdm(range(0, len(sentences), batch_size), desc=f"reading {name}", unit="batch",
                      disable=not progress, leave=False):
        chunk = sentences[start:start + batch_size]
        token_lists = [encode(s) for s in chunk]
        T = max(len(t) for t in token_lists)
        tokens = torch.zeros(len(chunk), T, dtype=torch.long)
        for b, t in enumerate(token_lists):
            tokens[b, :len(t)] = t
        tokens = tokens.to(device)
        act = layer_activity(model, tokens)
        positions = torch.arange(T, dtype=model.attn.freqs.dtype, device=device).view(T, 1)
        cos, sin = rope_cos_sin(positions, model.attn.freqs.view(-1))  # T, N
        L, B = act["x"].shape[:2]
        post = rope(act["x"].view(L, B, T, -1, N).transpose(2, 3), cos, sin).transpose(2, 3).flatten(-2)
        pre = presynaptic_trace(model, tokens, act["y"])[:-1] if level == "neuron" else act["v"]
        for b, t in enumerate(token_lists):
            records.append(SentenceRecord(chunk[b], t, pre[:, b, :len(t)].to("cpu", dtype).contiguous(),
                                          post[:, b, :len(t)].to("cpu", dtype).contiguous(), level, decay))
    return records


@torch.no_grad()
def synapse_trace(model: BDH, text: str, synapse: Synapse, max_tokens: int = DEFAULT_MAX_TOKENS) -> np.ndarray:
    """The synapse's value after each token of ``text`` (stepping from a zero state), float64 array (T,)."""
    check_synapse(synapse, model.config)
    record, = record_sentences(model, [text], synapse.level, max_tokens, dtype=torch.float64, name="passage")
    return record.synapse_trace(synapse.layer, synapse.pre, synapse.post).numpy()


def neuron_sigma(record: SentenceRecord, N: int) -> torch.Tensor:
    """The full state after a sentence, ``sigma`` (L, h, n_pre, N): ``sigma[l, head] = pre[l]^T post[l, :, head]``,
    each write weighted by what damping left of it."""
    L, T, n = record.post.shape
    ages = record._ages(torch.arange(n))
    post = record.post if ages is None else record.post * ages.T
    return torch.einsum("lti,ltj->lij", record.pre, post).reshape(L, -1, n // N, N).transpose(1, 2)


__all__ = ["DEFAULT_MAX_TOKENS", "SentenceRecord", "check_sentences", "extended_decoder", "neuron_sigma",
           "presynaptic_trace", "record_sentences", "synapse_trace"]
