"""Random-matrix laws: semicircle, Marchenko–Pastur and the generalised MP law.

Conventions (chapter 05): ``X`` is ``d × N`` with the samples ``x_n`` as columns,
``γ = d / N`` and ``H = (1/N) X Λ Xᵀ = (1/N) Σ_n λ_n x_n x_nᵀ`` is ``d × d``. With the
``N × d`` data matrix of the rest of the book the same matrix reads ``(1/N) Xᵀ Λ X``.

The Stieltjes transform of a probability measure ``μ`` is ``m(z) = ∫ dμ(t) / (t − z)`` for
``Im z > 0``; the density is recovered as ``Im m(x + iε) / π`` for small ``ε > 0``. All inputs
may be tensors, NumPy arrays, lists or scalars; results are CPU ``float64`` / ``complex128``
tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.checks import as_float64, check_complex_upper, check_real
from ..core.gram import sample_second_moment
from ..core.hessian import check_memory

__all__ = [
    "gmp_density",
    "gmp_stieltjes",
    "GMPDensity",
    "marchenko_pastur_atom",
    "marchenko_pastur_density",
    "marchenko_pastur_stieltjes",
    "second_moment_prediction",
    "semicircle_density",
    "stieltjes_empirical",
]

_CHUNK = 2**21  # entries of the (grid × distinct λ) work array per chunk


# ----------------------------------------------------------------------------- input checks
def _real(x, name: str, *, ndim: int | None = None) -> torch.Tensor:
    """Convert to a finite CPU float64 tensor or raise ``ValueError`` naming ``name``.

    Lists and scalars are read in double precision (never rounded to float32 on the way).
    """
    t = as_float64(name, x)
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return t


def _positive(value, name: str) -> float:
    return check_real(name, value, positive=True)


# ----------------------------------------------------------------------------- closed forms
def semicircle_density(x, *, sigma: float = 1.0) -> torch.Tensor:
    r"""Wigner semicircle density on ``[−2σ, 2σ]``.

    .. math:: \rho(x) = \frac{\sqrt{(4\sigma^2 - x^2)_+}}{2\pi\sigma^2}

    the limit of ``W = (G + Gᵀ)/√(2n)`` with ``G_ij ~ N(0, σ²)`` (off-diagonal variance σ²/n).

    Args:
        x: points, any shape.
        sigma: entry scale σ > 0.

    Returns:
        Density at ``x`` (same shape, float64).
    """
    x = _real(x, "x")
    s = _positive(sigma, "sigma")
    return torch.sqrt(torch.clamp(4 * s**2 - x**2, min=0.0)) / (2 * math.pi * s**2)


def marchenko_pastur_atom(ratio: float) -> float:
    """Mass of the Marchenko–Pastur point mass at 0: ``max(0, 1 − 1/ratio)`` (``ratio = d/N``)."""
    r = _positive(ratio, "ratio")
    return max(0.0, 1.0 - 1.0 / r)


def marchenko_pastur_density(x, *, ratio: float, sigma2: float = 1.0) -> torch.Tensor:
    r"""Absolutely continuous part of the Marchenko–Pastur law of ``(1/N) X Xᵀ`` (X: d × N).

    .. math:: \rho(x) = \frac{\sqrt{(b - x)(x - a)}}{2\pi\sigma^2\gamma x}\,1_{[a,b]}(x),
        \quad a, b = \sigma^2 (1 \mp \sqrt{\gamma})^2,\ \gamma = d/N.

    For ``ratio > 1`` this part integrates to ``1/ratio``; the rest is the atom at 0 given by
    :func:`marchenko_pastur_atom` (not included here).

    Args:
        x: points, any shape.
        ratio: ``γ = d / N > 0``.
        sigma2: entry variance σ² > 0.

    Returns:
        Density at ``x`` (same shape, float64; 0 outside ``[a, b]`` and at ``x = 0``).
    """
    x = _real(x, "x")
    g = _positive(ratio, "ratio")
    s2 = _positive(sigma2, "sigma2")
    a, b = s2 * (1 - math.sqrt(g)) ** 2, s2 * (1 + math.sqrt(g)) ** 2
    inside = (x > a) & (x < b) & (x > 0)
    xs = torch.where(inside, x, torch.full_like(x, (a + b) / 2))
    rho = torch.sqrt((b - xs) * (xs - a)) / (2 * math.pi * s2 * g * xs)
    return torch.where(inside, rho, torch.zeros_like(x))


def marchenko_pastur_stieltjes(z, *, ratio: float, sigma2: float = 1.0) -> torch.Tensor:
    r"""Closed-form Stieltjes transform of the MP law (atom included), ``Im z > 0``.

    The root with ``Im m > 0`` of ``γ z m² + (z − σ²(1 − γ)) m + σ² = 0`` (σ² = 1: chapter 05's
    ``γ z m² + (z − 1 + γ) m + 1 = 0``), rescaled as ``m(z) = m_1(z/σ²)/σ²``.
    """
    z = check_complex_upper(z)
    g = _positive(ratio, "ratio")
    s2 = _positive(sigma2, "sigma2")
    w = z / s2
    disc = torch.sqrt((w - 1 + g) ** 2 - 4 * g * w)
    roots = torch.stack([(-(w - 1 + g) + disc) / (2 * g * w), (-(w - 1 + g) - disc) / (2 * g * w)])
    pick = roots[0].imag >= roots[1].imag
    return torch.where(pick, roots[0], roots[1]) / s2


def stieltjes_empirical(eigs, z) -> torch.Tensor:
    r"""Stieltjes transform of empirical spectra, ``s(z) = (1/d) Σ_j 1 / (λ_j − z)``.

    Args:
        eigs: eigenvalues, shape ``(..., d)`` (e.g. ``(num_samples, d)``).
        z: points with ``Im z > 0``, any shape ``Z``.

    Returns:
        complex128 tensor of shape ``(..., *Z)``.
    """
    e = _real(eigs, "eigs")
    if e.ndim == 0 or e.shape[-1] == 0:
        raise ValueError(f"eigs must have a non-empty last dimension, got shape {tuple(e.shape)}")
    z = check_complex_upper(z)
    what = f"the ({e.numel()} x {z.numel()}) resolvent terms"
    check_memory(2 * 16 * e.numel() * z.numel(), what=what, device="cpu")
    zf = z.reshape(-1)  # (Z,)
    s = (1.0 / (e[..., None, :].to(torch.complex128) - zf[:, None])).mean(-1)  # (..., Z)
    return s.reshape(*e.shape[:-1], *z.shape)


def second_moment_prediction(lam, *, gamma: float) -> float:
    r"""Limit of ``(1/d) ‖H‖_F²`` for ``H = (1/N) X Λ Xᵀ``: ``γ E[λ²] + (E λ)²``.

    It is the second moment of the generalised MP law (talk Part III; chapter 05), used to
    predict the block Frobenius norms of chapter 04. This checks its arguments and evaluates
    the library's one implementation of the formula, :func:`hesslib.core.gram.second_moment`.

    Args:
        lam: sample of λ, shape ``(n,)`` (or anything flattenable).
        gamma: ``γ = d / N > 0``.
    """
    lam = _real(lam, "lam").reshape(-1)
    if lam.numel() == 0:
        raise ValueError("lam must be non-empty")
    return float(sample_second_moment(lam, gamma=_positive(gamma, "gamma")))


# ----------------------------------------------------------------------------- generalised MP
@dataclass(frozen=True, eq=False)
class GMPDensity:
    """Generalised Marchenko–Pastur law evaluated on a grid.

    Attributes:
        grid: points ``x``, shape ``(G,)``.
        density: absolutely continuous density at ``x`` (the atom removed), shape ``(G,)``.
        stieltjes: ``m(x + iε)`` (atom included), complex128, shape ``(G,)``.
        atom: mass of the point mass at 0, ``max(0, 1 − P(λ ≠ 0)/γ)``.
        gamma: ``d / N``.
        eps: the height ``ε`` above the real axis.
    """

    grid: torch.Tensor
    density: torch.Tensor
    stieltjes: torch.Tensor
    atom: float
    gamma: float
    eps: float


def _gmp_parts(lam, gamma: float):
    """Distinct λ values and their probabilities (compresses e.g. λ ≡ 1 to one term)."""
    lam = _real(lam, "lam").reshape(-1)
    if lam.numel() == 0:
        raise ValueError("lam must be non-empty")
    vals, counts = torch.unique(lam, return_counts=True)
    prob = counts.to(torch.float64) / lam.numel()
    scale = float(vals.abs().max()) * (1 + math.sqrt(gamma)) ** 2
    return vals.to(torch.complex128), prob.to(torch.complex128), (scale if scale > 0 else 1.0)


def _residual(m, z, vals, prob, gamma):
    """``R(m) = 1/m + z − E[λ/(1+γλm)]`` and ``R'(m)`` (rows: points, columns: distinct λ)."""
    inv = torch.reciprocal(1.0 + m[:, None] * (gamma * vals)[None, :])  # (k, n)
    a = inv @ (vals * prob)
    b = gamma * ((inv * inv) @ (vals * vals * prob))
    return 1.0 / m + z - a, -1.0 / (m * m) + b


