r"""Block-diagonal quadratics, the test problems of "Why Transformers Need Adam", §3.

``L(w) = ½ wᵀ H w`` (``h = 0``, so ``L* = 0``) with ``H = diag(H_1, …, H_L)``,
``H_l = Q_l Λ_l Q_lᵀ`` and ``Q_l`` Haar-random orthogonal. :func:`paper_quadratic` builds the
paper's cases (heterogeneous or homogeneous block spectra at equal condition number);
:func:`block_quadratic` any spectra, for example quantiles of measured blockwise SLQ spectra
(:func:`spectrum_quantiles`, :func:`rescale_spectra`). The optimisers run on them live in
:mod:`hesslib.train.optim`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from ..core.blocks import BlockLayout
from ..core.checks import as_float64, check_positive_int, check_record
from ..core.device import make_generator

__all__ = [
    "block_quadratic",
    "BlockQuadratic",
    "measured_quadratic",
    "paper_quadratic",
    "rescale_spectra",
    "sample_spectrum",
    "spectrum_quantiles",
]

_SPECTRUM = ("grid", "density")  # what is read of a Spectrum


@dataclass(frozen=True, eq=False)
class BlockQuadratic:
    """``L(w) = ½ wᵀ H w`` with block-diagonal ``H``.

    Attributes:
        H: the dense ``(d, d)`` Hessian.
        eigenvalues: the eigenvalues of each block, ascending, one tensor per block.
        layout: block layout of ``w``.
        name: description for legends.
    """

    H: torch.Tensor
    eigenvalues: tuple[torch.Tensor, ...]
    layout: BlockLayout
    name: str = ""

    @property
    def dim(self) -> int:
        return int(self.H.shape[0])

    @property
    def mu(self) -> float:
        return min(float(e[0]) for e in self.eigenvalues)

    @property
    def L(self) -> float:
        return max(float(e[-1]) for e in self.eigenvalues)

    @property
    def kappa(self) -> float:
        """Condition number of ``H``."""
        return self.L / self.mu

    @property
    def block_kappas(self) -> list[float]:
        """Condition number ``κ_l`` of each block."""
        return [float(e[-1] / e[0]) for e in self.eigenvalues]

    def loss(self, w: torch.Tensor) -> torch.Tensor:
        """``½ wᵀ H w`` for ``w`` of shape ``(d,)`` or a batch ``(d, k)`` (→ ``(k,)``)."""
        return 0.5 * (w * (self.H @ w)).sum(0)

    def grad(self, w: torch.Tensor) -> torch.Tensor:
        return self.H @ w


def _haar(n: int, gen: torch.Generator) -> torch.Tensor:
    """A Haar-random ``(n, n)`` orthogonal matrix (QR of a Gaussian with the sign fix)."""
    Z = torch.randn(n, n, generator=gen, dtype=torch.float64)
    Q, R = torch.linalg.qr(Z)
    return Q * torch.sign(torch.diagonal(R))


def block_quadratic(
    eigenvalues: Sequence, *, names: Sequence[str] | None = None, seed: int = 0, name: str = ""
) -> BlockQuadratic:
    """``H = diag(Q_l Λ_l Q_lᵀ)`` from the eigenvalues of each block (Haar ``Q_l``).

    Args:
        eigenvalues: one 1-D sequence of positive eigenvalues per block.
        names: block names (default ``H_1 … H_L``).
        seed: seed of the rotations.
        name: description.

    Raises:
        ValueError: an empty block or a non-positive/non-finite eigenvalue (``H`` must be
            positive definite for the rates to make sense).
    """
    gen = make_generator(seed)
    eigs = []
    for i, e in enumerate(eigenvalues):
        e = as_float64(f"eigenvalues[{i}]", e).flatten().sort().values
        if e.numel() == 0 or not bool(torch.isfinite(e).all()) or float(e[0]) <= 0:
            raise ValueError(f"eigenvalues[{i}] must be non-empty, finite and positive")
        eigs.append(e)
    blocks = []
    for e in eigs:
        Q = _haar(e.numel(), gen)
        Hl = Q @ torch.diag(e) @ Q.T
        blocks.append(0.5 * (Hl + Hl.T))
    names = list(names) if names is not None else [f"H_{i + 1}" for i in range(len(eigs))]
    layout = BlockLayout.from_named_sizes(
        [(n, e.numel()) for n, e in zip(names, eigs, strict=True)]
    )
    return BlockQuadratic(torch.block_diag(*blocks), tuple(eigs), layout, name)


def paper_quadratic(case: int, *, seed: int = 0) -> BlockQuadratic:
    """Cases 3 and 4 of §3.2: three 3×3 blocks, the same nine eigenvalues, ``κ = 2000``.

    Case 3 (heterogeneous): ``{1,2,3}, {99,100,101}, {1998,1999,2000}``;
    case 4 (homogeneous): ``{1,99,1998}, {2,100,1999}, {3,101,2000}``.
    """
    if case == 3:
        eigs = [[1, 2, 3], [99, 100, 101], [1998, 1999, 2000]]
        return block_quadratic(eigs, seed=seed, name="case 3: heterogeneous (synthetic)")
    if case == 4:
        eigs = [[1, 99, 1998], [2, 100, 1999], [3, 101, 2000]]
        return block_quadratic(eigs, seed=seed, name="case 4: homogeneous (synthetic)")
    raise ValueError(f"case must be 3 or 4 (cases 1 and 2 come from measured spectra), got {case}")


def spectrum_quantiles(spectrum, n: int) -> torch.Tensor:
    """``n`` eigenvalues representing an SLQ density: its quantiles at ``(i − ½)/n``.

    Deterministic, unlike sampling; the quantiles of the blurred density follow its bulk and
    its outliers in proportion to their mass.

    Args:
        spectrum: a :class:`~hesslib.Spectrum` (``grid`` and ``density``).
        n: number of values.

    Returns:
        ``(n,)`` ascending float64 tensor.
    """
    n = check_positive_int("n", n)
    g, cdf = _cdf(spectrum)
    q = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return _inverse_cdf(g, cdf, q)


def _cdf(spectrum) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid and normalised cumulative distribution (trapezoid rule) of a blurred density."""
    check_record("spectrum", spectrum, _SPECTRUM, "a Spectrum")
    g, p = spectrum.grid.to(torch.float64), spectrum.density.to(torch.float64).clamp(min=0)
    cdf = torch.cat(
        [torch.zeros(1, dtype=torch.float64), torch.cumsum((p[1:] + p[:-1]) / 2 * torch.diff(g), 0)]
    )
    if float(cdf[-1]) <= 0:
        raise ValueError("the spectrum's density is zero on its grid")
    return g, cdf / cdf[-1]


