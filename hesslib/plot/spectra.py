"""Spectra on the page: eigenvalue histograms with a density on top, blockwise SLQ densities,
the matrix of JS distances between blocks (chapters 05 and 06)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ..core.checks import as_finite_float64, check_positive_int, check_record

if TYPE_CHECKING:  # only read for annotations: a figure needs no chapter code
    from ..spectral.blockwise import BlockwiseSpectra


__all__ = [
    "block_spectra",
    "js_heatmap",
    "spectrum_histogram",
]

_BLOCKWISE = ("names", "spectra", "js", "js0")  # what the figures read of a BlockwiseSpectra


def block_spectra(
    result: BlockwiseSpectra, *, ax=None, select=None, floor: float = 1e-6, title: str | None = None
):
    """Blockwise densities overlaid: log density against a symmetric-log eigenvalue axis.

    Args:
        result: the spectra.
        ax: axes.
        select: names of the blocks to draw (default all).
        floor: densities are drawn down to ``floor × max`` of each curve.
        title: axes title.
    """
    import matplotlib.pyplot as plt

    check_record("result", result, _BLOCKWISE, "a BlockwiseSpectra")
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    names = result.names if select is None else tuple(select)
    scale = max(max(abs(float(s.grid[0])), abs(float(s.grid[-1]))) for s in result.spectra)
    for name in names:
        s = result.spectra[result.names.index(name)]
        dens = s.density.clamp(min=float(s.density.max()) * floor)
        ax.plot(s.grid.numpy(), dens.numpy(), lw=1.1, label=name)
    linthresh = scale * 1e-3
    ax.set_xscale("symlog", linthresh=linthresh)
    decades = [
        10.0**k
        for k in range(math.ceil(math.log10(linthresh)) + 1, math.floor(math.log10(scale)) + 1)
    ]
    ax.set_xticks([-d for d in reversed(decades)] + [0.0] + decades)
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue (symmetric log scale)")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def js_heatmap(result: BlockwiseSpectra, *, ax=None, title: str | None = None):
    """Heatmap of the pairwise JS distances (fixed colour scale ``[0, 1]``)."""
    import matplotlib.pyplot as plt

    check_record("result", result, _BLOCKWISE, "a BlockwiseSpectra")
    ax = ax or plt.subplots(figsize=(4.5, 4))[1]
    im = ax.imshow(result.js.numpy(), vmin=0, vmax=1, cmap="magma")
    ticks = range(len(result.names))
    ax.set_xticks(ticks, result.names, rotation=90, fontsize=7)
    ax.set_yticks(ticks, result.names, fontsize=7)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="JS distance")
    ax.set_title(title or f"JS⁰ = {result.js0:.3f}", fontsize=9)
    return ax


def spectrum_histogram(
    ax,
    eigs: torch.Tensor,
    *,
    grid: torch.Tensor | None = None,
    density: torch.Tensor | None = None,
    bins: int = 80,
    atom_tol: float | None = None,
    label: str = "eigenvalues",
    curve_label: str = "limit density",
    color: str = "tab:blue",
    curve_color: str = "tab:red",
):
    """Eigenvalue histogram (density scale) with an optional limit density on top.

    With ``atom_tol`` eigenvalues ``|μ| ≤ atom_tol`` are left out of the histogram (whose bars
    then integrate to the remaining fraction) and drawn as a bar at 0 of their mass.
    """
    e = as_finite_float64("eigs", eigs).reshape(-1)
    if e.numel() == 0:
        raise ValueError("eigs must not be empty")
    check_positive_int("bins", bins)
    bulk = e if atom_tol is None else e[e.abs() > atom_tol]
    weights = torch.full_like(bulk, 1.0 / e.numel())
    counts, edges = torch.histogram(bulk, bins=bins, weight=weights)
    width = edges[1:] - edges[:-1]
    ax.bar(edges[:-1], counts / width, width=width, align="edge", color=color, alpha=0.45,
           label=label)  # fmt: skip
    if atom_tol is not None and bulk.numel() < e.numel():
        mass = 1 - bulk.numel() / e.numel()
        ax.annotate(f"atom at 0, mass {mass:.3f}", xy=(0, 0), xytext=(0.1, 0.9),
                    textcoords="axes fraction", arrowprops={"arrowstyle": "->"})  # fmt: skip
        ax.axvline(0, color=color, lw=3)
    if density is not None:
        ax.plot(grid, density, color=curve_color, lw=1.5, label=curve_label)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    return ax
