r"""Block couplings of one-hidden-layer Hessians (chapter 04, "three levels").

The layer blocks themselves come from :func:`hesslib.hidden_layer_hessian` and
:func:`hesslib.output_layer_hessian` (:mod:`hesslib.closed_form`), which form ``H_ww`` alone and
a principal sub-matrix of ``H_vv`` without the full ``(m d + C m)²`` Hessian, so the layers of
a net with many classes can be drawn. :func:`coupling_matrix` turns block norms into scale-free
couplings ``ρ_ij = ‖H_ij‖_F / sqrt(‖H_ii‖_F ‖H_jj‖_F)``, summarised per pair of layers by
:func:`coupling_summary` and drawn by :func:`draw_coupling_map`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._checks import check_matrix
from .blocks import block_norms

__all__ = [
    "CouplingSummary",
    "coupling_matrix",
    "coupling_summary",
    "draw_coupling_map",
]


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


def _short(v: float) -> str:
    """Two decimals without the leading zero (``.37``, ``1.0``); blank below 0.01."""
    if v < 0.01:
        return ""
    return f"{v:.2f}".removeprefix("0") if v < 1 else f"{v:.1f}"


def draw_coupling_map(
    rho: torch.Tensor,
    *,
    ax=None,
    labels: list[str] | None = None,
    split: int | None = None,
    vmin: float = 1e-3,
    title: str | None = None,
):
    """Draw a coupling matrix on a log colour scale: exact zeros white and marked "0",
    values ≥ 0.01 written in the cells.

    Args:
        rho: ``(B, B)`` couplings (from :func:`coupling_matrix`).
        ax: matplotlib axes.
        labels: tick labels.
        split: draw a separating line after this many blocks (e.g. ``m``, between layers).
        vmin: lower end of the colour scale (smaller values get its colour).
        title: axes title.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    ax = ax or plt.subplots(figsize=(3.4, 3.2))[1]
    R = rho.detach().to(torch.float64).cpu().numpy()
    masked = np.ma.masked_where(R == 0, np.clip(R, vmin, None))
    cmap = plt.get_cmap("magma_r").copy()
    cmap.set_bad("white")
    im = ax.imshow(masked, cmap=cmap, norm=LogNorm(vmin=vmin, vmax=1.0))
    B = R.shape[0]
    for i in range(B):
        for j in range(B):
            text = "0" if R[i, j] == 0 else _short(R[i, j])
            dark = R[i, j] > 0.1
            ax.text(
                j, i, text, ha="center", va="center", fontsize=6, color="white" if dark else "black"
            )
    if split is not None:
        for pos in (split - 0.5,):
            ax.axhline(pos, color="tab:blue", lw=1.2)
            ax.axvline(pos, color="tab:blue", lw=1.2)
    ticks = list(range(B))
    ax.set_xticks(ticks, labels or ticks, fontsize=6, rotation=90)
    ax.set_yticks(ticks, labels or ticks, fontsize=6)
    if title:
        ax.set_title(title, fontsize=8)
    return im
