r"""Top-k eigenpairs of a symmetric operator known only through ``matvec``, with a residual check.

Sharpness (the largest Hessian eigenvalue) and the outliers of a spectrum need eigen*vectors*
and a convergence certificate, which the Ritz values of SLQ do not give. The method here is
block Krylov with thick restarts, written as a block Davidson iteration without
preconditioner: the basis :math:`Q` and its image :math:`HQ` are kept; each iteration solves
the Rayleigh–Ritz problem :math:`Q^\top H Q\, y = \theta y`, takes the residuals
:math:`r_i = H x_i - \theta_i x_i` of the wanted Ritz pairs that have not converged, orthogonalises
them against :math:`Q` (twice, classical Gram–Schmidt) and appends them — the same subspace as
block Lanczos in exact arithmetic (Saad, *Numerical Methods for Large Eigenvalue Problems*,
2011, §8.3 and §11.2), but with explicit residuals and no loss of orthogonality to manage.
When the basis reaches ``max_basis`` it restarts from the ``k + block`` best Ritz vectors
(thick restart: :math:`Q \leftarrow Q Y`, :math:`HQ \leftarrow HQ\, Y`, no new products).

Each iteration costs one ``matvec`` on a ``(dim, b)`` block, so an operator that applies
several directions at once (:func:`hesslib.hvp`) pays one pass per iteration. A pair is
converged when :math:`\|H x_i - \theta_i x_i\| \le \mathrm{tol}\cdot \max_j |\theta_j|`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..core.checks import check_callable, check_dtype, check_positive_int

__all__ = ["Eigenpairs", "top_eigenpairs"]

_WHICH = ("largest", "smallest", "magnitude")


@dataclass(frozen=True, eq=False)
class Eigenpairs:
    """Ritz pairs of a symmetric operator with their residuals.

    Attributes:
        eigenvalues: ``(k,)``, ordered as requested (largest first for ``"largest"``).
        eigenvectors: ``(dim, k)``, orthonormal columns.
        residual_norms: ``‖H x_i − θ_i x_i‖``, ``(k,)``.
        converged: ``residual_norms ≤ tol · scale``, ``(k,)`` bool.
        scale: the spectral scale the tolerance is relative to (largest ``|θ|`` seen).
        tol: the relative tolerance.
        num_matvecs: columns passed through ``matvec`` in total.
        num_iterations: Rayleigh–Ritz steps taken.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residual_norms: torch.Tensor
    converged: torch.Tensor
    scale: float
    tol: float
    num_matvecs: int
    num_iterations: int

    @property
    def all_converged(self) -> bool:
        """Every requested pair met the tolerance."""
        return bool(self.converged.all())


def _order(theta: torch.Tensor, which: str) -> torch.Tensor:
    key = {"largest": -theta, "smallest": theta, "magnitude": -theta.abs()}[which]
    return torch.argsort(key, stable=True)


def _orthonormal_block(D: torch.Tensor, Q: torch.Tensor, gen) -> torch.Tensor:
    """Columns of ``D`` orthonormalised against ``Q`` and each other; directions that vanish
    (already in the span) are replaced by random ones, so the block never shrinks to zero."""
    for _ in range(2):  # classical Gram-Schmidt, twice
        D = D - Q @ (Q.T @ D)
    norms = D.norm(dim=0)
    scale = norms.max().clamp_min(torch.finfo(D.dtype).tiny)
    D = D[:, norms > 1e-10 * scale]
    if D.shape[1] == 0:
        D = torch.randn(Q.shape[0], 1, generator=gen, dtype=Q.dtype, device="cpu").to(Q.device)
        D = D - Q @ (Q.T @ D)
        D = D - Q @ (Q.T @ D)
    Qd, R = torch.linalg.qr(D)
    keep = R.diagonal().abs() > 1e-10 * R.diagonal().abs().max()
    return Qd[:, keep]


