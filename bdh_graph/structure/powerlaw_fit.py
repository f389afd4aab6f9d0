"""Power-law fits of degree distributions, after Clauset, Shalizi and Newman, SIAM Review 51:661 (2009).

Discrete power law ``p(x) = x^(-alpha) / zeta(alpha, x_min)`` for integers ``x >= x_min`` (continuous:
``p(x) = (alpha - 1)/x_min (x/x_min)^(-alpha)``).

1. Fit: for each candidate ``x_min`` the maximum-likelihood ``alpha`` of the tail ``x >= x_min``; ``x_min`` is
   the one minimising the Kolmogorov-Smirnov distance ``D`` between the tail's empirical CDF and the fit
   (CSN section 3). Done by the ``powerlaw`` package (Alstott, Bullmore and Plenz 2014) with the exact
   discrete likelihood (``estimate_discrete=False``), alpha searched in :data:`ALPHA_RANGE` at every candidate
   ``x_min`` and in every bootstrap refit. The range is passed explicitly because ``powerlaw`` 2.x bounds alpha
   at 3 by default (``Power_Law.DEFAULT_PARAMETER_RANGES``), which clips steeper tails to 3.00 and moves the
   choice of ``x_min`` with them; 1.x takes the same bounds under another keyword (``parameter_range``).
2. Goodness of fit (CSN section 4.1): ``n_bootstrap`` synthetic data sets of the same size; each value comes,
   with probability ``n_tail / n``, from the fitted power law, else from the observed values below ``x_min``.
   Each is fitted the same way (``x_min`` too); ``p`` is the fraction with ``D_synthetic >= D``. ``p < 0.1``
   rules the power law out. The p-value's standard error is about ``sqrt(p(1-p)/n_bootstrap)``.
3. Alternatives (CSN section 5, Vuong's test): the normalised log-likelihood ratio ``R`` of the power law
   against a lognormal and an exponential fitted to the same tail, and its two-sided p-value;
   ``R > 0`` favours the power law, and only ``p < 0.1`` makes the sign meaningful.

Zeros (neurons without edges) are outside any power law's support and are left out (their number is kept).
"""
from __future__ import annotations

import contextlib
import inspect
import io
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import powerlaw
from scipy.special import zeta
from tqdm.auto import tqdm

from ..errors import GraphInputError
from ..graphs import check_count

SIGNIFICANCE = 0.1  # CSN's conventional level for both the bootstrap p-value and the likelihood-ratio tests
ALTERNATIVES = ("lognormal", "exponential")
# alpha > 1 normalises a power law; a tail steeper than 20 is no heavy tail at all (an untrained model's degrees
# fit at 6-9). ``powerlaw`` 2.x discards a candidate x_min whose alpha comes within 0.01 of either bound.
ALPHA_RANGE = (1.0, 20.0)
_RANGE_KEYWORD = "parameter_ranges" if "parameter_ranges" in inspect.signature(powerlaw.Fit).parameters \
    else "parameter_range"  # powerlaw 2.x, 1.x


@dataclass(frozen=True)
class Comparison:
    """Likelihood-ratio test of the power law against ``alternative``: ``R > 0`` favours the power law."""

    alternative: str
    R: float
    p: float

    @property
    def favoured(self) -> str:
        """``"power_law"``, the alternative's name, or ``"neither"`` when ``p >= 0.1``."""
        if not self.p < SIGNIFICANCE:
            return "neither"
        return "power_law" if self.R > 0 else self.alternative


@dataclass(frozen=True)
class PowerLawFit:
    """A Clauset-Shalizi-Newman power-law fit (module doc). ``p_value`` is NaN without a bootstrap."""

    alpha: float
    sigma: float  # standard error of alpha, (alpha - 1) / sqrt(n_tail)
    xmin: float
    ks_distance: float
    n: int  # positive values fitted
    n_tail: int  # values >= xmin
    n_zero: int  # zeros left out
    discrete: bool
    p_value: float
    n_bootstrap: int
    comparisons: tuple[Comparison, ...]

    @property
    def plausible(self) -> bool:
        """Not ruled out: bootstrap ``p >= 0.1`` (when run) and no alternative significantly favoured."""
        ruled_out = self.p_value < SIGNIFICANCE  # False for NaN
        return not ruled_out and all(c.favoured in ("neither", "power_law") for c in self.comparisons)

    @property
    def verdict(self) -> str:
        """One line in CSN's terms: the bootstrap's verdict, then what the likelihood ratios favour."""
        better = [c for c in self.comparisons if c.favoured == c.alternative]
        worse = [c.alternative for c in self.comparisons if c.favoured == "power_law"]
        lr = " and ".join(f"{c.alternative} favoured over it (likelihood ratio R = {c.R:.2f}, p = {c.p:.2g})"
                          for c in better)
        if self.p_value < SIGNIFICANCE:
            return f"power law ruled out (bootstrap p = {self.p_value:.2f} < {SIGNIFICANCE}); " + \
                (lr or "no alternative significantly better")
        gof = "no bootstrap" if np.isnan(self.p_value) else f"bootstrap p = {self.p_value:.2f}"
        if better:
            return f"power law doubtful ({gof}): {lr}"
        tail = f"; favoured over {' and '.join(worse)}" if worse else "; alternatives not ruled out"
        return f"power law plausible ({gof}){tail}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["comparisons"] = {c.alternative: {"R": c.R, "p": c.p, "favoured": c.favoured} for c in self.comparisons}
        out.update(plausible=self.plausible, verdict=self.verdict)
        return out