def _newton(m, z, vals, prob, gamma, tol, max_iter=50):
    """Damped Newton on ``R(m) = 0``; a step is halved until ``Im m > 0`` and ``|R m|`` drops."""
    m = m.clone()
    r, dr = _residual(m, z, vals, prob, gamma)
    err = (r * m).abs()
    for _ in range(max_iter):
        act = err > tol
        if not bool(act.any()):
            break
        idx = act.nonzero().squeeze(1)
        step = -r[idx] / dr[idx]
        step = torch.where(torch.isfinite(step.real) & torch.isfinite(step.imag), step, 0)
        mi, zi, ei = m[idx], z[idx], err[idx]
        t = torch.ones(idx.numel(), dtype=torch.float64)
        todo = torch.ones(idx.numel(), dtype=torch.bool)
        new_m, new_r, new_dr, new_e = mi.clone(), r[idx].clone(), dr[idx].clone(), ei.clone()
        for _halving in range(40):
            j = todo.nonzero().squeeze(1)
            if j.numel() == 0:
                break
            cand = mi[j] + t[j] * step[j]
            cr, cdr = _residual(cand, zi[j], vals, prob, gamma)
            ce = (cr * cand).abs()
            ok = (cand.imag > 0) & (ce < ei[j]) & torch.isfinite(ce)
            jo = j[ok]
            new_m[jo], new_r[jo], new_dr[jo], new_e[jo] = cand[ok], cr[ok], cdr[ok], ce[ok]
            todo[jo] = False
            t[j[~ok]] *= 0.5
        if bool(todo.all()):  # no point could make progress: leave it to the fixed point
            break
        m, r, dr, err = m.clone(), r.clone(), dr.clone(), err.clone()
        m[idx], r[idx], dr[idx], err[idx] = new_m, new_r, new_dr, new_e
    return m, err


