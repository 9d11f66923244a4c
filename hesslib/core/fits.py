r"""Log-log slope fits with confidence intervals: the decay rates of chapters 04 and 05.

Both fit a straight line ``log y = a + s log x`` by least squares and report the slope with a
Student-t interval on ``K − 2`` degrees of freedom (:class:`SlopeFit`, built in one place,
:func:`_slope_fit`). They differ in the error model:

* :func:`fit_slope` — unweighted, the errors estimated from the scatter alone
  (``scipy.stats.linregress``): the block-ratio decay in ``C`` over all seeds (chapter 04);
* :func:`loglog_fit` — weighted by known errors ``σ(log y) = y_se / y``, with the parameter
  covariance ``(Aᵀ W A)^{-1}`` scaled by ``max(1, χ²/(K − 2))`` so that the interval widens
  when the points scatter more than their error bars, never narrows (the decoupling gap
  against ``N``, chapter 05).

With unit weights and the floor dropped the weighted fit is the unweighted one, but it is not
used for it: its standard error, from the residuals, differs from ``linregress``'s (which forms
``1 − r²`` and loses digits on near-perfect power laws) by up to ``~1e-11`` relative, and
chapter 04's published intervals must not move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from .checks import as_finite_float64, as_float64, check_real

__all__ = [
    "log_correlation",
    "fit_slope",
    "loglog_fit",
    "SlopeFit",
]


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares fit of ``log r = a + s log C`` (module docstring).

    Attributes:
        slope: ``s``; stderr: its standard error; low, high: the ``level`` confidence interval
        (Student t with ``n − 2`` degrees of freedom); intercept: ``a``; n: number of points;
        level: confidence level.
    """

    slope: float
    stderr: float
    low: float
    high: float
    intercept: float
    n: int
    level: float

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the confidence interval."""
        return self.low <= value <= self.high


def _check_level(level: object) -> float:
    """``level`` as a float in ``(0, 1)``, or a ``ValueError``/``TypeError`` naming it."""
    level = check_real("level", level, positive=True)
    if level >= 1:
        raise ValueError(f"level must be a confidence level in (0, 1), got {level!r}")
    return level


def _slope_fit(slope: float, stderr: float, intercept: float, n: int, level: float) -> SlopeFit:
    """:class:`SlopeFit` with the ``level`` Student-t interval on ``n − 2`` degrees of freedom."""
    t = float(stats.t.ppf(0.5 + level / 2, n - 2))
    return SlopeFit(slope, stderr, slope - t * stderr, slope + t * stderr, intercept, n, level)


def fit_slope(Cs, ratios, *, c_min: float = 2, level: float = 0.95) -> SlopeFit:
    """Fit the log-log slope of ``ratios`` against ``C`` over all seeds, for ``C >= c_min``.

    Unweighted least squares, ``scipy.stats.linregress`` (module docstring).

    Args:
        Cs: class counts ``(K,)``.
        ratios: ``(K,)`` or ``(K, S)`` (every seed is a point).
        c_min: smallest ``C`` used (the asymptotic regime).
        level: confidence level of the interval.
    """
    Cs = as_finite_float64("Cs", Cs, positive=True).numpy()
    R = as_float64("ratios", ratios).numpy()
    if Cs.ndim != 1 or R.shape[:1] != Cs.shape:
        raise ValueError(
            f"Cs must be 1-D and ratios (K,) or (K, S) with K = len(Cs), got "
            f"{Cs.shape} and {R.shape}"
        )
    R, c_min, level = R.reshape(len(Cs), -1), check_real("c_min", c_min), _check_level(level)
    keep = Cs >= c_min
    x = np.repeat(np.log(Cs[keep]), R.shape[1])
    if len(x) < 3 or len(np.unique(x)) < 2:
        raise ValueError(f"need at least 3 points and 2 distinct C >= c_min={c_min} to fit a slope")
    if not (np.all(np.isfinite(R[keep])) and np.all(R[keep] > 0)):
        raise ValueError("ratios must be positive and finite to fit on a log scale")
    res = stats.linregress(x, np.log(R[keep].reshape(-1)))
    return _slope_fit(float(res.slope), float(res.stderr), float(res.intercept), len(x), level)


def loglog_fit(x, y, y_se, *, level: float = 0.95) -> SlopeFit:
    r"""Weighted least-squares fit of ``log y = a + s log x`` with ``σ(log y) = y_se / y``.

    The parameter covariance is ``(Aᵀ W A)^{-1}`` times ``max(1, χ²/(K − 2))`` (the errors are
    inflated when the points scatter more than their error bars say), and the interval uses
    Student's t with ``K − 2`` degrees of freedom.

    Returns:
        :class:`SlopeFit` (the fit result of chapter 04).
    """
    x, y, se = (
        as_finite_float64(k, v, positive=True).reshape(-1)
        for k, v in (("x", x), ("y", y), ("y_se", y_se))
    )
    if not (x.numel() == y.numel() == se.numel() >= 3):
        raise ValueError("x, y and y_se must have the same length >= 3")
    level = _check_level(level)
    A = torch.stack([torch.ones_like(x), x.log()], 1)  # (K, 2)
    w = (y / se) ** 2  # 1 / σ(log y)²
    cov = torch.linalg.inv(A.T @ (w[:, None] * A))
    a, s = (cov @ (A.T @ (w * y.log()))).tolist()
    chi2 = float((w * (y.log() - a - s * x.log()) ** 2).sum())
    k = x.numel()
    return _slope_fit(s, math.sqrt(float(cov[1, 1]) * max(1.0, chi2 / (k - 2))), a, k, level)


def log_correlation(a, b) -> float:
    """Pearson correlation of ``log a`` and ``log b`` (both positive)."""
    a, b = (as_finite_float64(k, v, positive=True).numpy() for k, v in (("a", a), ("b", b)))
    if a.shape != b.shape or a.size < 3:
        raise ValueError(f"need two arrays of the same length >= 3, got {a.shape} and {b.shape}")
    return float(np.corrcoef(np.log(a), np.log(b))[0, 1])
