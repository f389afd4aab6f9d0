"""Spiking mode: every non-negative message of the rate model sent as Bernoulli spikes over K micro-steps.

The paper reads BDH's activations as firing rates and its Hebbian rule as a stochastic AND gate on spikes. In
spike mode (``build_network(..., mode="spike", spike_steps=K, seed=...)``) each round of a layer (docs/model.md 4.3)
is a volley of K micro-steps. A sending neuron ``i`` with rate ``r_i`` of population ``P`` fires at each
micro-step with probability ``p_i = |r_i| / s_P``, independently; ``s_P`` is the population's *rate scale*.
Its receivers integrate the count ``c_i`` and read it back as the estimate::

    r_hat_i = sign(r_i) * s_P * c_i / K          E[r_hat_i | r] = r_i,   Var = |r_i| (s_P - |r_i|) / K

Signed senders (the synapse reads ``A``, the hub values ``u`` and ``a``) are pairs of ON and OFF cells: the
ON cell fires for a positive value, the OFF cell for a negative one, and their spikes reach the receivers over
the excitatory or the inhibitory circuit according to the sign of the edge times the sign of the cell.

Rate scales: ``"max"`` (the default) sets ``s_P`` each round to the population's largest ``|r_i|`` in that
round, so the most active neuron fires at every micro-step and nothing clips; a positive number fixes
``s_P``, and a rate above it is clipped to one spike per micro-step (the estimate is then biased low); a run
issues one :class:`RateClipWarning` that sums up what was clipped. Populations: the presynaptic side (``w``,
the trace, in the neuron wiring; ``u``, the hubs, in the hub wiring), the x-neurons ``x``, the synapse reads
(``A`` per head in the neuron wiring, ``a`` per head on the hubs in the hub wiring) and the y-neurons ``y``.

The Hebbian write counts coincidences: in the read round the x-neurons fire their volley and the presynaptic
neurons fire a fresh one at their trace rates; a synapse ``(i, j)`` grows by ``s_pre s_x / K`` for every
micro-step in which ``i`` and ``j`` both fire (rotated by RoPE like ``k = R_t x``)::

    sigma[i, j] += (s_pre * s_x / K) * sum_m  pre_i(m) * (R_t post(m))_j        E[. | w, x] = w_i (R_t x)_j

which is one matrix product per head, ``P^T R_t(X)`` with the volleys' amplitudes ``P`` (K, presynaptic) and ``X``
(K, x-neurons) (``channels.SpikeChannel``).

What is exact and what is not. Given the rates of a round, every estimate above is unbiased: the potentials
``G r_hat`` (linear in the counts), the synapse reads, the hub projections, the readout and each Hebbian
increment. What follows a non-linearity is only asymptotically equal to the rate model (error ~ K^-1/2): the
thresholds ``relu`` of x and y, the multiplicative gate ``y = relu(...) * x``, and the gains (LayerNorm's
division by a standard deviation). So the whole network is unbiased only where no threshold acts on an
estimate: in layer 0 of the neuron wiring a single input neuron drives x, ``relu(G w_hat) = relu(G) w_hat``,
and ``sigma`` of layer 0 is an unbiased estimate of the rate model's at every token.

Random numbers come from one numpy ``Generator`` (PCG64) seeded by ``seed``, on the host, whatever the
backend: the same seed gives the same spikes on numba, numpy and torch (CPU or CUDA).
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

MODES = ("rate", "spike")
POPULATIONS = {"neuron": ("w", "x", "A", "y"), "hub": ("u", "x", "a", "y")}


class RateClipWarning(RuntimeWarning):
    """Rates exceeded their population's fixed rate scale and were clipped to one spike per micro-step (one
    warning per run sums them up)."""


def check_spike_options(mode: str, spike_steps, seed, rate_scale, wiring: str) -> dict | None:
    """The spike options as a plain dict (``None`` in rate mode), or a ``ValueError`` naming the bad one."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "rate":
        given = {k: v for k, v in (("spike_steps", spike_steps), ("seed", seed), ("rate_scale", rate_scale))
                 if v is not None}
        if given:
            raise ValueError(f"{', '.join(given)} only apply to mode='spike' (mode is 'rate')")
        return None
    if spike_steps is None:
        raise ValueError("mode='spike' needs spike_steps: the number K >= 1 of micro-steps per round")
    if isinstance(spike_steps, bool) or not isinstance(spike_steps, numbers.Integral) or spike_steps < 1:
        raise ValueError(f"spike_steps must be an integer K >= 1 (micro-steps per round), got {spike_steps!r}")
    if seed is not None:
        check_seed(seed)
    populations = POPULATIONS[wiring]
    scales = rate_scale if isinstance(rate_scale, dict) else {p: rate_scale for p in populations}
    unknown = sorted(set(scales) - set(populations))
    if unknown:
        raise ValueError(f"rate_scale names unknown populations {unknown}; the {wiring} wiring spikes {populations}")
    checked = {}
    for population in populations:
        scale = scales.get(population)
        if scale is None or (isinstance(scale, str) and scale == "max"):
            checked[population] = "max"
        elif (isinstance(scale, numbers.Real) and not isinstance(scale, bool) and math.isfinite(scale)
              and scale > 0):
            checked[population] = float(scale)
        else:
            raise ValueError(f"rate_scale of population {population!r} must be 'max' or a positive finite "
                             f"number (the rate that fires at every micro-step), got {scale!r}")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)  # drawn once and reported, so the run can be repeated
    return {"spike_steps": int(spike_steps), "seed": int(seed), "rate_scale": checked}


