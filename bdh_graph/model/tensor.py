"""BDH-GPU, the tensor form of the model: parallel (training) and recurrent (stepping) (docs/model.md sections 1-3).

Parallel form, for tokens ``tok[0..T-1]`` (one set of weights shared by all layers)::

    v_t = LN(embed[tok_t])
    for l in 1..L:
        x_t = relu(D_x v_t)                                   per head, (N,)
        a_t = sum_{tau < t} <R_t x_t, R_tau x_tau> v_tau      per head, (d,), strictly causal
        y_t = relu(D_y LN(a_t)) * x_t                         per head, (N,)
        v_t = LN(v_t + LN(E y_t))                             y of all heads, head-major
    logits_t = v_t @ lm_head

Recurrent form: per layer and head a state ``rho`` (d, N), zero at the start;
``a_t = rho @ (R_t x_t)`` is read before the Hebbian write ``rho += v_t (R_t x_t)^T``.

Damping (``BDHConfig.damping``; docs/model.md 7.3, and 4.7 for the graph form): head h has a learned factor
``gamma_h`` in (0, 1) and the write made at token s reaches the read at token t > s with weight
``gamma_h ** (t - s)``. Recurrent form: ``rho <- gamma_h rho`` before each read; parallel form: the causal scores
multiplied by ``gamma_h ** (t - s)``.

Parameter names equal the released checkpoint keys: ``encoder`` is D_x, ``encoder_v`` is D_y,
``decoder`` is E (transposed: ``z = y @ decoder``), ``embed.weight``, ``lm_head``, ``attn.freqs``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..display import html_summary
from .config import BDHConfig

ROPE_THETA = 2.0**16
LN_EPS = 1e-5
INIT_STD = 0.02
IGNORE_INDEX = -100  # a target the loss skips (padding past the end of a document)
DAMPING_TIME_CONSTANTS = (32.0, 2048.0)  # tokens: a damped model's heads start log-spaced over this range


def damping_parameter(time_constants: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The free parameter ``p = logit(gamma)`` of the damping factors ``gamma = exp(-1/tau)`` for time constants
    ``tau`` in tokens (computed from ``1/tau`` so that gamma near 1 keeps its precision)."""
    rate = 1.0 / torch.as_tensor(time_constants, dtype=torch.float64)  # -log gamma
    return (-rate - torch.log(-torch.expm1(-rate))).to(dtype)  # logit(gamma) = log gamma - log(1 - gamma)