def _inverse_cdf(g: torch.Tensor, cdf: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    idx = torch.searchsorted(cdf, q).clamp(1, g.numel() - 1)
    c0, c1 = cdf[idx - 1], cdf[idx]
    t = torch.where(c1 > c0, (q - c0) / (c1 - c0), torch.zeros_like(q))
    return g[idx - 1] + t * (g[idx] - g[idx - 1])


def sample_spectrum(spectrum, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` eigenvalues drawn at random from an SLQ density (inverse-CDF sampling, seeded):
    "we sample d_l numbers according to the spectrum" (§3.2, cases 1 and 2).

    Returns:
        ``(n,)`` ascending float64 tensor.
    """
    n = check_positive_int("n", n)
    g, cdf = _cdf(spectrum)
    q = torch.rand(n, generator=make_generator(seed), dtype=torch.float64)
    return _inverse_cdf(g, cdf, q).sort().values


def rescale_spectra(
    spectra: Sequence, *, lo: float = 1.0, hi: float = 2000.0
) -> list[torch.Tensor]:
    """One affine map ``λ ↦ a λ + b`` (``a > 0``) for all blocks, sending the smallest
    eigenvalue of all to ``lo`` and the largest to ``hi`` ("shifting and proportional scaling",
    §3.2): ``κ = hi / lo`` and the blocks keep their relative positions."""
    vals = [torch.as_tensor(s, dtype=torch.float64).flatten() for s in spectra]
    if not vals or any(v.numel() == 0 for v in vals):
        raise ValueError("spectra must be a non-empty list of non-empty tensors")
    if not (0 < lo < hi):
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")
    vmin = min(float(v.min()) for v in vals)
    vmax = max(float(v.max()) for v in vals)
    if not vmax > vmin:
        raise ValueError("all eigenvalues are equal; nothing to rescale")
    a = (hi - lo) / (vmax - vmin)
    return [lo + a * (v - vmin) for v in vals]


def measured_quadratic(
    spectra: Sequence,
    *,
    dim: int = 100,
    names: Sequence[str] | None = None,
    method: str = "sample",
    seed: int = 0,
    name: str = "",
) -> BlockQuadratic:
    """Cases 1 and 2 of §3.2 from measured block spectra: ``dim`` eigenvalues per block drawn
    from its SLQ density (``method="sample"``, "we sample d_l numbers according to the
    spectrum") or at its quantiles (``"quantiles"``), then one affine map sends all of them
    into ``[1, 2000]`` (:func:`rescale_spectra`) and :func:`block_quadratic` rotates them.

    Args:
        spectra: one :class:`~hesslib.Spectrum` per block.
        dim: eigenvalues per block (the paper: 100).
        names: block names.
        method: ``"sample"`` or ``"quantiles"``.
        seed: seed of the draws and of the rotations.
        name: description.
    """
    if method not in ("sample", "quantiles"):
        raise ValueError(f"method must be 'sample' or 'quantiles', got {method!r}")
    check_positive_int("dim", dim)
    if isinstance(spectra, str) or not isinstance(spectra, Iterable):
        raise TypeError(f"spectra must be a sequence of Spectrum records, got {spectra!r}")
    spectra = list(spectra)
    for i, s in enumerate(spectra):
        check_record(f"spectra[{i}]", s, _SPECTRUM, "a Spectrum")
    eigs = [
        sample_spectrum(s, dim, seed=seed * 1009 + i)
        if method == "sample"
        else spectrum_quantiles(s, dim)
        for i, s in enumerate(spectra)
    ]
    return block_quadratic(rescale_spectra(eigs), names=names, seed=seed, name=name)
