r"""Chapter 01 helpers: summaries of Hessians too large to keep, and class-block mass from Grams.

Paper Fig. 1 (arXiv 2505.02809) draws the Hessian of a one-hidden-layer net on 128 CIFAR-100
images: ``P = m d + C m = 25 376`` parameters, a 2.6 GB matrix even in float32. What the figure
and the text need from it is small: ``|H|`` pooled to screen resolution, the Frobenius norm of
every block, and the output-layer block ``H_vv``. :func:`summarize_hessian` extracts all of them
in **one pass over row chunks**, so the extra memory is a few hundred MB instead of the copies
that ``abs()``, float64 casts and cumulative sums of the whole matrix would make;
:func:`one_hidden_summary` computes the closed-form Hessian, summarises it and frees it.

For the linear model under cross-entropy, the diagonal-block mass fraction of ``H`` follows from
``N × N`` Gram matrices without forming ``H`` (:func:`ce_class_block_mass`): with
``S_n = diag(p_n) − p_n p_nᵀ`` and ``K_{nn'} = (x_nᵀ x_{n'})²``,

.. math::
    \sum_{c,c'} \|H_{cc'}\|_F^2 = \frac1{N^2}\sum_{n,n'} K_{nn'}\,\langle S_n, S_{n'}\rangle_F,
    \qquad
    \sum_c \|H_{cc}\|_F^2 = \frac1{N^2}\sum_{n,n'} K_{nn'}\sum_c q_{nc} q_{n'c},

where ``q_{nc} = p_{nc}(1 − p_{nc})`` and
``⟨S_n, S_{n'}⟩ = p_n·p_{n'} − Σ_c p_{nc} p_{n'c}² − Σ_c p_{nc}² p_{n'c} + (p_n·p_{n'})²``.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core.blocks import BlockLayout, BlockStats, stats_from_norms
from ..core.checks import check_matrix
from ..core.closed_form import closed_form_hessian
from ..core.gram import output_block_stats_gram
from ..core.models import OneHiddenNet

__all__ = [
    "ce_class_block_mass",
    "ClassBlockMass",
    "HessianSummary",
    "input_correlation",
    "one_hidden_summary",
    "summarize_hessian",
]


@dataclass(frozen=True)
class HessianSummary:
    """What a figure needs from a large Hessian, without the Hessian.

    Attributes:
        layout: the block layout of ``H``.
        image: ``|H|`` pooled to at most ``max_pixels`` per side (NumPy, float64).
        factor: the pooling factor (1 = one pixel per entry).
        pool: ``"max"`` or ``"mean"``.
        norms: ``(B, B)`` float64 Frobenius norms of all blocks.
        kept: copies of the diagonal sub-matrices of the groups asked for, e.g. ``{"V": H_vv}``.
        seconds: time taken to compute ``H`` (0 when it was given).
        title: a short description of the setting.
    """

    layout: BlockLayout
    image: np.ndarray
    factor: int
    pool: str
    norms: torch.Tensor
    kept: dict
    seconds: float = 0.0
    title: str = ""

    @property
    def num_params(self) -> int:
        return self.layout.num_params

    def stats(self, group: str | None = None) -> BlockStats:
        """:class:`~hesslib.BlockStats` of one group's blocks (default: all blocks)."""
        norms = self.norms
        if group is not None:
            start, stop = self.layout.group(group)
            norms = norms[start:stop, start:stop]
        return stats_from_norms(norms)

    def diag_mass(self) -> float:
        """Fraction of ``||H||_F²`` on the diagonal blocks of the whole layout."""
        return float(self.norms.diagonal().pow(2).sum() / self.norms.pow(2).sum())

    def group_norms(self, group: str) -> torch.Tensor:
        """The ``(b, b)`` block norms of one group (e.g. the 8 × 8 neuron-block map)."""
        start, stop = self.layout.group(group)
        return self.norms[start:stop, start:stop]


