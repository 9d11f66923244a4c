"""Chapter 01 helpers: chunked Hessian summaries and class-block mass from Gram matrices."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import hesslib as hl  # noqa: E402


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("max_pixels", [1000, 20, 7])
@pytest.mark.parametrize("pool", ["max", "mean"])
def test_summary_matches_unchunked_functions(problem, dtype, max_pixels, pool):
    data, net = problem
    X = data.X.to(dtype)
    net = hl.OneHiddenNet(net.W.detach().to(dtype), net.V.detach().to(dtype))
    H = hl.closed_form_hessian(net, X, data.y, loss="ce")
    layout = net.layout()
    s = hl.chapters.observations.summarize_hessian(
        H, layout, keep=("V",), max_pixels=max_pixels, pool=pool, chunk_rows=5
    )
    img, factor = hl.core.pool_abs(H, max_pixels=max_pixels, mode=pool)
    assert s.factor == factor and s.image.shape == img.shape
    np.testing.assert_allclose(s.image, img, rtol=1e-6, atol=1e-7 * img.max())
    ref = hl.block_norms(H, layout)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert torch.allclose(s.norms, ref, rtol=tol, atol=tol * float(ref.max()))
    assert torch.equal(s.kept["V"], H[layout.param_slice("V"), layout.param_slice("V")])
    for g in ("W", "V"):
        if layout.group(g)[1] - layout.group(g)[0] >= 2:
            ref_stats = hl.block_stats(H, layout, group=g)
            assert s.stats(g).diag_mass == pytest.approx(ref_stats.diag_mass, rel=10 * tol)
    assert s.diag_mass() == pytest.approx(hl.diag_mass_fraction(H, layout), rel=10 * tol)


def test_summary_rejects_non_finite_and_bad_shapes():
    layout = hl.BlockLayout.uniform([("A", 2, 3)])
    H = torch.eye(6)
    H[4, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        hl.chapters.observations.summarize_hessian(H, layout)
    with pytest.raises(ValueError, match="shape"):
        hl.chapters.observations.summarize_hessian(torch.eye(5), layout)
    with pytest.raises(ValueError, match="pool"):
        hl.chapters.observations.summarize_hessian(torch.eye(6), layout, pool="median")


def test_one_hidden_summary_and_drawing():
    data = hl.gaussian_data(20, 12, 5, seed=3, dtype=torch.float32, device="cpu")
    net = hl.one_hidden_net(12, 3, 5, seed=4, dtype=torch.float32, device="cpu")
    s = hl.chapters.observations.one_hidden_summary(
        net, data.X, data.y, loss="mse", max_pixels=10, title="t"
    )
    H = hl.closed_form_hessian(net, data.X, data.y, loss="mse")
    assert s.seconds > 0 and s.factor == 6 and s.num_params == 51
    assert s.stats("V").rms_ratio == 0.0  # MSE: class blocks exactly decoupled
    assert torch.allclose(s.group_norms("W"), hl.block_norms(H, net.layout())[:3, :3], rtol=1e-5)
    ax = hl.plot.hessian_summary(s, clip=1 / 10)
    assert "max-pooled 6×6" in ax.get_xlabel() and ax.get_title() == "t"
    plt.close("all")


@pytest.mark.parametrize("shape", [(30, 4, 2), (25, 6, 7), (40, 3, 12)])
def test_ce_class_block_mass_matches_dense(shape):
    N, d, C = shape
    data = hl.gaussian_data(N, d, C, seed=N, device="cpu")
    lin = hl.linear_net(d, C, seed=N + 1, device="cpu")
    H = hl.closed_form_hessian(lin, data.X, data.y, loss="ce")
    dense = hl.block_stats(H, lin.layout())
    gram = hl.chapters.observations.ce_class_block_mass(data.X, lin(data.X).detach())
    assert gram.num_classes == C
    assert gram.diag_mass == pytest.approx(dense.diag_mass, rel=1e-12)
    assert gram.rms_ratio == pytest.approx(dense.rms_ratio, rel=1e-10)
    if C == 2:  # p2 = 1 - p1: the off-diagonal block is minus the diagonal ones
        assert gram.rms_ratio == pytest.approx(1.0, rel=1e-12)
        assert gram.diag_mass == pytest.approx(0.5, rel=1e-12)


def test_ce_class_block_mass_output_layer_of_one_hidden_net(problem):
    data, net = problem
    if net.num_classes < 2 or net.W.shape[0] < 1:
        pytest.skip("needs classes")
    H = hl.closed_form_hessian(net, data.X, data.y, loss="ce")
    dense = hl.block_stats(H, net.layout(), group="V")
    A = torch.relu(data.X @ net.W.detach().T)  # (N, m)
    gram = hl.chapters.observations.ce_class_block_mass(A, net(data.X).detach())
    assert gram.diag_mass == pytest.approx(dense.diag_mass, rel=1e-10)
    assert gram.rms_ratio == pytest.approx(dense.rms_ratio, rel=1e-8)


def test_uniform_probabilities_give_c_minus_one_over_c():
    X = hl.gaussian_data(15, 4, 2, seed=0, device="cpu").X
    for C in (2, 5, 40):
        mass = hl.chapters.observations.ce_class_block_mass(
            X, torch.zeros(15, C, dtype=X.dtype)
        ).diag_mass
        assert mass == pytest.approx((C - 1) / C, rel=1e-12)
    with pytest.raises(ValueError, match="logits"):
        hl.chapters.observations.ce_class_block_mass(X, torch.zeros(14, 3, dtype=X.dtype))


def test_input_correlation():
    white = hl.gaussian_data(400, 50, 2, seed=0, device="cpu").X
    r = hl.chapters.observations.input_correlation(white)
    assert r == pytest.approx((2 / (np.pi * 400)) ** 0.5, rel=0.15)  # sampling noise only
    base = torch.randn(100, 1, generator=hl.make_generator(1), dtype=torch.float64)
    same = torch.cat([base, 2 * base, -base, torch.ones(100, 1, dtype=torch.float64)], dim=1)
    assert hl.chapters.observations.input_correlation(same) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two non-constant"):
        hl.chapters.observations.input_correlation(torch.ones(10, 3, dtype=torch.float64))