def check_seed(seed) -> int:
    """``seed`` of a spike stream as an int, or a ``ValueError`` if it is not an integer >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
    return int(seed)


class Volley:
    """The spikes of one round: ``raster[m, q]`` is True when neuron ``ids[q]`` fires at micro-step ``m``.

    ``sign`` is +1 for ON cells and -1 for OFF cells; ``scale`` the rate scale ``s`` of the round.
    """

    def __init__(self, ids: np.ndarray, sign: np.ndarray, raster: np.ndarray, scale: float, clipped: int):
        self.ids, self.sign, self.raster, self.scale, self.clipped = ids, sign, raster, scale, clipped

    @property
    def steps(self) -> int:
        return self.raster.shape[0]

    @property
    def counts(self) -> np.ndarray:
        return self.raster.sum(0)

    @property
    def n_spikes(self) -> int:
        return int(np.count_nonzero(self.raster))

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """The receivers' reading, ``sign * s * count / K``, of the neurons that fired at least once."""
        counts = self.counts
        fired = counts > 0
        return self.ids[fired], self.sign[fired] * (self.scale * counts[fired] / self.steps)

    def amplitudes(self) -> np.ndarray:
        """(K, neurons): the signed spike amplitude ``sign * s`` where a neuron fires at a micro-step, else 0."""
        return np.where(self.raster, self.sign * self.scale, 0.0)

    def spike_times(self) -> tuple[np.ndarray, np.ndarray]:
        """Every spike as (micro-step, neuron id), micro-step-major."""
        steps, q = np.nonzero(self.raster)
        return steps.astype(np.int32), self.ids[q].astype(np.int32)


class Spiker:
    """Draws the volleys of a spiking network: K micro-steps, per-population rate scales, one seeded RNG."""

    def __init__(self, spike_steps: int, seed: int, rate_scale: dict):
        self.steps, self.seed, self.rate_scale = spike_steps, seed, rate_scale
        self.rng = np.random.default_rng(seed)
        self.clips: dict[str, dict] = {}  # population -> what was clipped since the last warning

    def reseed(self, seed: int) -> None:
        self.seed = check_seed(seed)
        self.rng = np.random.default_rng(self.seed)

    def fire(self, population: str, ids: np.ndarray, rates: np.ndarray, where: str) -> Volley:
        """Bernoulli spikes of neurons ``ids`` with (signed) ``rates`` over K micro-steps: P(spike) = |r| / s.

        Clipped rates are noted for :meth:`warn_clipped`, with ``where`` (layer and position) of the first.
        """
        ids, rates = np.asarray(ids, np.int64), np.asarray(rates, np.float64)
        magnitude = np.abs(rates)
        scale = self.rate_scale[population]
        clipped = 0
        if scale == "max":
            scale = float(magnitude.max()) if len(magnitude) else 1.0
            p = magnitude / scale if scale > 0 else magnitude
        else:
            p = magnitude / scale
            clipped = int(np.count_nonzero(p > 1))
            if clipped:
                note = self.clips.setdefault(population, {"count": 0, "largest": 0.0, "scale": scale, "first": where})
                note["count"] += clipped
                note["largest"] = max(note["largest"], float(magnitude.max()))
                p = np.minimum(p, 1.0)
        raster = self.rng.random((self.steps, len(ids))) < p
        return Volley(ids, np.sign(rates), raster, scale, clipped)

    def warn_clipped(self, stacklevel: int = 2) -> None:
        """One :class:`RateClipWarning` summing up the rates clipped since the last call (none if none were)."""
        if not self.clips:
            return
        total = sum(note["count"] for note in self.clips.values())
        parts = [f"population {population!r}: {note['count']} (largest rate {note['largest']:.4g}, rate scale "
                 f"{note['scale']:g}; first at {note['first']})" for population, note in self.clips.items()]
        self.clips = {}
        warnings.warn(f"{total} rate(s) exceeded their population's rate scale and were clipped to one spike per "
                      f"micro-step, so their estimates are biased low ({'; '.join(parts)}); raise rate_scale or "
                      "use 'max'", RateClipWarning, stacklevel=stacklevel + 1)

    def state(self) -> dict:
        """The seed and the generator's state (JSON-ready, for state files): resuming continues the same stream."""
        return {"seed": self.seed, "bit_generator": self.rng.bit_generator.state}

    @staticmethod
    def parse_state(saved) -> tuple[int, np.random.Generator]:
        """The seed and generator of a :meth:`state`; ``ValueError`` if it is not one."""
        try:
            rng = np.random.default_rng()
            rng.bit_generator.state = saved["bit_generator"]
            return int(saved["seed"]), rng
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"not a random-stream state ({err!r})") from err
