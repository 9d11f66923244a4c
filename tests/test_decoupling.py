"""Chapter 05 library: random-matrix samplers, coupled/decoupled Hessian blocks, the swap
coupling and its rank bound, the interpolation, the N sweep and the four-case second moments."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

import hesslib as hl

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _one_thread():
    """Small eigenproblems: one intra-op thread (a second one only adds contention)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _X(N, d, seed):
    return torch.randn(N, d, generator=hl.make_generator(seed), dtype=torch.float64)


def _V(C, d, seed):
    return hl.linear_net(d, C, seed=seed, device="cpu").V.detach()


# ----------------------------------------------------------------------------- blocks
@pytest.mark.parametrize("C", [2, 5])
def test_diagonal_block_matches_closed_form_hessian(C):
    """H_ii = (1/N) Xᵀ diag(p_i(1 − p_i)) X is the (i, i) block of the (autograd-checked)
    closed-form Hessian."""
    X, net = _X(30, 4, seed=C), hl.linear_net(4, C, seed=10 + C, device="cpu")
    y = torch.zeros(30, dtype=torch.long)  # the CE Hessian does not depend on the labels
    H = hl.closed_form_hessian(net, X, y, loss="ce")
    for i in range(C):
        block = H[4 * i : 4 * (i + 1), 4 * i : 4 * (i + 1)]
        torch.testing.assert_close(
            hl.rmt.diagonal_block(X, net.V.detach(), i), block, rtol=1e-12, atol=1e-14
        )
    lam = hl.rmt.ce_diagonal_weights(X, net.V.detach())
    manual = sum(lam[n, 0] * torch.outer(X[n], X[n]) for n in range(30)) / 30
    torch.testing.assert_close(hl.rmt.weighted_gram(X, lam[:, 0]), manual, rtol=1e-12, atol=1e-14)


def test_decoupled_block_uses_the_other_inputs():
    X, Xt, V = _X(50, 6, 1), _X(50, 6, 2), _V(3, 6, 3)
    torch.testing.assert_close(
        hl.rmt.diagonal_block(X, V, 1, decouple_with=X), hl.rmt.diagonal_block(X, V, 1)
    )
    lam_t = hl.rmt.ce_diagonal_weights(Xt, V)[:, 1]
    torch.testing.assert_close(
        hl.rmt.diagonal_block(X, V, 1, decouple_with=Xt), hl.rmt.weighted_gram(X, lam_t)
    )
    assert not torch.allclose(
        hl.rmt.diagonal_block(X, V, 1, decouple_with=Xt), hl.rmt.diagonal_block(X, V, 1)
    )


def test_interpolation_endpoints_and_variance():
    X, Xt = _X(4000, 3, 1), _X(4000, 3, 2)
    torch.testing.assert_close(hl.rmt.interpolate_inputs(X, Xt, 1.0), X)
    torch.testing.assert_close(hl.rmt.interpolate_inputs(X, Xt, 0.0), Xt)
    Xm = hl.rmt.interpolate_inputs(X, Xt, 0.36)
    assert float(Xm.var()) == pytest.approx(1.0, abs=0.05)  # same law as X
    assert float((Xm * X).mean()) == pytest.approx(0.6, abs=0.05)  # correlation √t


