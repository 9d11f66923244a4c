r"""Chapter 05: random matrices drawn and compared with their predicted laws.

The densities (semicircle, Marchenko–Pastur, generalised MP) and the second-moment prediction
``γ E[λ²] + (E λ)²`` are in :mod:`hesslib.rmt`; this module samples the matrices they describe
(Wigner, weighted sample covariances ``(1/N) Xᵀ Λ X``), measures the distance of a spectrum to a
law (:func:`ks_distance`), draws it (:func:`draw_spectrum`), and checks the block second moments
of chapter 04's four cases against the prediction (:func:`second_moment_cases`). The decoupling
experiments that use these matrices are in :mod:`hesslib.decoupling`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._checks import check_matrix, check_num_classes, check_positive_int
from .device import make_generator, portable_randn, single_thread

__all__ = [
    "MomentRow",
    "draw_spectrum",
    "ks_distance",
    "lambda_quantiles",
    "sample_covariance_eigenvalues",
    "second_moment_cases",
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
    N: int,  # noqa: N803
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
    e = torch.as_tensor(eigs, dtype=torch.float64).reshape(-1).sort().values
    g = torch.as_tensor(grid, dtype=torch.float64)
    f = torch.as_tensor(density, dtype=torch.float64)
    if g.ndim != 1 or g.shape != f.shape or g.numel() < 2:
        raise ValueError("grid and density must be 1-D tensors of the same length >= 2")
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(f, g)])
    F = torch.from_numpy(np.interp(e.numpy(), g.numpy(), cdf.numpy()))  # (n,)
    rank = torch.arange(e.numel(), dtype=torch.float64)
    return float(torch.maximum((rank + 1) / e.numel() - F, F - rank / e.numel()).max())


def draw_spectrum(
    ax,
    eigs: torch.Tensor,
    *,
    grid: torch.Tensor | None = None,
    density: torch.Tensor | None = None,
    bins: int = 80,
    atom_tol: float | None = None,
    label: str = "eigenvalues",
    curve_label: str = "limit density",
    color: str = "tab:blue",
    curve_color: str = "tab:red",
):
    """Eigenvalue histogram (density scale) with an optional limit density on top.

    With ``atom_tol`` eigenvalues ``|μ| ≤ atom_tol`` are left out of the histogram (whose bars
    then integrate to the remaining fraction) and drawn as a bar at 0 of their mass.
    """
    e = torch.as_tensor(eigs, dtype=torch.float64).reshape(-1)
    bulk = e if atom_tol is None else e[e.abs() > atom_tol]
    weights = torch.full_like(bulk, 1.0 / e.numel())
    counts, edges = torch.histogram(bulk, bins=bins, weight=weights)
    width = edges[1:] - edges[:-1]
    ax.bar(edges[:-1], counts / width, width=width, align="edge", color=color, alpha=0.45,
           label=label)  # fmt: skip
    if atom_tol is not None and bulk.numel() < e.numel():
        mass = 1 - bulk.numel() / e.numel()
        ax.annotate(f"atom at 0, mass {mass:.3f}", xy=(0, 0), xytext=(0.1, 0.9),
                    textcoords="axes fraction", arrowprops={"arrowstyle": "->"})  # fmt: skip
        ax.axvline(0, color=color, lw=3)
    if density is not None:
        ax.plot(grid, density, color=curve_color, lw=1.5, label=curve_label)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    return ax


# ----------------------------------------------------------------------------- weighted Gram
def weighted_gram(X: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:  # noqa: N803
    r"""``(1/N) Xᵀ diag(λ) X = (1/N) Σ_n λ_n x_n x_nᵀ``, shape ``(d, d)``."""
    check_matrix("X", X)
    if not isinstance(lam, torch.Tensor) or lam.shape != (X.shape[0],):
        raise ValueError(f"lam must be a tensor of shape ({X.shape[0]},)")
    return X.T @ (lam[:, None] * X) / X.shape[0]


# ----------------------------------------------------------------------------- second moments
@dataclass(frozen=True)
class MomentRow:
    """Block second moments of one layer of one case, measured against predicted.

    ``diag``/``off``: mean over diagonal / off-diagonal blocks of ``‖H_b‖_F² / k`` (``k`` the
    block size), as ``(measured, decoupled, predicted)``; ``ratio``: the RMS block ratios in the
    same order. "Decoupled" recomputes the weights on an independent copy of ``X``.
    """

    case: int
    layer: str
    C: int
    size: int
    diag: tuple[float, float, float]
    off: tuple[float, float, float]
    ratio: tuple[float, float, float]


def _layer_moments(r, layer: str) -> tuple[float, float, float]:
    """``(mean diag ‖H_b‖², mean off ‖H_b‖², ratio)`` of one layer of a ``BlockRatios``."""
    if layer == "vv":
        off, diag = r.vv_sq
        return diag, off, r.vv
    sq = r.ww_sq
    eye = torch.eye(sq.shape[0], dtype=torch.bool, device=sq.device)
    return float(sq[eye].mean()), float(sq[~eye].mean()), r.ww


def second_moment_cases(
    Cs: Sequence[int],  # noqa: N803
    *,
    N: int,  # noqa: N803
    d: int,
    m: int = 8,
    num_draws: int = 1,
    init: str = "lecun",
    seed: int = 0,
    device=None,
) -> list[MomentRow]:
    r"""The four cases of chapter 04 against ``(1/k)‖H_b‖_F² ≈ γ E[λ²] + (E λ)²``.

    For each ``C`` and draw: data ``X`` (``N × d``), an independent copy for the decoupled
    blocks, ``4N`` independent inputs for the prediction, and fresh models of cases 1–4
    (:func:`hesslib.case_model`; cases 3 and 4 share their weights). Measured and decoupled
    values come from :func:`hesslib.block_ratios_at_init`, the prediction from
    :func:`hesslib.predicted_block_ratios` (chapter 04); all are averaged over ``num_draws``.
    Layers: ``vv`` (class blocks, size ``d`` or ``m``) for every case, ``ww`` (neuron blocks,
    size ``d``) for cases 3–4.
    """
    from .static import block_ratios_at_init, case_model, predicted_block_ratios

    N, d, m = (check_positive_int(k, v) for k, v in (("N", N), ("d", d), ("m", m)))
    num_draws = check_positive_int("num_draws", num_draws)
    rows = []
    with single_thread(device):
        for C in Cs:
            C = check_num_classes(int(C))
            acc: dict[tuple[int, str], list] = {}
            for draw in range(num_draws):
                base = 2 * ((seed + draw) * 1_000_003 + C)  # data and weights: disjoint streams
                gen = make_generator(base)
                X, X_dec, X_pred = (
                    portable_randn(n, d, generator=gen, device=device) for n in (N, N, 4 * N)
                )
                for case in (1, 2, 3, 4):
                    model, loss = case_model(
                        case, d, C, m=m, init=init, seed=base + 1, device=device
                    )
                    res = (
                        block_ratios_at_init(model, X, loss=loss),
                        block_ratios_at_init(model, X, loss=loss, decouple_with=X_dec),
                        predicted_block_ratios(model, X_pred, N=N, loss=loss),
                    )
                    for layer in ("vv",) if case < 3 else ("vv", "ww"):
                        vals = [_layer_moments(r, layer) for r in res]  # 3 × (diag, off, ratio)
                        acc.setdefault((case, layer), []).append(torch.tensor(vals))
            for (case, layer), vals in acc.items():
                mean = torch.stack(vals).mean(0)  # (3 estimates, 3 quantities)
                size = d if layer == "ww" or case < 3 else m
                diag, off, ratio = (tuple(mean[:, q].tolist()) for q in range(3))
                rows.append(
                    MomentRow(
                        case,
                        layer,
                        C,
                        size,
                        tuple(v / size for v in diag),
                        tuple(v / size for v in off),
                        ratio,
                    )
                )
    return rows
