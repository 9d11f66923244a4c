"""Plotting helpers: pooling keeps the maxima, grids follow the layout, bad options fail."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import hesslib as hl  # noqa: E402


def test_pool_abs_max_and_mean():
    H = torch.zeros(10, 10)
    H[3, 7] = -5.0
    img, factor = hl.core.pool_abs(H, max_pixels=5, mode="max")
    assert factor == 2 and img.shape == (5, 5)
    assert img[1, 3] == 5.0 and img.sum() == 5.0
    img, _ = hl.core.pool_abs(H, max_pixels=5, mode="mean")
    assert img[1, 3] == pytest.approx(5.0 / 4)
    img, factor = hl.core.pool_abs(H, max_pixels=100)
    assert factor == 1 and img[3, 7] == 5.0
    with pytest.raises(ValueError, match="mode must be"):
        hl.core.pool_abs(H, mode="median")


def test_heatmap_draws_grid_and_states_pooling():
    lay = hl.BlockLayout.uniform([("W", 4, 25), ("V", 10, 4)])
    H = torch.randn(lay.num_params, lay.num_params)
    ax = hl.plot.heatmap(H, lay, max_pixels=50, clip=1 / 100)
    assert "max-pooled 3×3" in ax.get_xlabel() and "max/100" in ax.get_xlabel()
    assert len(ax.lines) == 2 * (lay.num_blocks - 1)
    ax = hl.plot.heatmap(H, lay, grid="groups")
    assert len(ax.lines) == 2
    with pytest.raises(ValueError, match="clip must be in"):
        hl.plot.heatmap(H, lay, clip=0)
    plt.close("all")


def test_block_norm_map_and_ratio_plot():
    ax = hl.plot.block_norm_map(torch.rand(4, 4) + 0.1, log=True, title="t")
    assert ax.get_title() == "t"
    ax = hl.plot.ratio_vs_c(
        [2, 10, 100], [0.5, 0.1, 0.01], label="x", band=([0.4, 0.09, 0.009], [0.6, 0.11, 0.011])
    )
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    plt.close("all")