def test_swap_projection_geometry_rank_and_bound():
    """x' keeps X's component outside span(V) and takes X̃'s inside; H − H' has rank ≤ 2C and
    |s_H − s_H'| ≤ 2πC/(d Im z) (exercise 3 of the chapter)."""
    N, d, C = 200, 40, 4
    X, Xt, V = _X(N, d, 1), _X(N, d, 2), _V(C, d, 3)
    Xs = hl.rmt.swap_projection(X, Xt, V)
    Q, _ = torch.linalg.qr(V.T)
    P = Q @ Q.T
    torch.testing.assert_close(Xs @ P, Xt @ P, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(Xs - Xs @ P, X - X @ P, rtol=1e-10, atol=1e-10)
    lam = hl.rmt.ce_diagonal_weights(X, V)[:, 0]
    D = hl.rmt.weighted_gram(X, lam) - hl.rmt.weighted_gram(Xs, lam)
    assert int(torch.linalg.matrix_rank(D)) == 2 * C
    z = torch.tensor([0.1 + 0.01j, 0.2 + 0.05j], dtype=torch.complex128)
    e, es = (torch.linalg.eigvalsh(hl.rmt.weighted_gram(A, lam)) for A in (X, Xs))
    diff = (hl.stieltjes_empirical(e, z) - hl.stieltjes_empirical(es, z)).abs()
    assert bool((diff <= hl.rmt.rank_bound(C, d, z)).all())
    assert float(hl.rmt.rank_bound(C, d, 1j)) == pytest.approx(2 * math.pi * C / d)


def test_swapped_block_has_the_law_of_the_decoupled_block():
    """E s_H' = E s_H̃: means over 300 draws agree within 4 standard errors; H differs more."""
    N, d, C = 120, 30, 3
    V = _V(C, d, 0)
    z = torch.tensor([0.15 + 0.05j], dtype=torch.complex128)
    gen = hl.make_generator(5)
    s = {"swap": [], "dec": []}
    for _ in range(300):
        X, Xt = (torch.randn(N, d, generator=gen, dtype=torch.float64) for _ in range(2))
        lam = hl.rmt.ce_diagonal_weights(X, V)[:, 0]
        Hs = hl.rmt.weighted_gram(hl.rmt.swap_projection(X, Xt, V), lam)
        Hd = hl.rmt.diagonal_block(X, V, 0, decouple_with=Xt)
        for key, H in (("swap", Hs), ("dec", Hd)):
            s[key].append(hl.stieltjes_empirical(torch.linalg.eigvalsh(H), z)[0])
    a, b = torch.stack(s["swap"]), torch.stack(s["dec"])
    se = math.sqrt(float(a.real.var() + a.imag.var() + b.real.var() + b.imag.var()) / 300)
    assert float((a.mean() - b.mean()).abs()) < 4 * se


# ----------------------------------------------------------------------------- random matrices
def test_wigner_eigenvalues_follow_the_semicircle():
    e = hl.rmt.wigner_eigenvalues(300, num_samples=4, seed=1)
    assert e.shape == (4, 300)
    assert float((e**2).mean()) == pytest.approx(1 + 1 / 300, abs=0.02)
    grid = torch.linspace(-2.2, 2.2, 401, dtype=torch.float64)
    assert hl.rmt.ks_distance(e, grid, hl.semicircle_density(grid)) < 0.02
    torch.testing.assert_close(e, hl.rmt.wigner_eigenvalues(300, num_samples=4, seed=1))


def test_sample_covariance_atom_and_weights():
    e = hl.rmt.sample_covariance_eigenvalues(120, 60, num_samples=2, seed=0)
    assert int((e.abs() < 1e-9 * e.max()).sum()) == 2 * 60  # rank N: 1 − N/d of the mass at 0
    lam = torch.full((60,), 3.0, dtype=torch.float64)
    e3 = hl.rmt.sample_covariance_eigenvalues(120, 60, num_samples=2, lam=lam, seed=0)
    torch.testing.assert_close(e3, 3 * e)  # same draws, weights scale the spectrum
    with pytest.raises(ValueError, match="lam"):
        hl.rmt.sample_covariance_eigenvalues(10, 20, lam=torch.ones(19, dtype=torch.float64))
    with pytest.raises(ValueError, match="lam"):
        hl.rmt.sample_covariance_eigenvalues(10, 20, lam=torch.full((20,), float("nan")))


def test_gmp_law_from_lambda_quantiles_matches_full_sample():
    lam = hl.rmt.ce_diagonal_weights(_X(6000, 30, 1), _V(5, 30, 2))[:, 0]
    q = hl.rmt.lambda_quantiles(lam, 300)
    assert q.shape == (300,) and float(q.mean()) == pytest.approx(float(lam.mean()), rel=1e-3)
    grid = torch.linspace(0.0, 0.8, 120, dtype=torch.float64)
    full = hl.gmp_density(grid, lam, gamma=0.3).density
    fast = hl.gmp_density(grid, q, gamma=0.3).density
    assert float((full - fast).abs().max()) < 0.02 * float(full.max())
    torch.testing.assert_close(hl.rmt.lambda_quantiles(lam[:10], 300), lam[:10])


def test_ks_distance_values():
    grid = torch.linspace(0, 1, 1001, dtype=torch.float64)
    uniform = torch.ones_like(grid)
    points = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000
    assert hl.rmt.ks_distance(points, grid, uniform) == pytest.approx(0.0005, abs=1e-6)
    assert hl.rmt.ks_distance(points / 2, grid, uniform) == pytest.approx(0.5, abs=1e-3)
    assert hl.rmt.ks_distance(points[::2], grid, uniform) == pytest.approx(0.0015, abs=1e-6)
    with pytest.raises(ValueError, match="grid"):
        hl.rmt.ks_distance(points, grid, uniform[:-1])


def test_draw_spectrum_histogram_mass():
    import matplotlib.pyplot as plt

    e = torch.cat(
        [torch.zeros(30, dtype=torch.float64), torch.linspace(1, 2, 70, dtype=torch.float64)]
    )
    fig, ax = plt.subplots()
    hl.plot.spectrum_histogram(ax, e, bins=10, atom_tol=1e-12)
    area = sum(p.get_height() * p.get_width() for p in ax.patches)
    assert area == pytest.approx(0.7)  # the bars carry the non-atomic mass
    plt.close(fig)


# ----------------------------------------------------------------------------- experiments
def test_block_spectra_follow_the_gmp_law():
    blk = hl.rmt.block_spectra(800, 200, 5, num_samples=2, num_ref=5000, seed=3)
    assert blk.coupled.shape == blk.decoupled.shape == (2, 200) and blk.gamma == 0.25
    grid = torch.linspace(0, 1.2 * float(blk.coupled.max()), 300, dtype=torch.float64)
    law = hl.gmp_density(grid, hl.rmt.lambda_quantiles(blk.lam, 500), gamma=blk.gamma)
    for e in (blk.coupled, blk.decoupled):
        assert hl.rmt.ks_distance(e, grid, law.density) < 0.05
        m2 = float((e**2).mean())
        assert m2 == pytest.approx(hl.second_moment_prediction(blk.lam, gamma=0.25), rel=0.05)


def test_stieltjes_along_t_is_flat_and_near_gmp():
    curve = hl.rmt.stieltjes_along_t(
        400, 100, 5, ts=[0.0, 0.5, 1.0], zeta=[1 + 0.5j], num_samples=6, seed=1
    )
    assert curve.mean.shape == curve.sem.shape == (3, 1)
    assert float(((curve.mean - curve.gmp).abs() / curve.gmp.abs()).max()) < 0.03
    assert 0.1 < curve.scale < 0.16  # E p(1 − p) < (1/C)(1 − 1/C) by Jensen, C = 5


def test_decoupling_gap_shapes_bound_and_estimators():
    gap = hl.rmt.decoupling_gap([100, 200], gamma=0.25, C=4, zeta=[1 + 1j, 1 + 0.5j],
                            num_samples=[12, 6], num_ref=4000, seed=2)  # fmt: skip
    assert gap.ds.tolist() == [25, 50] and [S.shape for S in gap.swap] == [(12, 2), (6, 2)]
    assert bool((gap.bound_ratio <= 1).all()) and bool((gap.bound_ratio > 0).all())
    mean, se = gap.gap("swap")
    mean_n, se_n = gap.gap("naive")
    rms, rms_se = gap.pathwise_rms()
    assert mean.shape == se.shape == rms.shape == (2, 2)
    assert bool((se < se_n).all())  # the coupling is the low-variance estimator
    assert bool((rms > mean).all())  # one draw's difference exceeds the mean difference
    with pytest.raises(ValueError, match="2C"):
        hl.rmt.decoupling_gap([40], gamma=0.25, C=10, zeta=[1j], num_samples=4)
    with pytest.raises(ValueError, match="num_samples"):
        hl.rmt.decoupling_gap([100, 200], gamma=0.25, C=4, zeta=[1j], num_samples=[4])
    with pytest.raises(ValueError, match="estimator"):
        gap.gap("other")
    with pytest.raises(ValueError, match="zeta"):
        hl.rmt.decoupling_gap([100], gamma=0.25, C=4, zeta=[1.0 + 0j], num_samples=4)


def test_loglog_fit_recovers_power_laws():
    x = np.array([100.0, 200, 400, 800, 1600])
    exact = hl.core.loglog_fit(x, 3 * x**-0.75, 0.01 * 3 * x**-0.75)
    assert exact.slope == pytest.approx(-0.75, abs=1e-10) and math.exp(
        exact.intercept
    ) == pytest.approx(3)
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(200):
        y = x**-1.0 * np.exp(0.1 * rng.standard_normal(5))
        fit = hl.core.loglog_fit(x, y, 0.1 * y)
        hits += fit.contains(-1.0)
    assert 0.85 < hits / 200 <= 1.0  # the 95 % interval covers the truth about 95 % of the time
    with pytest.raises(ValueError, match="positive"):
        hl.core.loglog_fit(x, -x, x)
    with pytest.raises(ValueError, match="length"):
        hl.core.loglog_fit(x[:2], x[:2], x[:2])


def test_second_moment_cases_against_chapter_04():
    rows = hl.chapters.random_matrices.second_moment_cases([8], N=400, d=40, num_draws=2, seed=1)
    by = {(r.case, r.layer): r for r in rows}
    assert sorted(by) == [(1, "vv"), (2, "vv"), (3, "vv"), (3, "ww"), (4, "vv"), (4, "ww")]
    assert by[1, "vv"].off == (0.0, 0.0, 0.0) and by[3, "vv"].ratio == (0.0, 0.0, 0.0)
    assert by[1, "vv"].diag[2] == pytest.approx(1 + 40 / 400)  # γ E[1] + 1 with γ = d/N
    for key in ((2, "vv"), (3, "ww"), (4, "ww")):
        meas, dec, pred = by[key].ratio
        assert meas == pytest.approx(pred, rel=0.1) and dec == pytest.approx(pred, rel=0.1)
    assert by[4, "vv"].ratio[1] == pytest.approx(by[4, "vv"].ratio[2], rel=0.1)
    assert by[4, "vv"].size == 8 and by[4, "ww"].size == 40


def test_bad_input_raises_naming_the_argument():
    X, V = _X(10, 4, 0), _V(3, 4, 1)
    with pytest.raises(ValueError, match="t must"):
        hl.rmt.interpolate_inputs(X, X, 1.5)
    with pytest.raises(ValueError, match="X_tilde"):
        hl.rmt.interpolate_inputs(X, X[:5], 0.5)
    with pytest.raises(ValueError, match="V must"):
        hl.rmt.ce_diagonal_weights(X, _V(3, 5, 1))
    with pytest.raises(ValueError, match="decouple_with"):
        hl.rmt.diagonal_block(X, V, 0, decouple_with=X[:5])
    with pytest.raises(ValueError, match="i must"):
        hl.rmt.diagonal_block(X, V, 3)
    with pytest.raises(ValueError, match="lam"):
        hl.rmt.weighted_gram(X, torch.ones(9, dtype=torch.float64))
    with pytest.raises(TypeError, match="n must"):
        hl.rmt.wigner_eigenvalues(2.5)
    with pytest.raises(ValueError, match="num_classes"):
        hl.rmt.block_spectra(100, 20, 1, num_samples=1)
