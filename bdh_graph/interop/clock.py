"""The clock of a run: physical time for the tokens and micro-steps that the network counts in.

BDH has no time constant of its own: it steps once per token, and in spike mode a round of a layer is a volley of
K micro-steps. Tools that speak milliseconds and hertz (NWB, SONATA, NEST, the figures) see a run on this clock:

- token ``t`` occupies ``[t * token_ms, (t + 1) * token_ms)`` milliseconds (default ``token_ms = 10``);
- micro-step ``s`` of ``K`` (every round of every layer of the token shares them) starts at
  ``(t + s / K) * token_ms``: a spike is stamped at the start of its micro-step;
- a neuron firing at every micro-step fires at ``K / token_ms`` kHz, so a fraction ``f`` of a population firing
  per micro-step is a mean rate of ``f * K * 1000 / token_ms`` Hz per neuron.

The figures, NWB files and SONATA spike files of one run use one ``Clock``, so their times agree.

>>> clock = Clock(token_ms=10.0)
>>> clock.spike_ms(token=2, step=3, spike_steps=4), clock.rate_hz(0.5, spike_steps=4)
(27.5, 200.0)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_TOKEN_MS = 10.0


@dataclass(frozen=True)
class Clock:
    """Each token lasts ``token_ms`` milliseconds; micro-steps subdivide it evenly (module doc)."""

    token_ms: float = DEFAULT_TOKEN_MS

    def __post_init__(self) -> None:
        value = self.token_ms
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value) or value <= 0:
            raise ValueError(f"Clock token_ms must be a finite number of milliseconds > 0, got {value!r}")

    def onset_ms(self, token) -> np.ndarray | float:
        """Onset of token(s) ``token`` in milliseconds, ``token * token_ms``."""
        return self.spike_ms(token, 0, 1)

    def spike_ms(self, token, step, spike_steps: int) -> np.ndarray | float:
        """Time in ms of a spike at micro-step ``step`` (0..K-1) of token ``token``: the micro-step's start."""
        t = (np.asarray(token, np.float64) + np.asarray(step, np.float64) / spike_steps) * self.token_ms
        return t if np.ndim(t) else float(t)

    def step_ms(self, spike_steps: int) -> float:
        """Duration of one micro-step in milliseconds, ``token_ms / K``."""
        return self.token_ms / spike_steps

    def rate_hz(self, fraction, spike_steps: int) -> np.ndarray | float:
        """Mean firing rate in Hz of a population of which ``fraction`` fires per micro-step."""
        rate = np.asarray(fraction, np.float64) * spike_steps * 1000.0 / self.token_ms
        return rate if np.ndim(rate) else float(rate)

    def duration_ms(self, tokens: int) -> float:
        """Length of a run of ``tokens`` tokens in milliseconds."""
        return tokens * self.token_ms


__all__ = ["Clock", "DEFAULT_TOKEN_MS"]