def _fixed_point(m, z, vals, prob, gamma, tol, max_iter=5000, omega=0.5):
    """Damped iteration ``m ← (1−ω) m + ω / (−z + E[λ/(1+γλm)])``; stays in ``Im m > 0``."""
    for _ in range(max_iter):
        inv = torch.reciprocal(1.0 + m[:, None] * (gamma * vals)[None, :])  # (k, n)
        f = 1.0 / (-z + inv @ (vals * prob))
        m_new = (1 - omega) * m + omega * f
        if bool(((m_new - m).abs() <= tol * m.abs()).all()):
            return m_new
        m = m_new
    return m


def _descend(m, x, h_from, h_to, vals, prob, gamma, tol, depth=0):
    """From ``m`` solved at ``x + i·h_from`` to the solution at ``x + i·h_to``; a point whose
    Newton solve fails is retried through the intermediate height ``√(h_from·h_to)``."""
    m_new, err = _newton(m, x + 1j * h_to, vals, prob, gamma, tol)
    bad = err > tol
    if bool(bad.any()) and depth < 16:
        h_mid = torch.sqrt(h_from[bad] * h_to[bad])
        args = (vals, prob, gamma)
        mb, _ = _descend(m[bad], x[bad], h_from[bad], h_mid, *args, 1e-3, depth + 1)
        mb, eb = _descend(mb, x[bad], h_mid, h_to[bad], *args, tol, depth + 1)
        m_new[bad], err[bad] = mb, eb
    return m_new, err


def _solve_chunk(z, vals, prob, gamma, scale, tol):
    """Continuation in ``Im z``: from ``scale`` above the axis down to ``Im z`` (per point)."""
    x, eta = z.real, z.imag
    top, ratio = scale, 0.01  # start height, factor between levels
    levels = max(1, math.ceil(math.log(top / float(eta.min())) / math.log(1 / ratio)) + 1)
    h = torch.clamp(eta, min=top)
    m = -1.0 / (x + 1j * h)  # m(z) ≈ −1/z far from the spectrum
    for j in range(levels):
        last = j == levels - 1
        h_next = eta if last else torch.clamp(eta, min=top * ratio**j)
        m, err = _descend(m, x, h, h_next, vals, prob, gamma, tol if last else 1e-3)
        h = h_next
    bad = err > tol
    if bool(bad.any()):  # rescue: damped fixed point (contracts in C+), then polish
        mb = _fixed_point(m[bad], z[bad], vals, prob, gamma, tol)
        mb, eb = _newton(mb, z[bad], vals, prob, gamma, tol)
        m, err = m.clone(), err.clone()
        m[bad], err[bad] = mb, eb
    if bool((err > 1e-8).any()) or not bool((m.imag > 0).all()):
        raise RuntimeError(
            f"gmp_stieltjes did not converge at {(err > 1e-8).sum().item()} point(s) "
            f"(max relative residual {err.max().item():.2e}); raise eps or coarsen lam"
        )
    return m


