"""Figures of the book: ``|H|`` heatmaps with block grids, block-norm maps, ratio-vs-C plots.

Imported as ``hl.plot``. Every function draws on a given ``ax`` (or a new one) and returns it.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import Normalize

from .blocks import BlockLayout

__all__ = ["pool_abs", "heatmap", "block_norm_map", "ratio_vs_c"]


def pool_abs(
    H: torch.Tensor, *, max_pixels: int = 800, mode: str = "max"
) -> tuple[np.ndarray, int]:
    """``|H|`` pooled to at most ``max_pixels`` per side (max- or mean-abs pooling).

    A 25 000² Hessian cannot be drawn pixel per entry; pooling keeps isolated large entries
    visible (``max``) or shows local mass (``mean``).

    Returns:
        ``(image, factor)``: the pooled array and the pooling factor (1 = no pooling).
    """
    if mode not in ("max", "mean"):
        raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
    P = H.shape[0]
    factor = max(1, math.ceil(P / max_pixels))
    if factor == 1:
        return H.detach().abs().to(torch.float64).cpu().numpy(), 1
    pool = torch.nn.functional.max_pool2d if mode == "max" else torch.nn.functional.avg_pool2d
    rows = factor * max(1, (64 * 2**20) // (4 * P * factor))  # row panels of ~64 MB, whole tiles
    panels = []
    for r0 in range(0, P, rows):
        panel = H[r0 : r0 + rows].detach().abs().to(torch.float32)  # (rows, P)
        panels.append(pool(panel[None, None], factor, ceil_mode=True)[0, 0])
    img = torch.cat(panels, dim=0)  # (ceil(P / factor), ceil(P / factor))
    return img.to(torch.float64).cpu().numpy(), factor


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
    if not 0 < clip <= 1:
        raise ValueError(f"clip must be in (0, 1], got {clip}")
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


def ratio_vs_c(
    Cs, ratios, *, ax: plt.Axes | None = None, label: str, band=None, marker: str = "o", **kw
) -> plt.Axes:
    """Log-log plot of a block ratio against the number of classes, with an optional band.

    Args:
        Cs: class counts ``(K,)``.
        ratios: mean ratio per C ``(K,)``.
        ax: axes.
        label: legend label.
        band: ``(low, high)`` arrays drawn as a shaded band (e.g. min/max over seeds).
        marker: marker style.
    """
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    (line,) = ax.plot(Cs, ratios, marker=marker, label=label, **kw)
    if band is not None:
        ax.fill_between(Cs, band[0], band[1], color=line.get_color(), alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of classes C")
    ax.set_ylabel("off-diagonal / diagonal block ratio")
    return ax
