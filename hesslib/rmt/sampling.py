r"""Chapter 05: random matrices drawn and compared with their predicted laws.

The densities (semicircle, Marchenko–Pastur, generalised MP) and the second-moment prediction
``γ E[λ²] + (E λ)²`` are in :mod:`hesslib.rmt`; this module samples the matrices they describe
(Wigner, weighted sample covariances ``(1/N) Xᵀ Λ X``), measures the distance of a spectrum to a
law (:func:`ks_distance`), draws it (:func:`draw_spectrum`), and checks the block second moments
of chapter 04's four cases against the prediction (:func:`second_moment_cases`). The decoupling
experiments that use these matrices are in :mod:`hesslib.rmt.decoupling`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.checks import (
    as_finite_float64,
    check_like,
    check_matrix,
    check_positive_int,
    check_shape,
)
from ..core.device import make_generator, portable_randn, single_thread

__all__ = [
    "ks_distance",
    "lambda_quantiles",
    "sample_covariance_eigenvalues",
    "weighted_gram",
    "wigner_eigenvalues",
]


# ----------------------------------------------------------------------------- helpers
def _gen(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None:
        return generator
    return make_generator(0 if seed is None else seed)


# ----------------------------------------------------------------------------- random matrices
def wigner_eigenvalues(
    n: int, *, num_samples: int = 1, seed: int | None = None, generator=None, device=None
) -> torch.Tensor:
    r"""Eigenvalues of Wigner matrices ``W = (G + Gᵀ)/√(2n)``, ``G_ij ~ N(0, 1)`` i.i.d.

    Off-diagonal entries have variance ``1/n``, so the spectrum fills ``[−2, 2]`` with the
    semicircle density :func:`hesslib.rmt.semicircle_density` (Wigner 1955).

    Args:
        n: matrix size.
        num_samples: independent matrices.
        seed, generator: randomness (drawn on the CPU, so results do not depend on ``device``).
        device: where to diagonalise.

    Returns:
        ``(num_samples, n)`` float64 CPU tensor, each row ascending.
    """
    n = check_positive_int("n", n)
    num_samples = check_positive_int("num_samples", num_samples)
    gen = _gen(seed, generator)
    out = []
    with single_thread(device):
        for _ in range(num_samples):
            G = portable_randn(n, n, generator=gen, device=device)  # (n, n)
            out.append(torch.linalg.eigvalsh((G + G.T) / math.sqrt(2 * n)).cpu())
    return torch.stack(out)


def sample_covariance_eigenvalues(
    d: int,
    N: int,
    *,
    num_samples: int = 1,
    lam: torch.Tensor | None = None,
    seed: int | None = None,
    generator=None,
    device=None,
) -> torch.Tensor:
    r"""Eigenvalues of ``H = (1/N) Xᵀ Λ X`` for Gaussian ``X`` (``N × d``), Λ independent of X.

    With ``lam=None`` (``Λ = I``) this is the Marchenko–Pastur matrix ``(1/N) Σ_n x_n x_nᵀ``;
    for ``d > N`` it has ``d − N`` zero eigenvalues (the MP atom of mass ``1 − N/d``).

    Args:
        d, N: sizes (``γ = d/N``).
        num_samples: independent draws of ``X``.
        lam: ``None``, a fixed diagonal ``(N,)``, or one diagonal per draw ``(num_samples, N)``.
        seed, generator, device: as in :func:`wigner_eigenvalues`.

    Returns:
        ``(num_samples, d)`` float64 CPU tensor.
    """
    d, N = check_positive_int("d", d), check_positive_int("N", N)
    num_samples = check_positive_int("num_samples", num_samples)
    if lam is not None:
        if not isinstance(lam, torch.Tensor) or not bool(torch.isfinite(lam).all()):
            raise ValueError("lam must be a finite tensor")
        if lam.shape not in ((N,), (num_samples, N)):
            raise ValueError(
                f"lam must have shape ({N},) or ({num_samples}, {N}), got {tuple(lam.shape)}"
            )
        lam = lam.to(device=device, dtype=torch.float64).expand(num_samples, N)
    gen = _gen(seed, generator)
    out = []
    with single_thread(device):
        for s in range(num_samples):
            X = portable_randn(N, d, generator=gen, device=device)  # (N, d)
            w = torch.ones(N, dtype=torch.float64, device=X.device) if lam is None else lam[s]
            out.append(torch.linalg.eigvalsh(weighted_gram(X, w)).cpu())
    return torch.stack(out)


def lambda_quantiles(lam: torch.Tensor, num: int = 1000) -> torch.Tensor:
    """``num`` equally spaced quantiles of a large λ sample (midpoint rule).

    :func:`hesslib.rmt.gmp_stieltjes` costs one term per distinct λ; the quantiles keep the
    law (a ``num``-point quadrature of its quantile function) at a fixed cost.
    """
    lam = check_matrix("lam", lam, ndim=1).to("cpu", torch.float64)
    num = check_positive_int("num", num)
    if lam.numel() <= num:
        return lam.clone()
    q = (torch.arange(num, dtype=torch.float64) + 0.5) / num
    return torch.quantile(lam, q)


def ks_distance(eigs: torch.Tensor, grid: torch.Tensor, density: torch.Tensor) -> float:
    r"""Kolmogorov–Smirnov distance ``sup_x |F_emp(x) − F(x)|`` between eigenvalues and a law.

    ``F`` is the cumulative trapezoid integral of ``density`` on ``grid`` (a law without
    atoms; for one with an atom at 0 compare the non-zero eigenvalues with the continuous part
    renormalised). Both one-sided limits of the empirical CDF are compared at every eigenvalue;
    eigenvalues outside the grid count with ``F = 0`` below it and ``F = F(grid[-1])`` above.
    """
    e = as_finite_float64("eigs", eigs).reshape(-1).sort().values
    g, f = as_finite_float64("grid", grid), as_finite_float64("density", density)
    if g.ndim != 1 or g.shape != f.shape or g.numel() < 2:
        raise ValueError("grid and density must be 1-D tensors of the same length >= 2")
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(f, g)])
    F = torch.from_numpy(np.interp(e.numpy(), g.numpy(), cdf.numpy()))  # (n,)
    rank = torch.arange(e.numel(), dtype=torch.float64)
    return float(torch.maximum((rank + 1) / e.numel() - F, F - rank / e.numel()).max())


# ----------------------------------------------------------------------------- weighted Gram
def weighted_gram(X: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    r"""``(1/N) Xᵀ diag(λ) X = (1/N) Σ_n λ_n x_n x_nᵀ``, shape ``(d, d)``."""
    check_matrix("X", X)
    check_shape("lam", check_matrix("lam", lam, ndim=1), (X.shape[0],), "to match X")
    check_like("lam", lam, "X", X)
    return X.T @ (lam[:, None] * X) / X.shape[0]


# ----------------------------------------------------------------------------- second moments
