r"""Chapter 05: random matrices, and the decoupling of a Hessian block from its own data.

The densities (semicircle, Marchenko–Pastur, generalised MP) are in :mod:`hesslib.rmt` and the
random-matrix samplers in :mod:`hesslib.rmt.sampling`; this module runs the chapter's decoupling
experiments.

Setting (talk Part III, chapter 05). Rows ``x_n ~ N(0, I_d)`` of ``X`` (``N × d``), a linear
model ``f(x) = V x`` at LeCun initialisation and the cross-entropy loss. The diagonal Hessian
block of class ``i`` is

.. math:: H_{ii} = \frac1N \sum_n \lambda_n x_n x_n^\top = \frac1N X^\top \Lambda X,
    \qquad \lambda_n = p_{n,i}(1 - p_{n,i}),\quad p_n = \operatorname{softmax}(V x_n),

whose weights depend on ``X``. The *decoupled* block ``H̃_ii`` takes ``p`` from an independent
copy ``X̃``; ``X(t) = √t X + √(1−t) X̃`` interpolates between the two (``t = 1``: ``H``,
``t = 0``: ``H̃``). A third matrix, the *swap* ``H'``, replaces the component of every ``x_n``
in the row space of ``V`` by that of ``x̃_n`` while keeping ``λ_n``: for Gaussian data it has
the law of ``H̃`` and differs from ``H`` by a matrix of rank ``≤ 2C``, so ``E s_H − E s_H'``
estimates ``E s_H − E s_H̃`` with a variance that does not grow with ``N`` (exercise 3 of the
chapter). Stieltjes transforms are ``s(z) = (1/d) Σ_j 1/(μ_j − z)``, ``Im z > 0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..core.checks import (
    as_float64,
    check_class_count,
    check_complex_upper,
    check_index,
    check_like,
    check_matrix,
    check_num_classes,
    check_positive_int,
    check_real,
    check_shape,
)
from ..core.device import make_generator, portable_randn, single_thread
from ..core.sweep import point_seed
from .laws import stieltjes_empirical
from .sampling import lambda_quantiles, weighted_gram

__all__ = [
    "block_spectra",
    "ce_diagonal_weights",
    "CoupledSpectra",
    "decoupling_gap",
    "DecouplingGap",
    "diagonal_block",
    "interpolate_inputs",
    "InterpolationCurve",
    "rank_bound",
    "stieltjes_along_t",
    "swap_projection",
]


# ----------------------------------------------------------------------------- helpers
def _stieltjes(H: torch.Tensor, zeta: torch.Tensor) -> torch.Tensor:
    """``(1/d) Σ_j 1/(μ_j − ζ)`` over the eigenvalues ``μ`` of ``H``, ``(Z,)``."""
    return stieltjes_empirical(torch.linalg.eigvalsh(H).cpu(), zeta)


# ----------------------------------------------------------------------------- Hessian blocks
def ce_diagonal_weights(X: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    r"""Weights of the diagonal CE blocks of the linear model: ``λ_{n,i} = p_{n,i}(1 − p_{n,i})``.

    Args:
        X: inputs ``(N, d)``.
        V: weights ``(C, d)``.

    Returns:
        ``(N, C)``: column ``i`` is the diagonal of ``Λ`` in ``H_{v_iv_i} = (1/N) Xᵀ Λ X``.
    """
    check_matrix("X", X)
    check_matrix("V", V)
    check_num_classes(V.shape[0])
    if V.shape[1] != X.shape[1]:
        raise ValueError(f"V must have {X.shape[1]} columns to match X, got shape {tuple(V.shape)}")
    p = torch.softmax(X @ V.T, dim=1)  # (N, C)
    return p * (1 - p)


def diagonal_block(
    X: torch.Tensor,
    V: torch.Tensor,
    i: int = 0,
    *,
    decouple_with: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Diagonal CE block ``H_{v_iv_i}`` of the linear model, or its decoupled version.

    ``H = (1/N) Σ_n λ_n x_n x_nᵀ`` with ``λ_n = p_{n,i}(1 − p_{n,i})``; with ``decouple_with=X̃``
    the weights come from ``X̃`` (same shape, independent of ``X``): the talk's ``H̃_ii``
    (eq. (32) of the slides). The same keyword as :func:`hesslib.block_ratios_at_init`.
    """
    check_matrix("X", X)
    check_index("i", i, check_matrix("V", V).shape[0], "a class index")
    src = X if decouple_with is None else check_matrix("decouple_with", decouple_with)
    if src.shape != X.shape:
        raise ValueError(
            f"decouple_with must have X's shape {tuple(X.shape)}, got {tuple(src.shape)}"
        )
    return weighted_gram(X, ce_diagonal_weights(src, V)[:, i])


