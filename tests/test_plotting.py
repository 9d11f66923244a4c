"""Plotting helpers draw the data they are given: image arrays and extents of heatmaps, x/y data
of lines, heights of bars, histogram counts — not only axis settings.
"""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PolyCollection, QuadMesh  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import hesslib as hl  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _random(P: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(P, P, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _hlines(ax, lw: float | None = None) -> list[float]:
    """y of the horizontal lines (axhline) of ``ax`` (of line width ``lw`` if given)."""
    return [
        float(ln.get_ydata()[0])
        for ln in ax.lines
        if ln.get_ydata()[0] == ln.get_ydata()[1] and lw in (None, ln.get_linewidth())
    ]


def _vlines(ax) -> list[float]:
    return [float(ln.get_xdata()[0]) for ln in ax.lines if ln.get_xdata()[0] == ln.get_xdata()[1]]


def _image(ax, k: int = -1) -> np.ndarray:
    return np.asarray(ax.images[k].get_array(), dtype=float)


def _max_pool(A: np.ndarray, f: int) -> np.ndarray:
    """Max-pooling of ``A >= 0`` in ``f × f`` tiles, the last tiles cut short."""
    n = -(-A.shape[0] // f)
    pad = np.zeros((n * f, n * f))
    pad[: A.shape[0], : A.shape[1]] = A
    return pad.reshape(n, f, n, f).max(axis=(1, 3))


# --------------------------------------------------------------------------------------- pool_abs
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


# ---------------------------------------------------------------------------------------- heatmap
def test_heatmap_unpooled_draws_abs_h_with_clipped_scale_and_block_grid():
    lay = hl.BlockLayout.uniform([("W", 3, 4), ("V", 2, 5)])  # P = 22, offsets 0 4 8 12 17 22
    H = _random(lay.num_params, seed=1)
    ax = hl.plot.heatmap(H, lay, clip=1 / 10)
    img = _image(ax)
    assert img.shape == (22, 22)
    np.testing.assert_array_equal(img, H.abs().numpy())
    assert ax.images[0].get_extent() == pytest.approx((-0.5, 21.5, 21.5, -0.5))
    vmin, vmax = ax.images[0].get_clim()
    assert vmin == 0 and vmax == pytest.approx(float(H.abs().max()) / 10)
    # grid: every inner block boundary, horizontal and vertical, at offset - 1/2
    expected = [o - 0.5 for o in lay.offsets[1:-1]]
    assert sorted(_hlines(ax)) == sorted(_vlines(ax)) == expected
    assert _hlines(ax, lw=1.4) == [12 - 0.5]  # the group boundary W | V
    assert "P = 22" in ax.get_xlabel() and "pooled" not in ax.get_xlabel()
    assert len(ax.figure.axes) == 2  # the image and its colour bar


def test_heatmap_max_pooled_image_keeps_maxima_and_scales_the_grid():
    lay = hl.BlockLayout.uniform([("W", 4, 25), ("V", 10, 4)])  # P = 140
    H = _random(lay.num_params, seed=2)
    ax = hl.plot.heatmap(H, lay, max_pixels=50, clip=1 / 100, colorbar=False)
    assert "max-pooled 3×3" in ax.get_xlabel() and "max/100" in ax.get_xlabel()
    img = _image(ax)
    assert img.shape == (47, 47)  # ceil(140 / 3)
    np.testing.assert_allclose(img, _max_pool(H.abs().numpy(), 3), rtol=1e-6)  # float32 pooling
    assert ax.images[0].get_extent() == pytest.approx((-0.5, 46.5, 46.5, -0.5))
    assert ax.images[0].get_clim()[1] == pytest.approx(img.max() / 100)
    expected = [o / 3 - 0.5 for o in lay.offsets[1:-1]]
    assert _hlines(ax) == pytest.approx(expected) and _vlines(ax) == pytest.approx(expected)
    assert len(ax.figure.axes) == 1
    ax = hl.plot.heatmap(H, lay, grid="groups", colorbar=False)
    assert _hlines(ax) == _vlines(ax) == [100 - 0.5]
    ax = hl.plot.heatmap(H, lay, grid="none", colorbar=False)
    assert not ax.lines
    with pytest.raises(ValueError, match="clip must be in"):
        hl.plot.heatmap(H, lay, clip=0)


def test_heatmap_mean_pooling_and_zero_matrix():
    H = _random(12, seed=3)
    ax = hl.plot.heatmap(H, max_pixels=4, pool="mean", colorbar=False)
    expected = H.abs().numpy().reshape(4, 3, 4, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(_image(ax), expected, rtol=1e-6)
    assert "mean-pooled 3×3" in ax.get_xlabel() and not ax.lines
    ax = hl.plot.heatmap(torch.zeros(5, 5), colorbar=False)  # no division by a zero maximum
    np.testing.assert_array_equal(_image(ax), np.zeros((5, 5)))
    assert ax.images[0].get_clim() == (0, 1.0)


def test_hessian_summary_draws_the_pooled_image():
    lay = hl.BlockLayout.uniform([("W", 2, 8), ("V", 4, 2)])  # P = 24, pooled by 2
    img = np.abs(_random(12, seed=4).numpy())
    summary = hl.chapters.observations.HessianSummary(
        lay, img, 2, "max", torch.ones(6, 6), {}, title="setting"
    )
    ax = hl.plot.hessian_summary(summary, clip=1 / 4, min_block_pixels=4, colorbar=False)
    np.testing.assert_array_equal(_image(ax), img)
    assert ax.images[0].get_clim() == pytest.approx((0, img.max() / 4))
    # the group line at 16 / 2 - 0.5; the W blocks (8 / 2 = 4 pixels wide) get a thin line
    assert sorted(_hlines(ax)) == pytest.approx([4 - 0.5, 8 - 0.5])
    assert ax.get_title() == "setting" and "P = 24" in ax.get_xlabel()


# -------------------------------------------------------------------------------- block norm maps
def test_block_norm_map_draws_the_norms():
    norms = torch.tensor([[4.0, 0.5, 0.0], [0.5, 2.0, 0.25], [0.0, 0.25, 1.0]])
    ax = hl.plot.block_norm_map(norms, labels=["a", "b", "c"], title="t")
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(3, 3), norms.numpy())
    texts = [t.get_text() for t in ax.texts]
    assert texts == [f"{v:.2g}" for v in norms.reshape(-1).tolist()]  # annotated, B <= 10
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_title() == "t"


def test_block_norm_map_log_scale_floors_zeros():
    norms = torch.tensor([[4.0, 0.5, 0.0], [0.5, 2.0, 0.25], [0.0, 0.25, 1.0]])
    ax = hl.plot.block_norm_map(norms, log=True, annotate=False)
    mesh = next(c for c in ax.collections if isinstance(c, QuadMesh))
    expected = np.log10(np.maximum(norms.numpy(), 4.0 * 1e-12))
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(3, 3), expected)
    assert expected.min() == pytest.approx(np.log10(4.0) - 12)
    assert not ax.texts


def test_coupling_map_masks_zeros_and_clips_small_values():
    rho = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 1e-5], [0.5, 1e-5, 1.0]])
    im = hl.plot.coupling_map(rho, labels=["x", "y", "z"], split=2, vmin=1e-3)
    arr = im.get_array()
    np.testing.assert_array_equal(np.ma.getmaskarray(arr), (rho == 0).numpy())
    np.testing.assert_allclose(
        arr.filled(np.nan)[~(rho == 0).numpy()], [1, 0.5, 1, 1e-3, 0.5, 1e-3, 1]
    )
    texts = [t.get_text() for t in im.axes.texts]
    assert texts == ["1.0", "0", ".50", "0", "1.0", "", ".50", "", "1.0"]
    assert _hlines(im.axes) == _vlines(im.axes) == [1.5]


