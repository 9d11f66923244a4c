r"""The class-count sweep of chapter 04: block ratios at initialisation against ``C``.

For every class count ``C`` and seed, :func:`class_sweep` draws fresh data and models of cases
2–4 (:func:`hesslib.case_model`) and records the measured RMS block ratios
(:func:`hesslib.block_ratios_at_init`) beside their second-moment predictions
(:func:`hesslib.predicted_block_ratios`). :func:`fit_slope` fits the log-log decay rate with a
confidence interval and :func:`draw_sweep` plots one curve of the sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from ._checks import check_num_classes, check_positive_int
from .data import gaussian_data
from .static import block_ratios_at_init, case_model, predicted_block_ratios

__all__ = ["SWEEP_KEYS", "ClassSweep", "SlopeFit", "class_sweep", "draw_sweep", "fit_slope"]

#: The curves of the sweep: ``key -> (case, layer)``.
SWEEP_KEYS: dict[str, tuple[int, str]] = {
    "case2_vv": (2, "vv"),
    "case4_vv": (4, "vv"),
    "case3_ww": (3, "ww"),
    "case4_ww": (4, "ww"),
}


@dataclass(frozen=True, eq=False)
class ClassSweep:
    """Measured and predicted block ratios over a grid of class counts and seeds.

    Attributes:
        Cs: class counts, shape ``(K,)``.
        seeds: seeds, shape ``(S,)``.
        measured: ``key -> (K, S)`` array of measured RMS ratios (keys: :data:`SWEEP_KEYS`).
        predicted: ``key -> (K, S)`` array of second-moment predictions.
        N, d, m: the sizes; ``gamma = d / N``.
    """

    Cs: np.ndarray
    seeds: np.ndarray
    measured: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]
    N: int
    d: int
    m: int

    @property
    def gamma(self) -> float:
        return self.d / self.N

    def relative_error(self, key: str) -> np.ndarray:
        """``predicted / measured − 1`` of the seed-averaged ratios, shape ``(K,)``."""
        return self.predicted[key].mean(1) / self.measured[key].mean(1) - 1.0


def class_sweep(
    Cs,
    seeds,
    *,
    N: int,  # noqa: N803
    d: int,
    m: int = 8,
    init: str = "lecun",
    device: torch.device | str | None = None,
    progress: bool = True,
) -> ClassSweep:
    """Block ratios of cases 2–4 at initialisation for every ``C`` and seed, with predictions.

    For each ``(seed, C)``, independently: a Gaussian data set ``X`` (``N × d``; labels are not
    needed, ``H_vv`` and ``H_ww`` do not depend on them), an independent copy for the
    prediction, the linear model (case 2, CE) and the one-hidden-layer net (cases 3–4, MSE and
    CE with the same weights). Cases 1 and 3 have ``H_vv`` off-diagonal blocks exactly zero and
    are not swept.

    Args:
        Cs: class counts ``>= 2``.
        seeds: non-negative integer seeds.
        N: samples; d: input dimension; m: hidden width.
        init: ``"lecun"`` or ``"pytorch"``.
        device: where to compute (default :func:`hesslib.default_device`).
        progress: show a tqdm bar.

    Returns:
        :class:`ClassSweep`.
    """
    from tqdm.auto import tqdm

    Cs = np.asarray([check_num_classes(int(c)) for c in Cs])
    seeds = np.asarray([int(s) for s in seeds])
    for name, v in (("N", N), ("d", d), ("m", m)):
        check_positive_int(name, v)
    meas = {k: np.zeros((len(Cs), len(seeds))) for k in SWEEP_KEYS}
    pred = {k: np.zeros((len(Cs), len(seeds))) for k in SWEEP_KEYS}
    bar = tqdm(total=len(Cs) * len(seeds), desc="C sweep", disable=not progress)
    for s, seed in enumerate(seeds):
        for k, C in enumerate(Cs):
            # every (seed, C) point is independent, so the slope fit's residuals are too
            base = _point_seed(int(seed), int(C))
            X = gaussian_data(N, d, 2, seed=base, device=device).X
            X_indep = gaussian_data(N, d, 2, seed=base + 1, device=device).X
            kw = {"init": init, "seed": base + 2, "device": X.device}
            linear, _ = case_model(2, d, int(C), **kw)
            hidden, _ = case_model(4, d, int(C), m=m, **kw)
            for case, model, loss in ((2, linear, "ce"), (3, hidden, "mse"), (4, hidden, "ce")):
                r = block_ratios_at_init(model, X, loss=loss)
                q = predicted_block_ratios(model, X_indep, N=N, loss=loss)
                for key, (kcase, layer) in SWEEP_KEYS.items():
                    if kcase == case:
                        meas[key][k, s] = getattr(r, layer)
                        pred[key][k, s] = getattr(q, layer)
            bar.update()
    bar.close()
    return ClassSweep(Cs, seeds, meas, pred, N, d, m)


def _point_seed(seed: int, C: int) -> int:
    """Seed of the sweep point ``(seed, C)``: distinct points never share a stream."""
    return 3 * (seed * 1_000_003 + C)


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares fit of ``log r = a + s log C`` (``scipy.stats.linregress``).

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


def fit_slope(Cs, ratios, *, c_min: float = 2, level: float = 0.95) -> SlopeFit:
    """Fit the log-log slope of ``ratios`` against ``C`` over all seeds, for ``C >= c_min``.

    Args:
        Cs: class counts ``(K,)``.
        ratios: ``(K,)`` or ``(K, S)`` (every seed is a point).
        c_min: smallest ``C`` used (the asymptotic regime).
        level: confidence level of the interval.
    """
    Cs = np.asarray(Cs, dtype=float)
    R = np.asarray(ratios, dtype=float).reshape(len(Cs), -1)
    keep = Cs >= c_min
    x = np.repeat(np.log(Cs[keep]), R.shape[1])
    if len(x) < 3 or len(np.unique(x)) < 2:
        raise ValueError(f"need at least 3 points and 2 distinct C >= c_min={c_min} to fit a slope")
    if not (np.all(np.isfinite(R[keep])) and np.all(R[keep] > 0)):
        raise ValueError("ratios must be positive and finite to fit on a log scale")
    y = np.log(R[keep].reshape(-1))
    res = stats.linregress(x, y)
    t = stats.t.ppf(0.5 + level / 2, len(x) - 2)
    return SlopeFit(
        float(res.slope),
        float(res.stderr),
        float(res.slope - t * res.stderr),
        float(res.slope + t * res.stderr),
        float(res.intercept),
        len(x),
        level,
    )


def draw_sweep(sweep: ClassSweep, key: str, *, ax, label: str, color: str, compensate: float = 0.0):
    r"""Measured ratios (mean over seeds, min–max band) and the prediction (dashed) against C.

    Args:
        sweep: a :class:`ClassSweep`.
        key: one of :data:`SWEEP_KEYS`.
        ax: matplotlib axes (log-log).
        label: curve label.
        color: curve colour.
        compensate: plot ``r · C^compensate`` (e.g. 1 for class blocks, ½ for neuron blocks)
            so that the predicted power law is a flat line.
    """
    if key not in SWEEP_KEYS:
        raise ValueError(f"key must be one of {sorted(SWEEP_KEYS)}, got {key!r}")
    Cs = sweep.Cs.astype(float)
    scale = Cs[:, None] ** compensate
    M, P = sweep.measured[key] * scale, sweep.predicted[key] * scale
    ax.plot(Cs, M.mean(1), "o-", color=color, ms=4, label=f"{label}, measured")
    ax.fill_between(Cs, M.min(1), M.max(1), color=color, alpha=0.2, lw=0)
    ax.plot(Cs, P.mean(1), "x--", color=color, ms=5, label=f"{label}, second-moment prediction")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of classes C")
    return ax