def interpolate_inputs(X: torch.Tensor, X_tilde: torch.Tensor, t: float) -> torch.Tensor:
    r"""``X(t) = √t X + √(1 − t) X̃``: for independent Gaussian ``X, X̃`` every ``X(t)`` has the
    law of ``X`` and correlation ``√t`` with it (talk, "indept. copy + interpolation")."""
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must lie in [0, 1], got {t}")
    if X.shape != X_tilde.shape:
        raise ValueError(
            f"X_tilde must have X's shape {tuple(X.shape)}, got {tuple(X_tilde.shape)}"
        )
    return math.sqrt(t) * X + math.sqrt(1.0 - t) * X_tilde


def swap_projection(X: torch.Tensor, X_tilde: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    r"""``X' = X (I − P) + X̃ P``, ``P`` the orthogonal projector onto the row space of ``V``.

    The weights ``λ(V x_n)`` see only ``P x_n``. For Gaussian rows, ``x'_n = (I − P)x_n + P x̃_n``
    is ``N(0, I)`` and independent of ``P x_n``, so ``(1/N) Σ λ(V x_n) x'_n x'_nᵀ`` has the law
    of the decoupled block, and it differs from ``H`` by a matrix of rank ``≤ 2 rank(V)``.
    """
    for name, A in (("X", X), ("X_tilde", X_tilde), ("V", V)):
        check_like(name, check_matrix(name, A), "X", X)
    check_shape("X_tilde", X_tilde, X.shape, "to match X")
    check_shape("V", V, ("C", X.shape[1]), "to match X")
    Q, _ = torch.linalg.qr(V.T)  # (d, C): orthonormal basis of the row space
    return X + (X_tilde - X) @ Q @ Q.T


def rank_bound(C: int, d: int, z) -> torch.Tensor:
    r"""``2πC / (d Im z)``: bound on ``|s_H(z) − s_{H'}(z)|`` for a rank-``2C`` difference.

    For Hermitian ``A, B`` with ``rank(A − B) ≤ r`` the eigenvalue counting functions differ by
    at most ``r/d`` (interlacing), and ``s_A − s_B = ∫ (F_A − F_B)(x) (x − z)^{-2} dx``.
    """
    z = torch.as_tensor(z, dtype=torch.complex128)
    return 2 * math.pi * C / (d * z.imag)


@dataclass(frozen=True, eq=False)
class CoupledSpectra:
    """Eigenvalues of coupled and decoupled diagonal blocks over independent draws of the data.

    Attributes:
        coupled: ``(M, d)`` eigenvalues of ``H_ii`` (weights from ``X``).
        decoupled: ``(M, d)`` eigenvalues of ``H̃_ii`` (weights from an independent ``X̃``).
        lam: reference sample of ``λ`` (same model, fresh inputs), for the GMP law.
        N, d, C: sizes; ``gamma = d/N``.
    """

    coupled: torch.Tensor
    decoupled: torch.Tensor
    lam: torch.Tensor
    N: int
    d: int
    C: int

    @property
    def gamma(self) -> float:
        return self.d / self.N


def _sizes(C: int, i: int, num_ref: int, **sizes: int) -> tuple[int, ...]:
    """``(C, i, num_ref, *sizes)``, checked: ``C >= 2`` classes, ``i`` one of them, sizes >= 1."""
    C = check_class_count("C", C)
    i = check_index("i", i, C, "a class index")
    return (C, i, *(check_positive_int(k, v) for k, v in dict(num_ref=num_ref, **sizes).items()))


def _setup(d: int, C: int, gen: torch.Generator, num_ref: int, i: int):
    """A LeCun ``V`` (C, d) and a reference λ sample of class ``i`` on ``num_ref`` fresh inputs."""
    V = torch.randn(C, d, generator=gen, dtype=torch.float64) / math.sqrt(d)  # LeCun
    parts = []
    for start in range(0, num_ref, 4096):  # chunks of fresh inputs, (≤4096, d) each
        X_ref = torch.randn(min(4096, num_ref - start), d, generator=gen, dtype=torch.float64)
        parts.append(ce_diagonal_weights(X_ref, V)[:, i])
    return V, torch.cat(parts)


def block_spectra(
    N: int,
    d: int,
    C: int,
    *,
    num_samples: int,
    i: int = 0,
    num_ref: int = 20000,
    seed: int = 0,
    device=None,
) -> CoupledSpectra:
    """Spectra of ``H_ii`` and ``H̃_ii`` for one LeCun model and ``num_samples`` data draws."""
    C, i, num_ref, N, d, num_samples = _sizes(C, i, num_ref, N=N, d=d, num_samples=num_samples)
    gen = make_generator(seed)
    V, lam = _setup(d, C, gen, num_ref, i)
    Vd = V.to(device)
    coupled, decoupled = [], []
    with single_thread(device):
        for _ in range(num_samples):
            X, Xt = (portable_randn(N, d, generator=gen, device=device) for _ in range(2))
            coupled.append(torch.linalg.eigvalsh(diagonal_block(X, Vd, i)).cpu())
            H_dec = diagonal_block(X, Vd, i, decouple_with=Xt)
            decoupled.append(torch.linalg.eigvalsh(H_dec).cpu())
    return CoupledSpectra(torch.stack(coupled), torch.stack(decoupled), lam, N, d, C)


# ----------------------------------------------------------------------------- interpolation
@dataclass(frozen=True, eq=False)
class InterpolationCurve:
    """``E s_{H(t)}(z)`` along the interpolation, in units where ``E λ = 1``.

    ``H(t) = (1/N) Σ_n λ(V x_n(t)) x_n x_nᵀ``; ``t = 1`` is the Hessian block, ``t = 0`` the
    decoupled one. ``z = scale · zeta`` and the transforms are multiplied by ``scale = E λ``,
    i.e. they are those of ``H/E λ`` at ``zeta``.

    Attributes:
        ts: ``(T,)``; zeta: ``(Z,)`` complex; mean: ``(T, Z)`` complex mean over draws;
        sem: ``(T, Z)`` standard error (of the complex mean, ``√(Var Re + Var Im)/√M``);
        gmp: ``(Z,)`` the generalised MP value at ``zeta`` for the reference λ;
        scale: ``E λ`` (reference sample); N, d, C, num_samples.
    """

    ts: torch.Tensor
    zeta: torch.Tensor
    mean: torch.Tensor
    sem: torch.Tensor
    gmp: torch.Tensor
    scale: float
    N: int
    d: int
    C: int
    num_samples: int


def _zeta(zeta) -> torch.Tensor:
    z = check_complex_upper(zeta, "zeta").reshape(-1)
    if z.numel() == 0:
        raise ValueError("zeta must be a non-empty list of points with Im zeta > 0")
    return z


def _mean_sem(S: torch.Tensor):
    """Mean and standard error over dim 0 of complex samples."""
    M = S.shape[0]
    sem = (
        torch.sqrt(S.real.var(0) + S.imag.var(0)) / math.sqrt(M)
        if M > 1
        else torch.zeros(S.shape[1:])
    )
    return S.mean(0), sem


def stieltjes_along_t(
    N: int,
    d: int,
    C: int,
    *,
    ts: Sequence[float],
    zeta,
    num_samples: int,
    i: int = 0,
    num_ref: int = 20000,
    seed: int = 0,
    device=None,
    progress: bool = False,
) -> InterpolationCurve:
    """Monte Carlo ``E s_{H(t)}`` for ``t`` in ``ts`` (common draws of ``X, X̃`` for all ``t``)."""
    from tqdm.auto import tqdm

    from .laws import gmp_stieltjes

    C, i, num_ref, N, d, num_samples = _sizes(C, i, num_ref, N=N, d=d, num_samples=num_samples)
    ts_t = as_float64("ts", ts).reshape(-1)
    if not bool(((ts_t >= 0) & (ts_t <= 1)).all()):
        raise ValueError(f"ts must lie in [0, 1], got {ts_t.tolist()}")
    zeta = _zeta(zeta)
    gen = make_generator(seed)
    V, lam = _setup(d, C, gen, num_ref, i)
    scale = float(lam.mean())
    Vd = V.to(device)
    S = torch.empty(num_samples, len(ts_t), len(zeta), dtype=torch.complex128)
    with single_thread(device):
        for s in tqdm(range(num_samples), desc="interpolation", disable=not progress):
            X, Xt = (portable_randn(N, d, generator=gen, device=device) for _ in range(2))
            for k, t in enumerate(ts_t.tolist()):
                H = diagonal_block(X, Vd, i, decouple_with=interpolate_inputs(X, Xt, t))
                S[s, k] = _stieltjes(H / scale, zeta)
    mean, sem = _mean_sem(S)
    gmp = gmp_stieltjes(zeta, lambda_quantiles(lam / scale), gamma=d / N)
    return InterpolationCurve(ts_t, zeta, mean, sem, gmp, scale, N, d, C, num_samples)


# ----------------------------------------------------------------------------- the gap against N
@dataclass(frozen=True, eq=False)
class DecouplingGap:
    r"""Per-draw Stieltjes differences at each ``N`` (transforms of ``H/Eλ`` at ``zeta``).

    Attributes:
        Ns: ``(K,)``; ds: ``(K,)`` with ``d = round(γ N)``; zeta: ``(Z,)``.
        swap: per ``N`` a ``(M_k, Z)`` complex tensor of ``s_H − s_{H'}``; its mean estimates
            ``E s_H − E s_H̃`` without bias.
        naive: per ``N`` a ``(M_k, Z)`` complex tensor of ``s_H − s_{H̃}`` (same mean, noisier).
        bound_ratio: ``(K,)`` max over draws and ``zeta`` of ``|s_H − s_{H'}|`` divided by
            :func:`rank_bound` (≤ 1 by the rank argument).
        C, gamma.
    """

    Ns: torch.Tensor
    ds: torch.Tensor
    zeta: torch.Tensor
    swap: list[torch.Tensor]
    naive: list[torch.Tensor]
    bound_ratio: torch.Tensor
    C: int
    gamma: float

    def gap(self, estimator: str = "swap") -> tuple[torch.Tensor, torch.Tensor]:
        """``|E s_H − E s_H̃|`` by ``estimator`` and its standard error, ``(K, Z)`` each."""
        if estimator not in ("swap", "naive"):
            raise ValueError(f"estimator must be 'swap' or 'naive', got {estimator!r}")
        parts = [_mean_sem(S) for S in (self.swap if estimator == "swap" else self.naive)]
        return torch.stack([m.abs() for m, _ in parts]), torch.stack([e for _, e in parts])

    def pathwise_rms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``√E|s_H − s_H̃|²``, the size of one draw's difference, and its standard error."""
        rms, se = [], []
        for S in self.naive:
            a = S.abs() ** 2  # (M, Z)
            r = a.mean(0).sqrt()
            rms.append(r)
            se.append(a.std(0) / math.sqrt(a.shape[0]) / (2 * r))  # delta method
        return torch.stack(rms), torch.stack(se)


def decoupling_gap(
    Ns: Sequence[int],
    *,
    gamma: float,
    C: int,
    zeta,
    num_samples: int | Sequence[int],
    i: int = 0,
    num_ref: int = 20000,
    seed: int = 0,
    device=None,
    progress: bool = False,
) -> DecouplingGap:
    """``s_H − s_{H̃}`` and ``s_H − s_{H'}`` over ``num_samples`` draws for each ``N`` (fresh
    model per ``N``; ``d = round(γN)``; ``num_samples`` may differ per ``N``). See
    :class:`DecouplingGap`."""
    from tqdm.auto import tqdm

    Ns = [check_positive_int("Ns", int(n)) for n in Ns]
    C, i, num_ref = _sizes(C, i, num_ref)
    gamma = check_real("gamma", gamma, positive=True)
    check_positive_int("seed", seed, minimum=0)
    Ms = [num_samples] * len(Ns) if isinstance(num_samples, int) else list(num_samples)
    if len(Ms) != len(Ns):
        raise ValueError(f"num_samples must be an int or one count per N ({len(Ns)})")
    Ms = [check_positive_int("num_samples", int(m), minimum=2) for m in Ms]
    zeta = _zeta(zeta)
    ds = [round(gamma * n) for n in Ns]
    if min(ds) <= 2 * C:
        raise ValueError(f"d = gamma N must exceed 2C = {2 * C} for every N, got d = {min(ds)}")
    swap, naive, ratio = [], [], torch.zeros(len(Ns), dtype=torch.float64)
    bar = tqdm(total=sum(Ms), desc="N sweep", disable=not progress)
    with single_thread(device):
        for k, (N, d, M) in enumerate(zip(Ns, ds, Ms, strict=True)):
            gen = make_generator(point_seed(seed, N))  # one stream per (seed, N)
            V, lam = _setup(d, C, gen, num_ref, i)
            scale, Vd = float(lam.mean()), V.to(device)
            D = torch.empty(2, M, len(zeta), dtype=torch.complex128)
            for s in range(M):
                X, Xt = (portable_randn(N, d, generator=gen, device=device) for _ in range(2))
                lam_X = ce_diagonal_weights(X, Vd)[:, i]
                mats = (
                    weighted_gram(X, lam_X),  # H
                    weighted_gram(X, ce_diagonal_weights(Xt, Vd)[:, i]),  # H̃ (talk, eq. 32)
                    weighted_gram(swap_projection(X, Xt, Vd), lam_X),  # H', same law as H̃
                )
                s_H, s_dec, s_swap = (_stieltjes(H / scale, zeta) for H in mats)
                D[0, s], D[1, s] = s_H - s_swap, s_H - s_dec
                bar.update()
            swap.append(D[0])
            naive.append(D[1])
            ratio[k] = float((D[0].abs() / rank_bound(C, d, zeta)).max())
    bar.close()
    return DecouplingGap(
        torch.tensor(Ns), torch.tensor(ds), zeta, swap, naive, ratio, C, float(gamma)
    )