# --------------------------------------------------------------------------------------- curves
def test_ratio_vs_c_draws_the_ratios_and_the_band():
    Cs, ratios = [2, 10, 100], [0.5, 0.1, 0.01]
    low, high = [0.4, 0.09, 0.009], [0.6, 0.11, 0.011]
    ax = hl.plot.ratio_vs_c(Cs, ratios, label="x", band=(low, high), marker="s")
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), Cs)
    np.testing.assert_array_equal(line.get_ydata(), ratios)
    assert line.get_label() == "x" and line.get_marker() == "s"
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    verts = band.get_paths()[0].vertices
    for C, lo, hi in zip(Cs, low, high, strict=True):
        ys = verts[np.isclose(verts[:, 0], C), 1]
        assert ys.min() == pytest.approx(lo) and ys.max() == pytest.approx(hi)
    assert matplotlib.colors.same_color(band.get_facecolor()[0][:3], line.get_color())
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    ax = hl.plot.ratio_vs_c(Cs, ratios, label="no band")
    assert not ax.collections and len(ax.lines) == 1


def test_sweep_draws_measured_mean_band_and_prediction():
    key = sorted(hl.chapters.static_force.SWEEP_KEYS)[0]
    sw = hl.chapters.static_force.ClassSweep(
        Cs=np.array([2, 4, 8]),
        seeds=np.array([0, 1]),
        measured={key: np.array([[1.0, 3.0], [0.5, 1.5], [0.25, 0.75]])},
        predicted={key: np.array([[2.0, 2.0], [1.0, 1.0], [0.5, 0.5]])},
        N=100,
        d=10,
        m=4,
    )
    _, ax = plt.subplots()
    hl.plot.sweep(sw, key, ax=ax, label="V", color="tab:red", compensate=1.0)
    measured, predicted = ax.lines
    np.testing.assert_array_equal(measured.get_xdata(), [2, 4, 8])
    np.testing.assert_allclose(measured.get_ydata(), [4.0, 4.0, 4.0])  # mean · C
    np.testing.assert_allclose(predicted.get_ydata(), [4.0, 4.0, 4.0])
    verts = ax.collections[0].get_paths()[0].vertices
    ys = verts[np.isclose(verts[:, 0], 4), 1]
    assert ys.min() == pytest.approx(2.0) and ys.max() == pytest.approx(6.0)  # min/max · C
    with pytest.raises(ValueError, match="key must be one of"):
        hl.plot.sweep(sw, "nope", ax=ax, label="V", color="k")