def gmp_stieltjes(z, lam, *, gamma: float, tol: float = 1e-12) -> torch.Tensor:
    r"""Stieltjes transform of the generalised Marchenko–Pastur law.

    Solves, for each ``z`` with ``Im z > 0``, the self-consistent equation

    .. math:: m = \frac{1}{-z + \mathbb{E}_\lambda[\lambda / (1 + \gamma\lambda m)]}

    for the branch with ``Im m > 0`` (the unique solution in the upper half-plane), where the
    expectation is over the empirical distribution of ``lam``. With ``λ ≡ 1`` it reduces to the
    MP equation ``γ z m² + (z − 1 + γ) m + 1 = 0``.

    Method: continuation in the height ``Im z``. Start at height ``s = max|λ| (1 + √γ)²``
    (a bound on the spectrum) from ``m = −1/z`` and descend by factors of 100 to the requested
    ``Im z``, solving each level by damped Newton from the previous one (steps halved until
    ``Im m > 0`` and the residual drops). Unlike a sweep along the real axis, this path keeps
    a distance ``Im z`` from the edge branch points, where Newton meets a fold, so it stays
    on the physical branch; the solution in ``C⁺`` is unique (Silverstein & Bai 1995), so
    ``Im m > 0`` plus a small residual certifies it. Points that still fail fall back to a
    damped fixed-point iteration, which maps ``C⁺`` into itself. Vectorised over all points.

    Args:
        z: points in the upper half-plane, any shape.
        lam: sample of λ (the diagonal of Λ), shape ``(n,)``; finite reals.
        gamma: ``γ = d / N > 0``.
        tol: target relative residual ``|m R(m)|``.

    Returns:
        complex128 tensor of the shape of ``z``.

    Raises:
        ValueError: non-finite ``lam``, ``gamma ≤ 0``, ``Im z ≤ 0``.
        RuntimeError: if a point does not converge (never returns NaN).
    """
    g = _positive(gamma, "gamma")
    tol = _positive(tol, "tol")
    z = check_complex_upper(z)
    vals, prob, scale = _gmp_parts(lam, g)
    zf = z.reshape(-1)
    out = torch.empty_like(zf)
    step = max(1, _CHUNK // vals.numel())
    for i in range(0, zf.numel(), step):
        out[i : i + step] = _solve_chunk(zf[i : i + step], vals, prob, g, scale, tol)
    return out.reshape(z.shape)


def gmp_density(x, lam, *, gamma: float, eps: float | None = None) -> GMPDensity:
    r"""Density of the generalised MP law of ``H = (1/N) X Λ Xᵀ`` on a grid.

    ``density(x) = Im m(x + iε)/π − atom · ε / (π (x² + ε²))``: the Stieltjes inversion with the
    Cauchy-smoothed point mass at 0 subtracted, so ``density`` is the absolutely continuous
    part and integrates to ``1 − atom``. The atom is ``max(0, 1 − P(λ ≠ 0)/γ)``: ``H`` has rank
    at most ``#{n: λ_n ≠ 0}``.

    Args:
        x: grid, shape ``(G,)``, real.
        lam: sample of λ, shape ``(n,)``.
        gamma: ``γ = d / N > 0``.
        eps: height above the axis; default ``1e-7 · max|λ| (1 + √γ)²``.

    Returns:
        :class:`GMPDensity`.
    """
    x = _real(x, "x", ndim=1)
    g = _positive(gamma, "gamma")
    vals, prob, scale = _gmp_parts(lam, g)
    e = 1e-7 * scale if eps is None else _positive(eps, "eps")
    m = gmp_stieltjes(x + 1j * e, lam, gamma=g)
    nonzero = float(prob[vals != 0].real.sum())
    atom = max(0.0, 1.0 - nonzero / g)
    dens = m.imag / math.pi - atom * e / (math.pi * (x**2 + e**2))
    return GMPDensity(
        grid=x, density=torch.clamp(dens, min=0.0), stieltjes=m, atom=atom, gamma=g, eps=e
    )