def initial_damping(n_head: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The free parameter of the damping factors at initialisation: ``gamma_h = sigmoid(p_h) = exp(-1/tau_h)`` with
    ``tau_h`` log-spaced over ``DAMPING_TIME_CONSTANTS`` (one head: their geometric mean). Shape (n_head,)."""
    low, high = (math.log(t) for t in DAMPING_TIME_CONSTANTS)
    spread = torch.linspace(low, high, n_head, dtype=torch.float64) if n_head > 1 else torch.tensor([(low + high) / 2])
    return damping_parameter(torch.exp(spread), dtype)


def rope_frequencies(N: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``f_k = theta^(-2 floor(k/2) / N) / (2 pi)``: neurons (2m, 2m+1) share one frequency. Shape (N,)."""
    k = torch.arange(N, dtype=dtype)
    return 1.0 / (ROPE_THETA ** ((torch.floor(k / 2) * 2) / N)) / (2 * math.pi)


def rope_cos_sin(positions: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the phases ``phi = 2 pi frac(t f_k)``; ``positions`` broadcasts against ``freqs``."""
    phases = ((positions * freqs) % 1) * (2 * math.pi)
    return torch.cos(phases), torch.sin(phases)


def rope(v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``R_t v``: rotate each pair, ``out[2m] = v[2m] cos - v[2m+1] sin``, ``out[2m+1] = v[2m+1] cos + v[2m] sin``."""
    v_rot = torch.stack((-v[..., 1::2], v[..., ::2]), dim=-1).view(v.shape)
    return v * cos + v_rot * sin


def layer_norm(u: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """``(u - mean) / sqrt(var + 1e-5)`` over the last axis, no affine parameters; identity when disabled."""
    return F.layer_norm(u, (u.shape[-1],), eps=LN_EPS) if enabled else u


def check_tokens(idx: torch.Tensor, vocab_size: int, name: str = "idx") -> None:
    """Refuse token tensors that are not integer ids in ``[0, vocab_size)``."""
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(idx).__name__}")
    if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{name} must hold integer token ids, got dtype {idx.dtype}")
    if idx.numel() == 0:
        raise ValueError(f"{name} is empty: at least one token is needed")
    check_token_range(int(idx.min()), int(idx.max()), vocab_size, name)


def check_token_range(lo: int, hi: int, vocab_size: int, name: str = "idx") -> None:
    """Refuse token ids whose least ``lo`` or largest ``hi`` lies outside ``[0, vocab_size)``."""
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} holds token id {bad}, expected ids in [0, {vocab_size})")


class LinearAttention(nn.Module):
    """Strictly causal linear attention with RoPE, continuing from a synaptic state ``rho`` when one is given.

    For positions ``t = t0 .. t0+T-1`` of a window:
    ``a_t = rho R_t x_t + sum_{t0 <= tau < t} <R_t x_t, R_tau x_tau> v_tau``, and the state after the window is
    ``rho + sum_tau v_tau (R_tau x_tau)^T`` (the recurrent form's writes, in bulk).
    With damping, a term written at ``tau`` and read at ``t`` is weighted by ``gamma ** (t - tau)``, the carried
    ``rho`` counting as written at ``t0 - 1``.
    """

    def __init__(self, config: BDHConfig):
        super().__init__()
        self.freqs = nn.Buffer(rope_frequencies(config.N).view(1, 1, 1, config.N))
        # gamma_h = sigmoid(damping_h): a free parameter that cannot take gamma out of (0, 1)
        self.damping = nn.Parameter(initial_damping(config.n_head)) if config.damping else None

    def log_decay(self) -> torch.Tensor | None:
        """``log gamma`` per head, (h,), or None without damping (logsigmoid keeps it exact for gamma near 1)."""
        return None if self.damping is None else F.logsigmoid(self.damping)

    def forward(self, x: torch.Tensor, v: torch.Tensor, start: int | torch.Tensor = 0, rho: torch.Tensor | None = None):
        """``x`` (B, h, T, N), ``v`` (B, 1, T, d), ``start`` the position of the first token (int or (B,)),
        ``rho`` (B, h, d, N) or None -> ``(a (B, h, T, d), rho after the window or None)``."""
        B, _, T, _ = x.shape
        offsets = torch.arange(T, device=x.device).view(1, 1, T, 1)
        positions = (torch.as_tensor(start, device=x.device).view(-1, 1, 1, 1) + offsets).to(self.freqs.dtype)
        xr = rope(x, *rope_cos_sin(positions, self.freqs))  # B, h, T, N
        scores = xr @ xr.mT  # B, h, T, T
        log_gamma = self.log_decay()
        if log_gamma is not None:
            # gamma ** (t - s) from integer lags in log space: no power overflows, small ones underflow to 0, not NaN
            lags = (offsets - offsets.mT).clamp(min=0).to(x.dtype)  # 1, 1, T, T
            scores = scores * torch.exp(lags * log_gamma.view(1, -1, 1, 1))
        a = scores.tril(diagonal=-1) @ v  # B, h, T, d
        if rho is None:
            return a, None
        if log_gamma is None:
            return a + xr @ rho.mT, rho + v.mT @ xr  # read the carried state; write the window's v x^T into it
        steps = offsets.to(x.dtype) * log_gamma.view(1, -1, 1, 1)  # 1, h, T, 1: log gamma ** i
        read = (xr @ rho.mT) * torch.exp(steps + log_gamma.view(1, -1, 1, 1))  # carried part decays by gamma ** (i+1)
        written = v.mT @ (xr * torch.exp((T - 1) * log_gamma.view(1, -1, 1, 1) - steps))  # gamma ** (T-1-i)
        return a + read, rho * torch.exp(T * log_gamma).view(1, -1, 1, 1) + written

    def cos_sin_at(self, t: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE cos/sin at position ``t`` (int, or one per sequence), exactly as the parallel form computes them.

        Shape (N,) for an int, (B, 1, N) for a (B,) tensor of positions."""
        if isinstance(t, torch.Tensor):
            position = t.to(device=self.freqs.device, dtype=self.freqs.dtype).view(-1, 1, 1)
        else:
            position = torch.tensor(float(t), dtype=self.freqs.dtype, device=self.freqs.device)
        return rope_cos_sin(position, self.freqs.view(-1))


@dataclass
class RecurrentState:
    """Synaptic state of the recurrent form: ``rho`` (L, B, h, d, N) and the next position ``t``.

    ``position`` is an int shared by all sequences, or a (B,) integer tensor when sequences are at different
    positions (streams read window by window in training).
    """

    rho: torch.Tensor
    position: int | torch.Tensor = 0

    def clone(self) -> "RecurrentState":
        position = self.position.clone() if isinstance(self.position, torch.Tensor) else self.position
        return RecurrentState(self.rho.clone(), position)


class BDH(nn.Module):
    """BDH-GPU language model (parallel ``forward``, recurrent ``step``)."""

    def __init__(self, config: BDHConfig | None = None):
        super().__init__()
        config = config or BDHConfig()
        self.config = config
        h, d, N, V = config.n_head, config.n_embd, config.N, config.vocab_size
        self.encoder = nn.Parameter(torch.randn(h, d, N) * INIT_STD)  # D_x
        self.encoder_v = nn.Parameter(torch.randn(h, d, N) * INIT_STD)  # D_y
        self.decoder = nn.Parameter(torch.randn(h * N, d) * INIT_STD)  # E (transposed)
        self.embed = nn.Embedding(V, d)
        nn.init.normal_(self.embed.weight, std=INIT_STD)
        self.lm_head = nn.Parameter(torch.randn(d, V) * INIT_STD)
        self.attn = LinearAttention(config)
        self.drop = nn.Dropout(config.dropout)

    def _ln(self, u: torch.Tensor) -> torch.Tensor:
        return layer_norm(u, self.config.layer_norm)

    def decay(self) -> torch.Tensor:
        """The damping factor ``gamma_h`` of each head, (h,) in the model's dtype (ones without damping): the state
        ``rho`` of head h is multiplied by it before every read."""
        log_gamma = self.attn.log_decay()
        if log_gamma is None:
            return torch.ones(self.config.n_head, dtype=self.decoder.dtype, device=self.decoder.device)
        return torch.exp(log_gamma.detach())

    def time_constants(self) -> torch.Tensor:
        """``tau_h = -1 / ln gamma_h`` in tokens, (h,) (inf without damping): a write keeps ``exp(-s / tau)`` of
        itself ``s`` tokens later."""
        return -1.0 / torch.log(self.decay().double())

    def parameter_count(self) -> int:
        """The number of trained numbers (every parameter's elements)."""
        return sum(p.numel() for p in self.parameters())

    def with_damping(self, damping: bool, time_constants=None) -> "BDH":
        """A new model with these weights, damped or not: ``damping=False`` drops the damping; ``damping=True`` gives
        every head the time constant of ``time_constants`` (tokens, one number or one per head; None: this model's
        own when it is damped, else the initial spread of a damped run). Same dtype, device and mode; the global
        random state is left as it was."""
        if not damping and time_constants is not None:
            raise ValueError("time_constants: an undamped model has none (give damping=True)")
        with torch.random.fork_rng(devices=[]):
            twin = BDH(self.config.replace(damping=bool(damping)))
        twin = twin.to(device=self.decoder.device, dtype=self.decoder.dtype).train(self.training)
        twin.load_state_dict({k: v for k, v in self.state_dict().items() if k != "attn.damping"}, strict=False)
        with torch.no_grad():
            if damping and time_constants is not None:
                taus = torch.as_tensor(time_constants, dtype=torch.float64).expand(self.config.n_head)
                twin.attn.damping.copy_(damping_parameter(taus, self.decoder.dtype))
            elif damping and self.config.damping:
                twin.attn.damping.copy_(self.attn.damping)
        return twin

    def _repr_html_(self) -> str:
        c, weights = self.config, self.encoder
        return html_summary("BDH (tensor model)", [
            ("layers L (one set of weights)", c.n_layer), ("d (residual width)", c.n_embd),
            ("heads h", c.n_head), ("neurons per head N", c.N), ("neurons n = h N", c.n_neurons),
            ("vocabulary V (bytes)", c.vocab_size), ("parameters", self.parameter_count()),
            ("LayerNorm", "yes" if c.layer_norm else "no (normfree)"),
            ("damping: time constants (tokens)", ", ".join(f"{float(t):.0f}" for t in self.time_constants())
             if c.damping else "none (the state never decays)"),
            ("dtype, device", f"{str(weights.dtype).removeprefix('torch.')}, {weights.device}")])

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: RecurrentState | None = None):
        """Parallel form. ``idx`` (B, T) token ids -> ``(logits (B, T, V), loss or None)``.

        With a ``state`` the window continues from it (its ``rho`` and positions, as the recurrent form would) and
        the state is advanced past the window: ``state.rho`` becomes the new state (still attached to the autograd
        graph; detach it to stop gradients at the window boundary) and ``state.position`` grows by T.
        Targets equal to -100 are ignored by the loss (padding after the end of a document).
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        check_tokens(idx, self.config.vocab_size)
        B, T = idx.shape
        if state is not None and state.rho.shape[1] != B:
            raise ValueError(f"state holds {state.rho.shape[1]} sequences, idx has {B}")
        n, d = self.config.n_neurons, self.config.n_embd
        start = 0 if state is None else state.position
        rhos = []
        v = self._ln(self.embed(idx)).unsqueeze(1)  # B, 1, T, d
        for layer in range(self.config.n_layer):
            x = F.relu(v @ self.encoder)  # B, h, T, N
            a, rho = self.attn(x, v, start, None if state is None else state.rho[layer])  # B, h, T, d
            rhos.append(rho)
            y = F.relu(self._ln(a) @ self.encoder_v) * x  # B, h, T, N
            y = self.drop(y)
            z = y.transpose(1, 2).reshape(B, 1, T, n) @ self.decoder  # B, 1, T, d
            v = self._ln(v + self._ln(z))
        logits = v.view(B, T, d) @ self.lm_head  # B, T, V
        if state is not None:
            state.rho = torch.stack(rhos)
            state.position = state.position + T
        loss = None
        if targets is not None:
            kept = targets[targets != IGNORE_INDEX]
            check_tokens(kept if kept.numel() else targets, self.config.vocab_size, "targets")
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, loss

    def init_state(self, batch_size: int = 1) -> RecurrentState:
        """Zero synaptic state for ``batch_size`` sequences, in the model's dtype and device."""
        c = self.config
        rho = torch.zeros(
            c.n_layer, batch_size, c.n_head, c.n_embd, c.N, dtype=self.decoder.dtype, device=self.decoder.device
        )
        return RecurrentState(rho, 0)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: RecurrentState, record: dict | None = None):
        """Recurrent form: one token per sequence, ``tokens`` (B,) -> ``(logits (B, V), state)``.

        ``state`` is updated in place (O(1) work and memory per token) and returned. If ``record`` is a dict it
        receives the layer activities of this token: ``x``, ``y`` (L, B, h, N), ``a`` (L, B, h, d) and the
        residual stream ``v`` (L+1, B, d) (input of each layer, then the output of the last).
        """
        tokens = tokens.reshape(-1)
        check_tokens(tokens, self.config.vocab_size, "tokens")
        B = tokens.numel()
        if state.rho.shape[1] != B:
            raise ValueError(f"state holds {state.rho.shape[1]} sequences, tokens has {B}")
        cos, sin = self.attn.cos_sin_at(state.position)
        gamma = self.decay().view(1, -1, 1, 1) if self.config.damping else None
        v = self._ln(self.embed(tokens))  # B, d
        xs, ys, as_, vs = [], [], [], [v]
        for layer in range(self.config.n_layer):
            rho = state.rho[layer]  # B, h, d, N
            x = F.relu(v[:, None, None, :] @ self.encoder).squeeze(2)  # B, h, N (a batched matmul avoids a copy of D_x)
            k = rope(x, cos, sin)
            if gamma is not None:
                rho.mul_(gamma)  # damping: the state decays before the read
            a = torch.einsum("bhdn,bhn->bhd", rho, k)  # read before write
            rho.add_(v[:, None, :, None] * k[:, :, None, :])  # Hebbian write
            y = F.relu(torch.einsum("bhd,hdn->bhn", self._ln(a), self.encoder_v)) * x
            y = self.drop(y)
            z = y.reshape(B, -1) @ self.decoder  # B, d
            v = self._ln(v + self._ln(z))
            if record is not None:
                xs.append(x), ys.append(y), as_.append(a), vs.append(v)
        state.position += 1
        if record is not None:
            record.update(x=torch.stack(xs), y=torch.stack(ys), a=torch.stack(as_), v=torch.stack(vs))
        return v @ self.lm_head, state

    @torch.no_grad()
    def forward_recurrent(self, idx: torch.Tensor, state: RecurrentState | None = None) -> torch.Tensor:
        """Logits (B, T, V) of ``idx`` (B, T) computed token by token with ``step``."""
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        state = state if state is not None else self.init_state(idx.shape[0])
        return torch.stack([self.step(idx[:, t], state)[0] for t in range(idx.shape[1])], dim=1)

    @torch.no_grad()
    def generate(
        self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue ``idx`` (B, T) by ``max_new_tokens`` sampled tokens, stepping the recurrent form."""
        if idx.dim() != 2 or idx.shape[1] == 0:
            raise ValueError(f"idx must have shape (B, T) with T >= 1, got {tuple(idx.shape)}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if top_k is not None and not 1 <= top_k <= self.config.vocab_size:
            raise ValueError(f"top_k must be in [1, {self.config.vocab_size}], got {top_k}")
        state = self.init_state(idx.shape[0])
        for t in range(idx.shape[1]):
            logits, state = self.step(idx[:, t], state)
        out = [idx]
        for _ in range(max_new_tokens):
            logits = logits / temperature
            if top_k is not None:
                kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)  # B, 1
            out.append(nxt)
            logits, state = self.step(nxt[:, 0], state)
        return torch.cat(out, dim=1)