# ---------------------------------------------------------------------------------------- spectra
def test_spectrum_histogram_bars_are_the_normalised_counts():
    e = torch.linspace(-1.0, 3.0, 41, dtype=torch.float64) ** 2
    grid = torch.linspace(0, 9, 7)
    dens = torch.exp(-grid)
    _, ax = plt.subplots()
    hl.plot.spectrum_histogram(ax, e, grid=grid, density=dens, bins=8)
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    counts, edges = np.histogram(e.numpy(), bins=8)
    width = np.diff(edges)
    assert len(bars) == 8
    np.testing.assert_allclose([b.get_x() for b in bars], edges[:-1])
    np.testing.assert_allclose([b.get_width() for b in bars], width)
    np.testing.assert_allclose([b.get_height() for b in bars], counts / (41 * width))
    assert sum(b.get_height() * b.get_width() for b in bars) == pytest.approx(1.0)
    (curve,) = ax.lines
    np.testing.assert_allclose(curve.get_xdata(), grid.numpy())
    np.testing.assert_allclose(curve.get_ydata(), dens.numpy())


def test_spectrum_histogram_atom_is_left_out_and_annotated():
    e = torch.cat([torch.zeros(10, dtype=torch.float64), torch.arange(1.0, 31.0)])  # 10 of 40
    _, ax = plt.subplots()
    hl.plot.spectrum_histogram(ax, e, bins=6, atom_tol=1e-12)
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    counts, edges = np.histogram(np.arange(1.0, 31.0), bins=6)
    np.testing.assert_allclose([b.get_x() for b in bars], edges[:-1])
    np.testing.assert_allclose([b.get_height() for b in bars], counts / (40 * np.diff(edges)))
    assert sum(b.get_height() * b.get_width() for b in bars) == pytest.approx(0.75)
    assert [t.get_text() for t in ax.texts] == ["atom at 0, mass 0.250"]
    assert _vlines(ax) == [0.0]


def _spectrum(grid, density) -> hl.Spectrum:
    grid, density = torch.as_tensor(grid), torch.as_tensor(density)
    return hl.Spectrum(
        nodes=grid[None, :2],
        weights=torch.full((1, 2), 0.5, dtype=torch.float64),
        grid=grid,
        density=density,
        density_per_probe=density[None],
        sigma=0.1,
    )


def _blockwise() -> hl.BlockwiseSpectra:
    g1 = torch.linspace(-0.01, 10.0, 50, dtype=torch.float64)
    g2 = torch.linspace(-2.0, 0.5, 30, dtype=torch.float64)
    g3 = torch.linspace(0.0, 1.0, 20, dtype=torch.float64)
    spectra = (
        _spectrum(g1, torch.exp(-g1)),
        _spectrum(g2, torch.exp(-(g2**2))),
        _spectrum(g3, 1.0 + g3),
    )
    js = torch.tensor([[0.0, 0.3, 0.9], [0.3, 0.0, 0.6], [0.9, 0.6, 0.0]], dtype=torch.float64)
    return hl.BlockwiseSpectra(("a", "b", "c"), spectra, js, 0.6, 0.0, 1)