def _check(dim, k, which, block_size, max_basis, tol):
    check_positive_int("dim", dim)
    check_positive_int("k", k)
    if k > dim:
        raise ValueError(f"k must be <= dim = {dim}, got {k}")
    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}, got {which!r}")
    b = check_positive_int("block_size", block_size) if block_size is not None else k
    M = max_basis if max_basis is not None else max(4 * (k + b), 24)
    check_positive_int("max_basis", M)
    if M < k + b and M < dim:
        raise ValueError(f"max_basis must be >= k + block_size = {k + b}, got {M}")
    if not (isinstance(tol, float | int) and 0 < tol < 1):
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    return b, min(M, dim)


def top_eigenpairs(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    k: int = 1,
    *,
    which: str = "largest",
    block_size: int | None = None,
    max_basis: int | None = None,
    tol: float = 1e-8,
    max_matvecs: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> Eigenpairs:
    r"""The ``k`` extreme eigenpairs of a symmetric operator, with residual norms.

    Args:
        matvec: ``V ↦ H V`` for a block ``V`` of shape ``(dim, b)`` (e.g.
            ``lambda V: hl.hvp(f, theta, V)``); the same interface as
            :func:`hesslib.lanczos`.
        dim: dimension of ``H``.
        k: number of eigenpairs.
        which: ``"largest"`` (algebraic; sharpness), ``"smallest"`` or ``"magnitude"``.
        block_size: directions added per iteration (default ``k``).
        max_basis: basis size at which the iteration restarts (default
            ``max(4 (k + block_size), 24)``, at most ``dim``).
        tol: relative residual tolerance (mind the operator's precision: about ``1e-6`` for
            float32 HVPs).
        max_matvecs: budget of columns through ``matvec`` (default ``max(50 k, 20 ·
            max_basis)``); the result says which pairs converged within it.
        seed: seed of the random start block.
        dtype: working dtype (float64 by default; ``matvec``'s output is cast to it).
        device: where the vectors live (default CPU).

    Returns:
        An :class:`Eigenpairs`.

    Raises:
        ValueError: ``k > dim``, an unknown ``which``, or invalid sizes/tolerance.
    """
    check_callable("matvec", matvec, "a callable V -> H V on (dim, b) blocks")
    b, M = _check(dim, k, which, block_size, max_basis, tol)
    check_positive_int("seed", seed, minimum=0)
    check_dtype("dtype", dtype)
    budget = max_matvecs if max_matvecs is not None else max(50 * k, 20 * M)
    check_positive_int("max_matvecs", budget)
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(dim, min(b, dim), generator=gen, dtype=dtype).to(device or "cpu")
    Q = torch.linalg.qr(start)[0]  # (dim, b)

    def apply(V: torch.Tensor) -> torch.Tensor:
        out = matvec(V)
        if not isinstance(out, torch.Tensor) or out.shape != V.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"matvec must map (dim, b) to (dim, b), got {got}")
        return out.to(dtype=dtype, device=Q.device)

    HQ, used, it, scale = apply(Q), Q.shape[1], 0, 0.0
    while True:
        it += 1
        T = Q.T @ HQ
        theta, Y = torch.linalg.eigh(0.5 * (T + T.T))
        order = _order(theta, which)
        theta, Y = theta[order], Y[:, order]
        scale = max(scale, float(theta.abs().max()))
        X, HX = Q @ Y[:, :k], HQ @ Y[:, :k]
        R = HX - X * theta[:k]
        res = R.norm(dim=0)
        conv = res <= tol * max(scale, torch.finfo(dtype).tiny)
        if bool(conv.all()) or used >= budget or Q.shape[1] >= dim:
            break
        D = R[:, ~conv][:, :b]
        if Q.shape[1] + D.shape[1] > M:  # thick restart to the best Ritz vectors
            keep = min(Q.shape[1], M - D.shape[1], k + b)
            Q, HQ = Q @ Y[:, :keep], HQ @ Y[:, :keep]
        D = _orthonormal_block(D[:, : max(1, min(D.shape[1], budget - used))], Q, gen)
        Q, HQ = torch.cat([Q, D], dim=1), torch.cat([HQ, apply(D)], dim=1)
        used += D.shape[1]
    return Eigenpairs(theta[:k], X, res, conv, scale, float(tol), used, it)
