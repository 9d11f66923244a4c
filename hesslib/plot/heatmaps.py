"""Figures of the book: ``|H|`` heatmaps with block grids, block-norm maps, ratio-vs-C plots.

Imported as ``hl.plot``. Every function draws on a given ``ax`` (or a new one) and returns it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import Normalize

from ..core.blocks import BlockLayout, pool_abs
from ..core.checks import check_matrix, check_record, check_shape, check_type

if TYPE_CHECKING:  # only read for annotations: a figure needs no chapter code
    from ..chapters.observations import HessianSummary

__all__ = [
    "block_norm_map",
    "coupling_map",
    "heatmap",
    "hessian_summary",
]


def heatmap(
    H: torch.Tensor,
    layout: BlockLayout | None = None,
    *,
    ax: plt.Axes | None = None,
    clip: float = 1 / 100,
    max_pixels: int = 800,
    pool: str = "max",
    cmap: str = "viridis",
    grid_color: str = "white",
    grid: str = "groups_and_blocks",
    title: str | None = None,
    colorbar: bool = True,
) -> plt.Axes:
    """Draw ``|H|`` with the colour scale clipped at ``clip × max|H|`` and block grid lines.

    Args:
        H: square matrix ``(P, P)``.
        layout: block layout; grid lines at block boundaries (thicker at group boundaries).
        ax: axes to draw on.
        clip: fraction of the maximum at which the colour scale saturates (the paper used
            max/100 … max/300).
        max_pixels: pool to at most this many pixels per side; the pooling is stated in the
            x-label.
        pool: ``"max"`` or ``"mean"`` absolute-value pooling.
        cmap: colormap.
        grid_color: colour of block grid lines.
        grid: ``"groups_and_blocks"``, ``"groups"`` or ``"none"``.
        title: axes title (chapters use figure captions instead; titles name the setting).
        colorbar: add a colour bar.
    """
    _check_square("H", H)
    if layout is not None:
        check_type("layout", layout, BlockLayout, "a BlockLayout or None")
        check_shape("H", H, (layout.num_params, layout.num_params), "to match layout")
    _check_clip(clip)
    ax = ax or plt.subplots(figsize=(4.2, 3.6))[1]
    img, factor = pool_abs(H, max_pixels=max_pixels, mode=pool)
    vmax = float(img.max()) * clip or 1.0
    im = ax.imshow(img, cmap=cmap, norm=Normalize(0, vmax), interpolation="nearest")
    if layout is not None and grid != "none":
        _draw_grid(ax, layout, factor, grid_color, grid)
    ax.set_xticks([])
    ax.set_yticks([])
    pooled = f", {pool}-pooled {factor}×{factor}" if factor > 1 else ""
    ax.set_xlabel(f"|H|, P = {H.shape[0]}, clipped at max/{1 / clip:.0f}{pooled}", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def _draw_grid(ax, layout: BlockLayout, factor: int, color: str, grid: str) -> None:
    off = layout.offsets
    group_edges = {off[start] for _, start, _ in layout.groups[1:]}
    n_lines = len(off) - 2
    thin = 0.3 if n_lines > 60 else 0.6
    for i, pos in enumerate(off[1:-1], start=1):
        is_group = pos in group_edges
        if not is_group and (grid == "groups" or n_lines > 600):
            continue
        x = pos / factor - 0.5
        lw = 1.4 if is_group else thin
        ax.axhline(x, color=color, lw=lw, alpha=0.8 if is_group else 0.5)
        ax.axvline(x, color=color, lw=lw, alpha=0.8 if is_group else 0.5)


def block_norm_map(
    norms: torch.Tensor,
    *,
    ax: plt.Axes | None = None,
    labels: list[str] | None = None,
    log: bool = False,
    annotate: bool | None = None,
    title: str | None = None,
) -> plt.Axes:
    """Heatmap (seaborn) of a matrix of block Frobenius norms.

    Args:
        norms: ``(B, B)`` block norms (e.g. from :func:`hesslib.block_norms`).
        ax: axes to draw on.
        labels: tick labels (default: block indices).
        log: log10 colour scale.
        annotate: write the values in the cells (default: when ``B <= 10``).
        title: axes title.
    """
    import seaborn as sns

    _check_square("norms", norms)
    ax = ax or plt.subplots(figsize=(4, 3.4))[1]
    M = norms.detach().to(torch.float64).cpu().numpy()
    B = M.shape[0]
    annotate = B <= 10 if annotate is None else annotate
    data = np.log10(np.maximum(M, M.max() * 1e-12)) if log else M
    sns.heatmap(
        data,
        ax=ax,
        cmap="magma",
        square=True,
        annot=annotate,
        fmt=".2g",
        cbar_kws={"label": "log10 ‖H_ij‖_F" if log else "‖H_ij‖_F"},
        xticklabels=labels if labels is not None else "auto",
        yticklabels=labels if labels is not None else "auto",
        annot_kws={"size": 7},
    )
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def coupling_map(
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

    _check_square("rho", rho)
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


def hessian_summary(
    summary: HessianSummary,
    *,
    ax: plt.Axes | None = None,
    clip: float = 1 / 100,
    cmap: str = "viridis",
    min_block_pixels: int = 4,
    title: str | None = None,
    colorbar: bool = True,
) -> plt.Axes:
    """Draw a summary's pooled ``|H|`` as :func:`hesslib.plot.heatmap` draws a full matrix.

    Grid lines mark group boundaries (thick) and the blocks of groups whose blocks are at least
    ``min_block_pixels`` pixels wide (thin); smaller blocks would only paint the image white.

    Args:
        summary: from :func:`summarize_hessian`.
        ax: axes to draw on.
        clip: the colour scale saturates at ``clip × max|H|``.
        cmap: colormap.
        min_block_pixels: draw block lines of a group only if its blocks are this wide.
        title: axes title (default: the summary's).
        colorbar: add a colour bar.
    """
    fields = ("image", "factor", "layout", "pool", "num_params", "title")
    check_record("summary", summary, fields, "a HessianSummary")
    _check_clip(clip)
    ax = ax or plt.subplots(figsize=(4.2, 3.6))[1]
    img, factor, layout = summary.image, summary.factor, summary.layout
    im = ax.imshow(
        img, cmap=cmap, norm=Normalize(0, float(img.max()) * clip or 1.0), interpolation="nearest"
    )
    off = layout.offsets
    for gi, (_, start, stop) in enumerate(layout.groups):
        if gi > 0:
            x = off[start] / factor - 0.5
            ax.axhline(x, color="white", lw=1.4, alpha=0.8)
            ax.axvline(x, color="white", lw=1.4, alpha=0.8)
        if min(layout.sizes[start:stop]) / factor >= min_block_pixels:
            for b in range(start + 1, stop):
                x = off[b] / factor - 0.5
                ax.axhline(x, color="white", lw=0.5, alpha=0.5)
                ax.axvline(x, color="white", lw=0.5, alpha=0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    pooled = f", {summary.pool}-pooled {factor}×{factor}" if factor > 1 else ""
    ax.set_xlabel(
        f"|H|, P = {summary.num_params}, clipped at max/{1 / clip:.0f}{pooled}", fontsize=8
    )
    if title or summary.title:
        ax.set_title(title or summary.title, fontsize=9)
    if colorbar:
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def _check_square(name: str, A: object) -> None:
    """Raise unless ``A`` is a finite float32/float64 square matrix."""
    check_matrix(name, A)
    check_shape(name, A, ("P", A.shape[0]), "(square)")


def _check_clip(clip: object) -> None:
    """Raise unless ``clip`` is a real number in ``(0, 1]``."""
    if isinstance(clip, bool) or not isinstance(clip, int | float):
        raise TypeError(f"clip must be a number in (0, 1], got {clip!r}")
    if not 0 < clip <= 1:
        raise ValueError(f"clip must be in (0, 1], got {clip!r}")


def _short(v: float) -> str:
    """Two decimals without the leading zero (``.37``, ``1.0``); blank below 0.01."""
    if v < 0.01:
        return ""
    return f"{v:.2f}".removeprefix("0") if v < 1 else f"{v:.1f}"