def test_js_heatmap_draws_the_distances_on_a_fixed_scale():
    res = _blockwise()
    ax = hl.plot.js_heatmap(res)
    np.testing.assert_array_equal(_image(ax, 0), res.js.numpy())
    assert ax.images[0].get_clim() == (0, 1)
    assert ax.images[0].get_extent() == pytest.approx((-0.5, 2.5, 2.5, -0.5))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_title() == "JS⁰ = 0.600"
    assert hl.plot.js_heatmap(res, title="GPT").get_title() == "GPT"


def test_block_spectra_draws_each_selected_density_above_its_floor():
    res = _blockwise()
    ax = hl.plot.block_spectra(res, floor=1e-3)
    assert [ln.get_label() for ln in ax.lines] == ["a", "b", "c"]
    for ln, s in zip(ax.lines, res.spectra, strict=True):
        np.testing.assert_allclose(ln.get_xdata(), s.grid.numpy())
        expected = np.maximum(s.density.numpy(), s.density.numpy().max() * 1e-3)
        np.testing.assert_allclose(ln.get_ydata(), expected)
    assert ax.lines[0].get_ydata().min() == pytest.approx(1e-3 * np.exp(0.01))  # floored tail
    assert ax.get_xscale() == "symlog" and ax.get_yscale() == "log"
    ax = hl.plot.block_spectra(res, select=["c", "a"])
    assert [ln.get_label() for ln in ax.lines] == ["c", "a"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), res.spectra[2].density.numpy())


# ------------------------------------------------------------------------------ symbolic patterns
def test_pattern_draws_abs_values_with_annotations_and_block_lines():
    ex = hl.symbolic.talk_example("3")  # W, V in R^{2x2}: P = 8, blocks of 2
    P = ex.num_params
    values = _random(P, seed=5)
    ax = hl.plot.pattern(ex, values, title="H", colorbar=False)
    np.testing.assert_array_equal(_image(ax), values.abs().numpy())
    assert ax.images[0].get_clim()[0] == 0
    assert ax.images[0].get_extent() == pytest.approx((-0.5, P - 0.5, P - 0.5, -0.5))
    assert [t.get_text() for t in ax.texts] == [f"{v:.2g}" for v in values.abs().reshape(-1)]
    expected = [o - 0.5 for o in ex.layout.offsets[1:-1]]
    assert sorted(_hlines(ax)) == sorted(_vlines(ax)) == expected
    group_edge = ex.layout.offsets[ex.layout.group("V")[0]] - 0.5
    assert _hlines(ax, lw=2.0) == [group_edge]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"${lab}$" for lab in ex.labels]
    assert ax.get_title() == "H"
    ax = hl.plot.pattern(ex, values.numpy(), annotate=False, colorbar=False)  # NumPy works too
    np.testing.assert_array_equal(_image(ax), values.abs().numpy()) and not ax.texts


def test_link_matrix_draws_the_predicted_pattern():
    ex = hl.symbolic.talk_example("2-2")
    ax = hl.plot.link_matrix(ex, title="links")
    np.testing.assert_array_equal(_image(ax), hl.symbolic.predicted_pattern(ex))
    assert ax.images[-1].get_clim() == (-0.5, 2.5)
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {
        "no link (exactly 0)",
        "indirect",
        "direct",
    }
    assert not ax.texts


# -------------------------------------------------------------------------------------- snapshots
def test_snapshot_and_deep_snapshot_draw_the_image():
    img = np.abs(_random(6, seed=6).numpy())
    snap = SimpleNamespace(image=img, factor=2, step=3, loss=0.1234)
    ax = hl.plot.snapshot(snap, boundary=8, clip=1 / 2)
    np.testing.assert_array_equal(_image(ax), img)
    assert ax.images[0].get_clim() == pytest.approx((0, img.max() / 2))
    assert _hlines(ax) == _vlines(ax) == [8 / 2 - 0.5]
    assert ax.get_title() == "step 3, loss 0.123"
    deep = SimpleNamespace(image=img, factor=2, step=5, loss=0.5, layer_sizes=(4, 6, 2))
    ax = hl.plot.deep_snapshot(deep, clip=1 / 10)
    np.testing.assert_array_equal(_image(ax), img)
    assert ax.images[0].get_clim() == pytest.approx((0, img.max() / 10))
    assert _hlines(ax) == _vlines(ax) == [4 / 2 - 0.5, 10 / 2 - 0.5]
