r"""Jensen–Shannon distances between spectral densities (chapter 06, "Why Transformers Need Adam").

The distance between two densities ``p, q`` on a common grid is the square root of the
Jensen–Shannon divergence (base 2 by default, so it lies in ``[0, 1]``),

.. math:: \mathrm{JS}(p, q) = \sqrt{\tfrac12 \mathrm{KL}(p \| m) + \tfrac12 \mathrm{KL}(q \| m)},
    \qquad m = \tfrac12 (p + q).

:func:`pairwise_js` fills the matrix over the blocks of a model, :func:`js_zero` averages its
off-diagonal entries (the paper's ``JS⁰``) and :func:`union_grid` puts several spectra on one grid.
The paper's own JS scale is not this bounded one; chapter 06 reports the standard distance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..core.checks import as_float64, check_matrix, check_positive_int, check_real
from .density import Spectrum, spectrum_grid

__all__ = [
    "js_distance",
    "js_zero",
    "pairwise_js",
    "union_grid",
]


def _probabilities(p, grid: torch.Tensor, name: str) -> torch.Tensor:
    """Densities ``(..., G)`` → probability vectors of the grid cells (trapezoid weights).

    A row whose largest value lies outside ``[2⁻⁵⁰⁰, 2⁵⁰⁰]`` is first scaled by a power of two
    (exact), so densities near the overflow or underflow limits still normalise; other rows
    are not touched.
    """
    p = as_float64(name, p)
    if p.ndim == 0 or p.shape[-1] != grid.numel():
        raise ValueError(
            f"{name} must have last dimension {grid.numel()} (the grid), got shape {tuple(p.shape)}"
        )
    if not bool(torch.isfinite(p).all()):
        raise ValueError(f"{name} contains non-finite values")
    top = float(p.abs().max()) if p.numel() else 0.0
    if bool((p < -1e-12 * top).any()):
        raise ValueError(f"{name} must be non-negative (min {float(p.min()):.3g})")
    p = p.clamp(min=0)
    _, exponent = torch.frexp(p.amax(-1, keepdim=True))  # row maximum = mantissa · 2^exponent
    extreme = (exponent.abs() > 500) & (p.amax(-1, keepdim=True) > 0)
    if bool(extreme.any()):
        p = torch.where(extreme, torch.ldexp(p, -exponent), p)
    dx = torch.diff(grid)
    cell = torch.cat([dx[:1], dx[1:] + dx[:-1], dx[-1:]]) / 2  # (G,)
    mass = p * cell
    total = mass.sum(-1, keepdim=True)
    if bool((total <= 0).any()):
        raise ValueError(f"{name} is zero everywhere on the grid; nothing to compare")
    if not bool(torch.isfinite(total).all()):
        raise ValueError(f"{name} has infinite mass on the grid (grid cells too wide)")
    return mass / total


def js_distance(p, q, grid, *, base: float = 2.0) -> torch.Tensor:
    r"""Jensen–Shannon distance between two densities sampled on a common grid.

    Both densities are turned into probability vectors over the grid cells (trapezoid weights,
    renormalised), then

    .. math:: \mathrm{JS}(P, Q) = \sqrt{\tfrac12 \mathrm{KL}(P\|M) + \tfrac12 \mathrm{KL}(Q\|M)},
        \quad M = \tfrac12 (P + Q),

    with logarithms in ``base`` (default 2: the distance lies in ``[0, 1]``, 1 for disjoint
    supports; ``base = e`` gives ``[0, √ln 2]``). Terms with ``P_i = 0`` contribute 0, so
    zero-density regions are handled and the result is never NaN. This is the standard metric
    (``scipy.spatial.distance.jensenshannon``); the paper's JS values use another scale.

    Args:
        p, q: densities, shapes broadcastable to ``(..., G)``, non-negative and finite.
        grid: the common points, ``(G,)``, strictly increasing.
        base: logarithm base (> 1).

    Returns:
        Tensor of the broadcast batch shape (0-d for two 1-D densities).

    Raises:
        ValueError: mismatched shapes, negative or non-finite values, an all-zero density.
    """
    _check_base(base)
    g = spectrum_grid(grid)
    return _js(_probabilities(p, g, "p"), _probabilities(q, g, "q"), base)


def _check_base(base) -> None:
    if check_real("base", base) <= 1:
        raise ValueError(f"base must be a finite number > 1, got {base!r}")


def _js(P: torch.Tensor, Q: torch.Tensor, base: float) -> torch.Tensor:
    """JS distance between probability vectors (last dimension), ``0 log 0 = 0``."""
    M = (P + Q) / 2
    safe = torch.where(M > 0, M, 1.0)
    jsd = (torch.xlogy(P, P / safe).sum(-1) + torch.xlogy(Q, Q / safe).sum(-1)) / 2
    return torch.sqrt(jsd.clamp(min=0.0, max=math.log(2)) / math.log(base))


def pairwise_js(spectra, *, grid=None, num_grid: int = 1024, base: float = 2.0) -> torch.Tensor:
    """Matrix of :func:`js_distance` between all pairs of spectra.

    Args:
        spectra: a sequence of :class:`Spectrum`, or a ``(n, G)`` tensor of densities on
            ``grid``. Spectra are compared through the exact mass of each one's Gaussian
            mixture (its own ``σ``) in the cells of a common grid spanning all their grids —
            no sampling, so spectra of very different scales stay resolved.
        grid: the common grid (required for a tensor of densities; cell edges for spectra).
        num_grid: cells of the common grid built for a sequence of spectra.
        base: logarithm base, as in :func:`js_distance`.

    Returns:
        ``(n, n)`` symmetric tensor with a zero diagonal.
    """
    _check_base(base)
    if isinstance(spectra, torch.Tensor):
        if grid is None:
            raise ValueError("grid is required when spectra is a tensor of densities")
        if spectra.ndim != 2:
            raise ValueError(f"spectra must have shape (n, G), got {tuple(spectra.shape)}")
        P = _probabilities(spectra, spectrum_grid(grid), "spectra")  # (n, G)
    elif (
        isinstance(spectra, Sequence) and spectra and all(isinstance(s, Spectrum) for s in spectra)
    ):
        if grid is None:
            lo = min(float(s.grid[0]) for s in spectra)
            hi = max(float(s.grid[-1]) for s in spectra)
            cells = check_positive_int("num_grid", num_grid, minimum=1)
            grid = torch.linspace(lo, hi, cells + 1, dtype=torch.float64)
        P = torch.stack([s.cell_masses(grid) for s in spectra])  # (n, G)
        if bool((P.sum(1) <= 0).any()):
            raise ValueError("a spectrum has no mass inside grid; widen the grid")
        P = P / P.sum(1, keepdim=True)
    else:
        raise TypeError("spectra must be a non-empty sequence of Spectrum or an (n, G) tensor")
    D = torch.stack([_js(P[i], P, base) for i in range(P.shape[0])])  # (n, n)
    return ((D + D.T) / 2).fill_diagonal_(0.0)


def union_grid(spectra: Sequence[Spectrum]) -> torch.Tensor:
    """Sorted union of the spectra's own grids: a common grid that resolves each of them."""
    if not (
        isinstance(spectra, Sequence) and spectra and all(isinstance(s, Spectrum) for s in spectra)
    ):
        raise TypeError("spectra must be a non-empty sequence of Spectrum")
    return torch.cat([s.grid.to(torch.float64) for s in spectra]).unique()


def js_zero(D: torch.Tensor) -> float:
    """``JS⁰``: the mean of the off-diagonal entries of a pairwise distance matrix."""
    check_matrix("D", D)
    B = D.shape[0]
    if D.shape[1] != B or B < 2:
        raise ValueError(f"D must be a square matrix with at least 2 rows, got {tuple(D.shape)}")
    return float(D.sum() - D.diagonal().sum()) / (B * (B - 1))
