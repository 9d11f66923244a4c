r"""The class-count sweep of chapter 04: block ratios at initialisation against ``C``.

For every class count ``C`` and seed, :func:`class_sweep` draws fresh data and models of cases
2–4 (:func:`hesslib.case_model`) and records the measured RMS block ratios
(:func:`hesslib.block_ratios_at_init`) beside their second-moment predictions
(:func:`hesslib.predicted_block_ratios`); :func:`hesslib.fit_slope` fits the log-log decay rate
with a confidence interval. The points and their seeds come from
:func:`hesslib.core.sweep.sweep_classes`, shared with chapter 05. The module also holds the
scale-free block couplings of the "three levels" (:func:`coupling_summary`) and the talk's
back-of-the-envelope ratios (:func:`intuition_ratio`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..core.block_ratios import block_ratios_at_init, case_model, predicted_block_ratios
from ..core.blocks import block_norms
from ..core.checks import check_matrix, check_num_classes, check_positive_int
from ..core.data import gaussian_data
from ..core.sweep import sweep_classes

__all__ = [
    "SWEEP_KEYS",
    "class_sweep",
    "ClassSweep",
    "coupling_matrix",
    "coupling_summary",
    "CouplingSummary",
    "dependence_sweep",
    "intuition_ratio",
    "size_limit",
    "SizeFit",
]

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
    N: int,
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
    are not swept. The points are run by :func:`hesslib.core.sweep.sweep_classes`.

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
    Cs = np.asarray([check_num_classes(int(c)) for c in Cs])
    seeds = np.asarray([int(s) for s in seeds])
    for name, v in (("N", N), ("d", d), ("m", m)):
        check_positive_int(name, v)
    point = partial(_sweep_point, N=N, d=d, m=m, init=init, device=device)
    # every (seed, C) point is independent, so the slope fit's residuals are too
    grid = sweep_classes(Cs, seeds, point, streams=3, progress=progress)
    meas, pred = (
        {key: np.array([[pt[key][j] for pt in row] for row in grid]) for key in SWEEP_KEYS}
        for j in (0, 1)
    )
    return ClassSweep(Cs, seeds, meas, pred, N, d, m)


def _sweep_point(C: int, base: int, *, N, d, m, init, device) -> dict[str, tuple[float, float]]:
    """``key -> (measured, predicted)`` ratio at one sweep point (seeds ``base … base + 2``)."""
    X = gaussian_data(N, d, 2, seed=base, device=device).X
    X_indep = gaussian_data(N, d, 2, seed=base + 1, device=device).X
    kw = {"init": init, "seed": base + 2, "device": X.device}
    linear, _ = case_model(2, d, C, **kw)
    hidden, _ = case_model(4, d, C, m=m, **kw)
    out = {}
    for case, model, loss in ((2, linear, "ce"), (3, hidden, "mse"), (4, hidden, "ce")):
        r = block_ratios_at_init(model, X, loss=loss)
        q = predicted_block_ratios(model, X_indep, N=N, loss=loss)
        for key, (kcase, layer) in SWEEP_KEYS.items():
            if kcase == case:
                out[key] = (getattr(r, layer), getattr(q, layer))
    return out


def dependence_sweep(
    Ns, *, gamma: float, C: int, m: int = 8, draws: int = 2, seed: int = 0, device=None
) -> dict[str, np.ndarray]:
    r"""The case-4 class-block ratio at growing ``N`` and ``d = γ N`` (fixed ``C``, ``m``).

    For every ``N`` and draw: the measured RMS ratio of ``H_vv``, the ratio of the decoupled
    ``H̃_vv`` (softmax weights from independent inputs) and the second-moment prediction.
    With ``m`` fixed, each class block ``(1/N) Σ_n S_n[i, j] a_n a_nᵀ`` is an average of ``N``
    i.i.d. ``m × m`` matrices and converges to ``E[S_ij a aᵀ]`` (law of large numbers), while the
    prediction converges to ``E[S_ij] E[a aᵀ]``-type limits: if the two differ, the gap stays.

    Returns:
        ``{"N", "d"}`` ``(K,)`` and ``{"measured", "decoupled", "predicted"}`` ``(K, draws)``.
    """
    check_num_classes(C)
    out = {k: np.zeros((len(Ns), draws)) for k in ("measured", "decoupled", "predicted")}
    ds = [max(1, round(gamma * N)) for N in Ns]
    for i, (N, d) in enumerate(zip(Ns, ds)):
        for j in range(draws):
            base = seed + 1000 * i + 10 * j
            X, X_ind, X_pred = (gaussian_data(N, d, 2, seed=base + k, device=device).X
                                for k in range(3))  # fmt: skip
            net, _ = case_model(4, d, C, m=m, seed=base + 3, device=X.device)
            out["measured"][i, j] = block_ratios_at_init(net, X, loss="ce").vv
            decoupled = block_ratios_at_init(net, X, loss="ce", decouple_with=X_ind)
            out["decoupled"][i, j] = decoupled.vv
            out["predicted"][i, j] = predicted_block_ratios(net, X_pred, N=N, loss="ce").vv
    return out | {"N": np.asarray(Ns), "d": np.asarray(ds)}


@dataclass(frozen=True)
class SizeFit:
    """``value(N) ≈ limit + coef / sqrt(N)``, fitted by least squares."""

    limit: float
    coef: float

    def __call__(self, N) -> np.ndarray:
        return self.limit + self.coef / np.sqrt(np.asarray(N, dtype=float))


def size_limit(Ns, values) -> SizeFit:
    """Split ``values`` measured at sizes ``Ns`` into a limit and an ``N^{-1/2}`` finite-size part.

    Raises:
        ValueError: fewer than two sizes, or ``Ns`` and ``values`` of different lengths.
    """
    N, v = np.asarray(Ns, dtype=float), np.asarray(values, dtype=float)
    if N.ndim != 1 or N.shape != v.shape or len(N) < 2 or np.any(N <= 0):
        raise ValueError("need at least two positive sizes and one value per size")
    A = np.stack([np.ones_like(N), N**-0.5], axis=1)  # (K, 2)
    (limit, coef), *_ = np.linalg.lstsq(A, v, rcond=None)
    return SizeFit(float(limit), float(coef))


def coupling_matrix(norms: torch.Tensor) -> torch.Tensor:
    r"""Scale-free block couplings ``ρ_ij = ‖H_ij‖_F / sqrt(‖H_ii‖_F ‖H_jj‖_F)`` (``ρ_ii = 1``).

    Blocks of different layers have different scales; ``ρ`` compares each block with the
    diagonal blocks it links, so a 0 means "no link" and small means "weak link".
    """
    check_matrix("norms", norms)
    diag = norms.diagonal()
    if bool((diag <= 0).any()):
        raise ValueError("every diagonal block must be non-zero to normalise")
    return norms / torch.sqrt(diag[:, None] * diag[None, :])


@dataclass(frozen=True)
class CouplingSummary:
    """RMS block couplings ``ρ`` of a one-hidden-layer Hessian, by pair of layers.

    Attributes:
        ww: RMS of ``ρ`` over pairs of distinct neuron blocks.
        vv: RMS of ``ρ`` over pairs of distinct class blocks.
        wv: RMS of ``ρ`` over all (neuron, class) pairs.
        rho: the full ``(m + C, m + C)`` coupling matrix.
    """

    ww: float
    vv: float
    wv: float
    rho: torch.Tensor


def coupling_summary(H: torch.Tensor, layout) -> CouplingSummary:
    """:func:`coupling_matrix` of ``H`` under a ``W``/``V`` layout, summarised by layer pair."""
    rho = coupling_matrix(block_norms(H, layout))
    w0, w1 = layout.group("W")
    v0, v1 = layout.group("V")

    def off_rms(A: torch.Tensor) -> float:
        eye = torch.eye(A.shape[0], dtype=torch.bool, device=A.device)
        return float(A[~eye].pow(2).mean().sqrt())

    wv = float(rho[w0:w1, v0:v1].pow(2).mean().sqrt())
    return CouplingSummary(off_rms(rho[w0:w1, w0:w1]), off_rms(rho[v0:v1, v0:v1]), wv, rho)


def intuition_ratio(C, *, block: str) -> np.ndarray:
    r"""The talk's back-of-the-envelope ratios: ``1/(C−1)`` (class blocks, CE) and ``C^{-1/2}``.

    For class blocks, ``p_{n,i} ≈ 1/C`` gives ``‖H_ij‖/‖H_ii‖ ≈ (1/C²)/((1/C)(1 − 1/C))``. For
    neuron blocks the ratio is ``Σ_c v_{ci}v_{cj} / Σ_c v_{ci}²``, an empirical covariance over
    a variance, whose RMS over pairs is ``≈ C^{-1/2}`` for i.i.d. weights.

    Args:
        C: class counts (array-like).
        block: ``"vv"`` or ``"ww"``.
    """
    C = np.asarray(C, dtype=float)
    if np.any(C < 2):
        raise ValueError("C must be >= 2")
    if block == "vv":
        return 1.0 / (C - 1.0)
    if block == "ww":
        return C**-0.5
    raise ValueError(f"block must be 'vv' or 'ww', got {block!r}")