def _column_block_sums(sq: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    """Row-wise sums of ``sq`` (r, P) over every column block: (r, B) float64.

    Sums run in the dtype of ``sq`` (float32 sums of a few thousand non-negative terms are
    accurate to ~1e-7 relative) and are accumulated across rows in float64 by the caller.
    """
    r = sq.shape[0]
    off = layout.offsets
    parts = []
    for _, start, stop in layout.groups:
        sizes = set(layout.sizes[start:stop])
        c0, c1 = off[start], off[stop]
        if len(sizes) == 1:  # uniform group: one reshape-sum
            s = sizes.pop()
            parts.append(sq[:, c0:c1].reshape(r, stop - start, s).sum(-1))  # (r, blocks)
        else:
            for b in range(start, stop):
                parts.append(sq[:, off[b] : off[b + 1]].sum(-1, keepdim=True))
    return torch.cat(parts, dim=1).to(torch.float64)


def _pool_rows(A: torch.Tensor, factor: int, mode: str) -> torch.Tensor:
    """Pool a chunk ``A`` (r, P) of non-negative values by ``factor`` in both directions.

    Windows at the right and bottom edges are clipped (as ``ceil_mode=True`` pooling does);
    ``mean`` divides by the number of entries actually in each window.
    """
    r, P = A.shape
    rp, cp = -(-r // factor), -(-P // factor)
    if (rp * factor, cp * factor) != (r, P):  # zero padding: leaves max and sums unchanged
        A = torch.nn.functional.pad(A, (0, cp * factor - P, 0, rp * factor - r))
    blocks = A.reshape(rp, factor, cp, factor)  # (rp, f, cp, f)
    if mode == "max":
        return blocks.amax(dim=(1, 3))
    rows = torch.full((rp,), float(factor), dtype=A.dtype, device=A.device)
    cols = torch.full((cp,), float(factor), dtype=A.dtype, device=A.device)
    rows[-1], cols[-1] = r - (rp - 1) * factor, P - (cp - 1) * factor
    return blocks.sum(dim=(1, 3)) / (rows[:, None] * cols[None, :])


def summarize_hessian(
    H: torch.Tensor,
    layout: BlockLayout,
    *,
    keep: tuple[str, ...] = (),
    max_pixels: int = 800,
    pool: str = "max",
    chunk_rows: int = 1024,
    title: str = "",
    seconds: float = 0.0,
) -> HessianSummary:
    """Pooled ``|H|``, all block norms and chosen diagonal sub-matrices, in one chunked pass.

    The results equal :func:`hesslib.core.pool_abs` and :func:`hesslib.block_norms` (up to
    float32 summation order when ``H`` is float32), but the extra memory is about
    ``2 × chunk_rows × P`` entries instead of several copies of ``H``.

    Args:
        H: square matrix ``(P, P)``.
        layout: its block layout.
        keep: groups whose diagonal sub-matrix ``H[g, g]`` is copied into the summary.
        max_pixels: pool the image to at most this many pixels per side.
        pool: ``"max"`` or ``"mean"`` absolute-value pooling.
        chunk_rows: rows per chunk (rounded to a multiple of the pooling factor).
        title: description of the setting, kept for figure titles.
        seconds: time it took to compute ``H``, kept for the record.

    Returns:
        A :class:`HessianSummary`.
    """
    if not isinstance(H, torch.Tensor) or H.ndim != 2 or not H.is_floating_point():
        raise TypeError("H must be a 2-D floating torch.Tensor")
    P = layout.num_params
    if H.shape != (P, P):
        raise ValueError(f"H must have shape ({P}, {P}) to match the layout, got {tuple(H.shape)}")
    if pool not in ("max", "mean"):
        raise ValueError(f"pool must be 'max' or 'mean', got {pool!r}")
    factor = max(1, math.ceil(P / max_pixels))
    step = max(factor, (chunk_rows // factor) * factor)
    B = layout.num_blocks
    owner = torch.repeat_interleave(
        torch.arange(B, device=H.device), torch.tensor(layout.sizes, device=H.device)
    )  # (P,)
    sq_norms = torch.zeros(B, B, dtype=torch.float64, device=H.device)
    rows_img = []
    for r0 in range(0, P, step):
        chunk = H[r0 : r0 + step]  # (r, P) view
        sq = chunk * chunk  # (r, P)
        if pool == "max":  # max |h| = sqrt(max h²): no separate abs() pass
            rows_img.append(_pool_rows(sq, factor, "max").sqrt() if factor > 1 else sq.sqrt())
        else:
            rows_img.append(_pool_rows(chunk.abs(), factor, "mean"))
        sq_norms.index_add_(0, owner[r0 : r0 + step], _column_block_sums(sq, layout))
        del sq
    if not bool(torch.isfinite(sq_norms).all()):  # NaN/inf anywhere in H reaches its block
        raise ValueError("H contains non-finite values (NaN or inf)")
    image = torch.cat(rows_img).to(torch.float64).cpu().numpy()
    kept = {g: H[layout.param_slice(g), layout.param_slice(g)].clone() for g in keep}
    return HessianSummary(layout, image, factor, pool, sq_norms.sqrt(), kept, seconds, title)


def one_hidden_summary(
    net: OneHiddenNet,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "ce",
    keep: tuple[str, ...] = ("V",),
    max_pixels: int = 800,
    title: str = "",
    max_bytes: int | None = None,
) -> HessianSummary:
    """Closed-form Hessian of a one-hidden-layer net, summarised, then freed.

    Use a float32 ``net`` and ``X`` for Fig. 1 (``P = 25 376``: 2.6 GB instead of 5.2 GB).

    Args:
        net: the network (its dtype/device must be those of ``X``).
        X: inputs ``(N, d)``.
        y: labels ``(N,)``.
        loss: ``"ce"`` or ``"mse"``.
        keep: diagonal sub-matrices to keep (default the output layer ``H_vv``).
        max_pixels: pooled image size.
        title: description for figure titles.
        max_bytes: memory budget for the dense Hessian (see :func:`hesslib.core.check_memory`).

    Returns:
        A :class:`HessianSummary` whose ``seconds`` is the time of the closed form.
    """
    t0 = time.perf_counter()
    H = closed_form_hessian(net, X, y, loss=loss, max_bytes=max_bytes)
    seconds = time.perf_counter() - t0
    try:
        return summarize_hessian(
            H, net.layout(), keep=keep, max_pixels=max_pixels, title=title, seconds=seconds
        )
    finally:
        del H
        gc.collect()


@dataclass(frozen=True)
class ClassBlockMass:
    """Diagonal mass and RMS ratio of the ``C`` class blocks of a CE Hessian.

    Attributes:
        diag_mass: ``Σ_c ||H_cc||² / Σ_{c,c'} ||H_cc'||²``.
        rms_ratio: ``sqrt(mean_{c≠c'} ||H_cc'||²) / sqrt(mean_c ||H_cc||²)``.
        num_classes: ``C``.
    """

    diag_mass: float
    rms_ratio: float
    num_classes: int


def ce_class_block_mass(A: torch.Tensor, logits: torch.Tensor) -> ClassBlockMass:
    r"""Class-block statistics of ``H = (1/N) Σ_n S_n ⊗ a_n a_nᵀ`` (CE) from Gram matrices.

    This is the Hessian of the linear model ``f(x) = V x`` (``A = X``) and the output-layer
    block ``H_vv`` of the one-hidden-layer net (``A = relu(X Wᵀ)``). The cost is
    ``O(N² (k + C))`` instead of the ``(C k)²`` entries of ``H``, so ``C`` can be in the
    thousands. See the module docstring for the formulas.

    Args:
        A: features ``(N, k)``.
        logits: ``(N, C)``; ``S_n = diag(p_n) − p_n p_nᵀ`` with ``p_n = softmax``.

    Returns:
        A :class:`ClassBlockMass`.
    """
    check_matrix("A", A)
    check_matrix("logits", logits)
    if logits.shape[0] != A.shape[0] or logits.shape[1] < 2:
        raise ValueError(
            f"logits must be (N, C >= 2) with N = {A.shape[0]}, got {tuple(logits.shape)}"
        )
    p = torch.softmax(logits.to(torch.float64), dim=1)  # (N, C)
    stats = output_block_stats_gram(A, p)  # the same Gram sums as the LM-head section of ch. 06
    return ClassBlockMass(stats.diag_mass, stats.rms_ratio, stats.num_classes)


def input_correlation(X: torch.Tensor) -> float:
    """Mean absolute correlation between two distinct input coordinates of ``X`` ``(N, d)``.

    About ``sqrt(2 / (π N))`` for white noise (sampling noise alone); far larger for images,
    whose neighbouring pixels move together. Constant coordinates are left out.
    """
    check_matrix("X", X)
    Z = X.to(torch.float64)
    Z = Z - Z.mean(0)
    std = Z.pow(2).mean(0).sqrt()  # (d,)
    Z = Z[:, std > 0] / std[std > 0]  # (N, d') standardised columns
    R = (Z.T @ Z / Z.shape[0]).abs()  # (d', d')
    d = R.shape[0]
    if d < 2:
        raise ValueError("X needs at least two non-constant columns")
    return float((R.sum() - R.diagonal().sum()) / (d * (d - 1)))