@contextlib.contextmanager
def _quiet():
    """Silence ``powerlaw``: its warnings, numpy's, and the x_min search that 1.5 prints to stdout whatever
    ``verbose`` says (stdout may carry a command's JSON)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _fit(values: np.ndarray, discrete: bool):
    with _quiet():
        fit = powerlaw.Fit(values, discrete=discrete, estimate_discrete=False, verbose=0,
                           **{_RANGE_KEYWORD: {"alpha": ALPHA_RANGE}})
        return fit, fit.power_law


def power_law_ccdf(x, alpha: float, xmin: float, discrete: bool = True) -> np.ndarray:
    """``P(X >= x)`` of the power law with exponent ``alpha`` above ``xmin`` (``zeta`` is Hurwitz's)."""
    x = np.asarray(x, dtype=np.float64)
    if discrete:
        return zeta(alpha, x) / zeta(alpha, xmin)
    return (x / xmin) ** (1.0 - alpha)


def sample_power_law(alpha: float, xmin: float, size: int, rng: np.random.Generator,
                     discrete: bool = True) -> np.ndarray:
    """Exact samples of the power law: inverse transform, ``x`` with ``P(X >= x+1) < r <= P(X >= x)``.

    The discrete inverse starts from CSN's continuous approximation (their eq. D.6) and is made exact by
    bisection on the Hurwitz-zeta CCDF.
    """
    if not alpha > 1:
        raise GraphInputError(f"power-law alpha must be > 1, got {alpha!r}")
    r = 1.0 - rng.random(size)  # in (0, 1]
    if not discrete:
        return xmin * r ** (-1.0 / (alpha - 1.0))
    guess = np.floor((xmin - 0.5) * r ** (-1.0 / (alpha - 1.0)) + 0.5).clip(xmin, 1e15)
    # bisection keeping P(X >= lo) >= r > P(X >= hi); the guess brackets the answer within a factor of 2
    lo, hi = np.maximum(xmin, np.floor(guess / 2)), 2 * guess + 1
    while (below := power_law_ccdf(lo, alpha, xmin) < r).any():
        lo[below] = np.maximum(xmin, np.floor(lo[below] / 2))
    while (above := power_law_ccdf(hi, alpha, xmin) >= r).any():
        hi[above] *= 2
    while (open_ := hi - lo > 1).any():
        mid = np.floor((lo + hi) / 2)
        inside = power_law_ccdf(mid, alpha, xmin) >= r
        lo, hi = np.where(open_ & inside, mid, lo), np.where(open_ & ~inside, mid, hi)
    return lo.astype(np.int64)


def _bootstrap_p(values: np.ndarray, alpha: float, xmin: float, ks: float, n_bootstrap: int, discrete: bool,
                 rng: np.random.Generator, progress: bool = False) -> float:
    body = values[values < xmin]
    p_tail = np.mean(values >= xmin)
    exceed = 0
    for _ in tqdm(range(n_bootstrap), desc="power-law bootstrap", unit="set", disable=not progress, leave=False):
        from_tail = rng.random(values.size) < p_tail
        synthetic = np.empty(values.size)
        synthetic[from_tail] = sample_power_law(alpha, xmin, int(from_tail.sum()), rng, discrete)
        synthetic[~from_tail] = rng.choice(body, size=int((~from_tail).sum())) if body.size else xmin
        if np.unique(synthetic).size < 3:
            exceed += 1  # too degenerate to fit: counts as no better than the data
            continue
        exceed += _fit(synthetic, discrete)[1].D >= ks
    return exceed / n_bootstrap


def fit_power_law(values, discrete: bool = True, n_bootstrap: int = 100, seed: int | None = 0,
                  alternatives: tuple[str, ...] = ALTERNATIVES, progress: bool = False) -> PowerLawFit:
    """Fit a power law to ``values`` (degrees: ``discrete=True``), test its fit and compare it (module doc).
    ``progress`` shows a bar over the bootstrap's synthetic sets.

    >>> rng = np.random.default_rng(1)
    >>> fit_power_law(sample_power_law(2.5, 1, 5000, rng), n_bootstrap=0).alpha   # doctest: +SKIP
    2.49...
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size and (not np.isfinite(values).all() or values.min() < 0):
        raise GraphInputError("power-law fit: values must be finite and >= 0 (degrees or strengths)")
    check_count("n_bootstrap", n_bootstrap)
    positive = values[values > 0]
    if np.unique(positive).size < 3:
        raise GraphInputError(f"power-law fit needs at least 3 distinct positive values, got "
                         f"{np.unique(positive).size} (of {values.size} values)")
    fit, pl = _fit(positive, discrete)
    rng = np.random.default_rng(seed)
    p = _bootstrap_p(positive, pl.alpha, fit.xmin, pl.D, n_bootstrap, discrete, rng, progress) \
        if n_bootstrap else np.nan
    comparisons = []
    with _quiet():
        for alt in alternatives:
            R, p_lr = fit.distribution_compare("power_law", alt, normalized_ratio=True)
            comparisons.append(Comparison(alt, float(R), float(p_lr)))
    return PowerLawFit(
        alpha=float(pl.alpha), sigma=float((pl.alpha - 1) / np.sqrt(fit.n_tail)), xmin=float(fit.xmin),
        ks_distance=float(pl.D),
        n=int(positive.size), n_tail=int(fit.n_tail), n_zero=int(values.size - positive.size), discrete=discrete,
        p_value=float(p), n_bootstrap=int(n_bootstrap), comparisons=tuple(comparisons),
    )
