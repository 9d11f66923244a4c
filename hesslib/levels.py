r"""Layer blocks and block couplings of one-hidden-layer Hessians (chapter 04, "three levels").

:func:`hidden_layer_hessian` and :func:`output_layer_hessian` form ``H_ww`` alone and a
principal sub-matrix of ``H_vv`` without the full ``(m d + C m)²`` Hessian, so the layers of a
net with many classes can be drawn. :func:`coupling_matrix` turns block norms into scale-free
couplings ``ρ_ij = ‖H_ij‖_F / sqrt(‖H_ii‖_F ‖H_jj‖_F)``, summarised per pair of layers by
:func:`coupling_summary` and drawn by :func:`draw_coupling_map`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._checks import check_loss, check_matrix, check_positive_int
from .blocks import block_norms
from .closed_form import _class_blocks, _fill_hww

__all__ = [
    "CouplingSummary",
    "coupling_matrix",
    "coupling_summary",
    "draw_coupling_map",
    "hidden_layer_hessian",
    "output_layer_hessian",
]


def hidden_layer_hessian(
    X: torch.Tensor,
    W: torch.Tensor,
    V: torch.Tensor,
    *,
    loss: str = "ce",  # noqa: N803
) -> torch.Tensor:
    r"""Dense ``H_ww`` ``(m d, m d)`` alone: ``H_{w_kw_l} = (1/N) Σ_n c^{kl}_n x_n x_nᵀ``.

    ``c^{kl}_n = (Vᵀ S_n V)_{kl} D_{nk} D_{nl}`` (:mod:`hesslib.static`). Cost ``N m² d² / 2``; the
    ``(C m)²`` output block is never formed, so ``C`` can be large.
    """
    check_matrix("X", X)
    check_loss(loss)
    d = X.shape[1]
    m = W.shape[0]
    Z = X @ W.T
    D = (Z > 0).to(X.dtype)
    p = torch.softmax((Z * D) @ V.T, dim=1) if loss == "ce" else None
    H = torch.empty(m * d, m * d, dtype=X.dtype, device=X.device)
    return _fill_hww(X, D, V, p, H)  # the closed form's H_ww, symmetric half computed


def output_layer_hessian(
    X: torch.Tensor,
    W: torch.Tensor,
    V: torch.Tensor,
    *,
    loss: str = "ce",  # noqa: N803
    classes: int | None = None,
) -> torch.Tensor:
    r"""``H_vv`` restricted to the first ``classes`` class blocks (all by default).

    ``H_{v_iv_j} = (1/N) Σ_n S_n[i, j] a_n a_nᵀ`` for ``i, j < classes``: a principal sub-matrix
    of size ``(classes·m)²``, so a 1000-class output layer can be looked at without its
    ``(1000 m)²`` Hessian.
    """
    check_matrix("X", X)
    check_loss(loss)
    m, C = W.shape[0], V.shape[0]
    K = C if classes is None else check_positive_int("classes", classes)
    if K > C:
        raise ValueError(f"classes must be <= C = {C}, got {K}")
    A = torch.relu(X @ W.T)  # (N, m)
    p = torch.softmax(A @ V.T, dim=1)[:, :K] if loss == "ce" else None  # (N, K)
    H = torch.empty(K * m, K * m, dtype=X.dtype, device=X.device)
    return _class_blocks(A, p, K, H)  # the closed form's H_vv on the first K classes


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
