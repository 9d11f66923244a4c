r"""Spectral densities by stochastic Lanczos quadrature (SLQ), and distances between them.

The eigenvalue density ``φ(t) = (1/d) Σ_i δ(t − λ_i)`` blurred by a Gaussian ``g_σ`` equals
``tr g_σ(t − H) / d = E_v[vᵀ g_σ(t − H) v]`` for normalised Rademacher probes ``v``. Each
``vᵀ g_σ(t − H) v`` is replaced by the Gauss quadrature ``Σ_j τ_j g_σ(t − θ_j)`` from
:func:`hesslib.lanczos`, then averaged over probes ("Why Transformers Need Adam",
App. B.2, Alg. 5). The blur ``σ`` is a fixed fraction of the spectral range, so the picture
does not change when ``H`` is rescaled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.checks import as_float64, check_positive_int, check_real
from .krylov import LanczosResult, Matvec, block_lanczos_all, lanczos

__all__ = [
    "block_slq",
    "slq",
    "slq_density",
    "Spectrum",
]


def _gauss_mix(nodes: torch.Tensor, weights: torch.Tensor, grid: torch.Tensor, sigma: float):
    """``Σ_j w_j N(t; θ_j, σ²)`` per row: ``(k, s)``, ``(k, s)``, ``(G,)`` → ``(k, G)``."""
    z = (grid[None, None, :] - nodes[:, :, None]) / sigma  # (k, s, G)
    kern = torch.exp(-0.5 * z * z) / (sigma * math.sqrt(2 * math.pi))
    return torch.einsum("ks,ksg->kg", weights, kern)


@dataclass(frozen=True, eq=False)
class Spectrum:
    """An SLQ spectral density with its quadrature.

    Attributes:
        nodes: Gauss nodes per probe, ``(k, s)``.
        weights: Gauss weights per probe, ``(k, s)`` (rows sum to 1).
        grid: evaluation points, ``(G,)``.
        density: mean over probes of the blurred quadratures, ``(G,)``.
        density_per_probe: one density per probe, ``(k, G)`` (for error bands).
        sigma: Gaussian blur width (absolute units).
    """

    nodes: torch.Tensor
    weights: torch.Tensor
    grid: torch.Tensor
    density: torch.Tensor
    density_per_probe: torch.Tensor
    sigma: float

    @property
    def num_probes(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def density_std(self) -> torch.Tensor:
        """Standard deviation across probes, ``(G,)`` (0 for one probe)."""
        if self.num_probes < 2:
            return torch.zeros_like(self.density)
        return self.density_per_probe.std(0)

    @property
    def density_sem(self) -> torch.Tensor:
        """Standard error of ``density``: ``density_std / √k``, ``(G,)``."""
        return self.density_std / math.sqrt(self.num_probes)

    def evaluate(self, grid) -> torch.Tensor:
        """Mean density at new points ``grid`` (same ``sigma``), ``(G',)``."""
        g = spectrum_grid(grid)
        return _gauss_mix(self.nodes, self.weights, g, self.sigma).mean(0)

    def cell_masses(self, edges) -> torch.Tensor:
        """Mass of the blurred spectrum in each cell ``[e_i, e_{i+1})``, ``(G − 1,)``."""
        e = spectrum_grid(edges)
        z = (e[None, None, :] - self.nodes[:, :, None]) / (self.sigma * math.sqrt(2))
        cdf = 0.5 * torch.erf(z)  # (k, s, G); the constant 1/2 cancels in differences
        return torch.einsum("ks,ksg->g", self.weights, torch.diff(cdf, dim=-1)) / self.num_probes

    def moment(self, order: int) -> float:
        r"""SLQ estimate of ``tr(H^order)/d``: ``mean_p Σ_j τ_pj θ_pj^order`` (exact per probe for
        ``order < 2·lengths``)."""
        order = check_positive_int("order", order, minimum=0)
        return float((self.weights * self.nodes**order).sum(1).mean())


def spectrum_grid(grid, name: str = "grid") -> torch.Tensor:
    """``grid`` as a CPU float64 tensor: 1-D, at least 2 points, finite, strictly increasing."""
    g = as_float64(name, grid)
    if g.ndim != 1 or g.numel() < 2:
        raise ValueError(f"{name} must be 1-D with at least 2 points, got shape {tuple(g.shape)}")
    if not bool(torch.isfinite(g).all()) or not bool((g[1:] > g[:-1]).all()):
        raise ValueError(f"{name} must be finite and strictly increasing")
    return g


def _quadrature(result) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked ``(nodes, weights)``, ``(k, s)`` CPU float64, of a Lanczos result or a pair."""
    if isinstance(result, LanczosResult):
        nodes, weights = result.nodes, result.weights
    elif isinstance(result, (tuple, list)) and len(result) == 2:
        nodes, weights = as_float64("nodes", result[0]), as_float64("weights", result[1])
    else:
        raise TypeError("result must be a LanczosResult or a (nodes, weights) pair")
    nodes = nodes.to(device="cpu", dtype=torch.float64)
    weights = weights.to(device="cpu", dtype=torch.float64)
    if nodes.ndim == 1:
        nodes, weights = nodes[None], weights[None]
    if nodes.shape != weights.shape or nodes.ndim != 2 or nodes.numel() == 0:
        raise ValueError(
            f"nodes and weights must share a non-empty (k, s) shape, got {tuple(nodes.shape)}"
            f" and {tuple(weights.shape)}"
        )
    if not bool(torch.isfinite(nodes).all() & torch.isfinite(weights).all()):
        raise ValueError("nodes and weights must be finite")
    if bool((weights < 0).any()) or not bool((weights.sum(1) > 0).all()):
        raise ValueError("weights must be non-negative with a positive sum per probe")
    return nodes, weights


def slq_density(
    result: LanczosResult | tuple[torch.Tensor, torch.Tensor],
    *,
    grid=None,
    num_grid: int = 512,
    sigma_rel: float = 0.02,
    sigma: float | None = None,
    margin: float = 4.0,
) -> Spectrum:
    r"""Gaussian-blurred SLQ density ``φ(t) = mean_p Σ_j τ_pj g_σ(t − θ_pj)``.

    ``σ = sigma_rel · (θ_max − θ_min)`` over the nodes with positive weight (``sigma_rel ·
    max|θ|``, or ``sigma_rel``, for a one-point spectrum): scale-invariant, the analogue of the
    paper's hand-tuned blur (App. C.1). Choose ``sigma_rel ≳ 1 / num_steps`` — finer features
    than the node spacing are not resolved.

    Args:
        result: a :class:`~hesslib.spectral.LanczosResult`, or a ``(nodes, weights)`` pair of
            ``(k, s)`` tensors.
        grid: evaluation points (increasing). Default: ``num_grid`` points over
            ``[θ_min − margin·σ, θ_max + margin·σ]``.
        num_grid: grid size when ``grid`` is not given.
        sigma_rel: blur width relative to the spectral range.
        sigma: absolute blur width; overrides ``sigma_rel`` (e.g. to blur exact eigenvalues,
            passed as ``(eigs[None], full((1, d), 1/d))``, exactly like an SLQ spectrum).
        margin: grid padding in units of ``σ``.

    Returns:
        :class:`Spectrum` (float64, CPU).
    """
    nodes, weights = _quadrature(result)
    sigma_rel = check_real("sigma_rel", sigma_rel, positive=True)
    margin = check_real("margin", margin, minimum=0.0)
    live = nodes[weights > 0]
    lo, hi = float(live.min()), float(live.max())
    if sigma is None:
        width = hi - lo if hi > lo else max(abs(lo), abs(hi))
        sigma = sigma_rel * (width if width > 0 else 1.0)
    else:
        sigma = check_real("sigma", sigma, positive=True)
    if grid is None:
        num_grid = check_positive_int("num_grid", num_grid, minimum=2)
        if margin == 0 and hi == lo:
            raise ValueError("margin must be > 0 for a one-point spectrum (or pass grid)")
        g = torch.linspace(lo - margin * sigma, hi + margin * sigma, num_grid, dtype=torch.float64)
    else:
        g = spectrum_grid(grid)
    per_probe = _gauss_mix(nodes, weights, g, sigma)  # (k, G)
    return Spectrum(nodes, weights, g, per_probe.mean(0), per_probe, sigma)


def slq(
    matvec: Matvec,
    dim: int,
    *,
    num_steps: int,
    num_probes: int,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    probes: torch.Tensor | None = None,
    grid=None,
    num_grid: int = 512,
    sigma_rel: float = 0.02,
    progress: bool = False,
) -> Spectrum:
    """Stochastic Lanczos quadrature: :func:`~hesslib.lanczos` then :func:`slq_density`.

    All ``num_probes`` probes share one ``matvec`` call per step (``matvec``: ``(dim, k) →
    (dim, k)``). Arguments as in those two functions.
    """
    res = lanczos(
        matvec,
        dim,
        num_steps=num_steps,
        num_probes=num_probes,
        seed=seed,
        generator=generator,
        dtype=dtype,
        device=device,
        probes=probes,
        progress=progress,
    )
    return slq_density(res, grid=grid, num_grid=num_grid, sigma_rel=sigma_rel)


def block_slq(
    matvec_full: Matvec,
    block_slices,
    dim: int,
    *,
    num_steps: int,
    num_probes: int,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    num_grid: int = 512,
    sigma_rel: float = 0.02,
    progress: bool = False,
) -> list[Spectrum]:
    """SLQ spectra of all diagonal blocks ``H_bb`` from ``num_steps`` shared full matvecs.

    See :func:`~hesslib.spectral.block_lanczos_all`; each block gets its own grid and ``σ``.
    """
    results = block_lanczos_all(
        matvec_full,
        block_slices,
        dim,
        num_steps=num_steps,
        num_probes=num_probes,
        seed=seed,
        generator=generator,
        dtype=dtype,
        device=device,
        progress=progress,
    )
    return [slq_density(r, num_grid=num_grid, sigma_rel=sigma_rel) for r in results]
