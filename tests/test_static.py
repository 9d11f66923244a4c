"""Chapter 04 library: Gram-identity block ratios, the second-moment prediction, the sweep."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hesslib as hl
from hesslib.core import block_ratios as static
from hesslib.core import gram
from hesslib.core.sweep import point_seed, sweep_classes
from hesslib.rmt.laws import second_moment_prediction


def _data(N, d, seed):
    return hl.gaussian_data(N, d, 3, seed=seed, device="cpu").X


@pytest.mark.parametrize("case", [1, 2, 3, 4])
@pytest.mark.parametrize("C", [2, 5])
def test_block_ratios_match_dense_hessian(case, C):
    """The Gram identities give exactly the block statistics of the dense closed form."""
    X = _data(40, 6, seed=case + C)
    model, loss = hl.case_model(case, 6, C, m=3, seed=7 * case + C, device="cpu")
    y = torch.zeros(40, dtype=torch.long)  # H_vv, H_ww do not depend on the labels
    H = hl.closed_form_hessian(model, X, y, loss=loss)
    layout = model.layout()
    got = hl.block_ratios_at_init(model, X, loss=loss)
    assert got.vv == pytest.approx(hl.block_ratio(H, layout, group="V"), rel=1e-10, abs=1e-14)
    norms = hl.block_norms(H, layout)
    v0, v1 = layout.group("V")
    eye = torch.eye(C, dtype=torch.bool)
    sq = norms[v0:v1, v0:v1] ** 2
    assert got.vv_sq[0] == pytest.approx(float(sq[~eye].mean()), rel=1e-10, abs=1e-18)
    assert got.vv_sq[1] == pytest.approx(float(sq[eye].mean()), rel=1e-10)
    if case >= 3:
        w0, w1 = layout.group("W")
        torch.testing.assert_close(got.ww_sq, norms[w0:w1, w0:w1] ** 2, rtol=1e-10, atol=1e-14)
        assert got.ww == pytest.approx(hl.block_ratio(H, layout, group="W"), rel=1e-10)
    else:
        assert math.isnan(got.ww) and got.ww_sq is None
    if case in (1, 3):
        assert got.vv == 0.0  # exact zeros under MSE


def test_c2_class_ratio_is_one():
    """For C = 2, p_1(1 − p_1) = p_1 p_2: off-diagonal and diagonal class blocks coincide."""
    X = _data(50, 7, seed=3)
    for case in (2, 4):
        model, loss = hl.case_model(case, 7, 2, m=4, seed=case)
        assert hl.block_ratios_at_init(model, X, loss=loss).vv == pytest.approx(1.0, rel=1e-12)


def test_uniform_softmax_gives_one_over_c_minus_one():
    X = _data(30, 4, seed=1)
    model, _ = hl.case_model(2, 4, 9)
    with torch.no_grad():
        model.V.zero_()
    assert hl.block_ratios_at_init(model, X, loss="ce").vv == pytest.approx(1 / 8, rel=1e-12)
    assert hl.chapters.static_force.intuition_ratio([9], block="vv")[0] == pytest.approx(1 / 8)
    assert hl.chapters.static_force.intuition_ratio([16], block="ww")[0] == pytest.approx(0.25)


def test_decoupled_equals_gram_formula_with_other_weights():
    """decouple_with: features from X, weights (softmax, masks) from the other inputs."""
    X, Xt = _data(25, 5, seed=4), _data(25, 5, seed=5)
    model, _ = hl.case_model(4, 5, 6, m=3, seed=2)
    W, V = model.W.detach(), model.V.detach()
    got = hl.block_ratios_at_init(model, X, loss="ce", decouple_with=Xt)
    # direct: H_ww blocks (1/N) Σ c_n x_n x_nᵀ with c from Xt, x from X
    Dt = (Xt @ W.T > 0).double()
    pt = torch.softmax(torch.relu(Xt @ W.T) @ V.T, 1)
    c = static._neuron_weights(Dt, V, pt)  # (N, m, m)
    H = torch.einsum("nkl,na,nb->kalb", c, X, X) / 25  # (m, d, m, d)
    sq = H.pow(2).sum((1, 3))
    torch.testing.assert_close(got.ww_sq, sq, rtol=1e-10, atol=1e-14)
    A = torch.relu(X @ W.T)
    S = torch.diag_embed(pt) - pt[:, :, None] * pt[:, None, :]  # (N, C, C)
    Hvv = torch.einsum("nij,na,nb->iajb", S, A, A) / 25
    sqv = Hvv.pow(2).sum((1, 3))
    eye = torch.eye(6, dtype=torch.bool)
    assert got.vv == pytest.approx(math.sqrt(float(sqv[~eye].mean() / sqv[eye].mean())), rel=1e-10)


def test_batched_second_moment_matches_rmt_reference():
    lam = torch.randn(500, 3, 4, generator=hl.make_generator(0), dtype=torch.float64).exp()
    got = gram.sample_second_moment(lam, gamma=0.3)
    for i in range(3):
        for j in range(4):
            assert float(got[i, j]) == pytest.approx(
                second_moment_prediction(lam[:, i, j], gamma=0.3), rel=1e-12
            )


def test_class_moments_match_per_block_loop():
    """Block-averaged (E λ², (E λ)²) of the class weights equal a per-pair computation."""
    p = torch.softmax(torch.randn(60, 5, generator=hl.make_generator(3), dtype=torch.float64), 1)
    (e2o, m2o), (e2d, m2d) = static._class_moments(p, 5)
    off = [-p[:, i] * p[:, j] for i in range(5) for j in range(5) if i != j]
    diag = [p[:, i] * (1 - p[:, i]) for i in range(5)]
    assert e2o == pytest.approx(np.mean([float((lam**2).mean()) for lam in off]), rel=1e-12)
    assert m2o == pytest.approx(np.mean([float(lam.mean()) ** 2 for lam in off]), rel=1e-12)
    assert e2d == pytest.approx(np.mean([float((lam**2).mean()) for lam in diag]), rel=1e-12)
    assert m2d == pytest.approx(np.mean([float(lam.mean()) ** 2 for lam in diag]), rel=1e-12)
    # the Gram route for C > N' gives the same numbers
    (_, m2o_gram), _ = static._class_moments(p[:4], 5)
    off4 = [p[:4, i] * p[:4, j] for i in range(5) for j in range(5) if i != j]
    assert m2o_gram == pytest.approx(np.mean([float(lam.mean()) ** 2 for lam in off4]), rel=1e-12)


def test_second_moment_expectation_is_exact_for_independent_weights():
    """E‖(1/N) Σ λ x xᵀ‖² = d(d+2)/N E λ² + d(1 − 1/N)(E λ)², checked by Monte Carlo."""
    N, d, reps = 20, 6, 4000
    gen = hl.make_generator(11)
    X = torch.randn(reps, N, d, generator=gen, dtype=torch.float64)
    lam = torch.rand(reps, N, generator=gen, dtype=torch.float64) * 2  # U(0, 2)
    H = torch.einsum("rn,rna,rnb->rab", lam, X, X) / N
    mc = float(H.pow(2).sum((1, 2)).mean())
    exact = d * (d + 2) / N * (4 / 3) + d * (1 - 1 / N) * 1.0
    assert mc == pytest.approx(exact, rel=0.02)


def test_prediction_is_close_for_case2_and_neuron_blocks():
    N, d = 800, 80
    X, Xt = _data(N, d, seed=20), _data(N, d, seed=21)
    lin, _ = hl.case_model(2, d, 64, seed=5)
    r, q = hl.block_ratios_at_init(lin, X, loss="ce"), hl.predicted_block_ratios(lin, Xt, N=N)
    assert q.vv == pytest.approx(r.vv, rel=0.05)
    net, _ = hl.case_model(3, d, 64, seed=6)
    r, q = (
        hl.block_ratios_at_init(net, X, loss="mse"),
        hl.predicted_block_ratios(net, Xt, N=N, loss="mse"),
    )
    assert q.ww == pytest.approx(r.ww, rel=0.1)
    assert q.vv == 0.0 and r.vv == 0.0


def test_sweep_shapes_independence_and_slopes():
    sweep = hl.chapters.static_force.class_sweep(
        [2, 16, 128], [0, 1], N=150, d=15, m=4, device="cpu", progress=False
    )
    assert set(sweep.measured) == set(hl.chapters.static_force.SWEEP_KEYS)
    for key in hl.chapters.static_force.SWEEP_KEYS:
        assert sweep.measured[key].shape == (3, 2) and np.all(sweep.measured[key] > 0)
        assert sweep.relative_error(key).shape == (3,)
    # seeds give independent draws
    assert sweep.measured["case4_ww"][1, 0] != sweep.measured["case4_ww"][1, 1]
    np.testing.assert_allclose(sweep.measured["case2_vv"][0], 1.0, rtol=1e-12)
    fit = hl.fit_slope(sweep.Cs, sweep.measured["case2_vv"], c_min=16)
    assert -1.2 < fit.slope < -0.8
    assert sweep.gamma == pytest.approx(0.1)


def test_one_seed_mixer_for_every_sweep():
    """Sweep points get disjoint seed ranges; the bases are those the book was run with."""
    assert point_seed(2, 16, streams=3) == 3 * (2 * 1_000_003 + 16)
    assert point_seed(5, 400) == 5 * 1_000_003 + 400
    bases = {
        point_seed(s, C, streams=3) + j for s in range(4) for C in range(2, 50) for j in (0, 1, 2)
    }
    assert len(bases) == 4 * 48 * 3
    grid = sweep_classes([2, 7], [0, 3, 1], lambda C, base: (C, base), streams=2)
    assert grid == [[(C, point_seed(s, C, streams=2)) for s in (0, 3, 1)] for C in (2, 7)]


def test_fit_slope_recovers_power_law_and_interval():
    Cs = np.array([4, 8, 16, 32, 64])
    noise = np.exp(np.random.default_rng(0).normal(0, 0.05, (5, 4)))
    fit = hl.fit_slope(Cs, 3 * Cs[:, None] ** -0.5 * noise, c_min=4)
    assert fit.contains(-0.5) and fit.low < fit.slope < fit.high and fit.n == 20
    exact = hl.fit_slope(Cs, 2.0 / Cs, c_min=8)
    assert exact.slope == pytest.approx(-1.0, abs=1e-12) and exact.n == 4
    with pytest.raises(ValueError, match="at least 3 points"):
        hl.fit_slope(Cs, 1 / Cs, c_min=64)
    with pytest.raises(ValueError, match="positive and finite"):
        hl.fit_slope(Cs, -1 / Cs, c_min=2)


def test_layer_hessians_are_sub_blocks_of_the_closed_form():
    X = _data(30, 5, seed=8)
    y = torch.zeros(30, dtype=torch.long)
    for loss in ("ce", "mse"):
        net = hl.one_hidden_net(5, 3, 7, seed=9)
        blocks = hl.closed_form_blocks(net, X, y, loss=loss)
        W, V = net.W.detach(), net.V.detach()
        torch.testing.assert_close(hl.hidden_layer_hessian(X, W, V, loss=loss), blocks.Hww)
        torch.testing.assert_close(hl.output_layer_hessian(X, W, V, loss=loss), blocks.Hvv)
        sub = hl.output_layer_hessian(X, W, V, loss=loss, classes=4)
        torch.testing.assert_close(sub, blocks.Hvv[:12, :12])
    with pytest.raises(ValueError, match="classes must be <= C"):
        hl.output_layer_hessian(X, W, V, classes=8)


def test_coupling_summary_levels():
    X = _data(60, 6, seed=12)
    y = torch.randint(4, (60,), generator=hl.make_generator(1))
    net = hl.one_hidden_net(6, 3, 4, seed=13)
    H = hl.closed_form_hessian(net, X, y, loss="mse")
    s = hl.chapters.static_force.coupling_summary(H, net.layout())
    assert s.vv == 0.0 and s.ww > 0 and s.wv > 0
    torch.testing.assert_close(s.rho.diagonal(), torch.ones(7, dtype=torch.float64))
    with pytest.raises(ValueError, match="non-zero"):
        hl.chapters.static_force.coupling_matrix(torch.zeros(2, 2, dtype=torch.float64))


def test_bad_inputs_raise():
    X = _data(10, 4, seed=0)
    lin = hl.linear_net(4, 3)
    with pytest.raises(ValueError, match="case must be one of"):
        hl.case_model(5, 4, 3)
    with pytest.raises(ValueError, match="loss must be"):
        hl.block_ratios_at_init(lin, X, loss="hinge")
    with pytest.raises(ValueError, match="columns"):
        hl.block_ratios_at_init(lin, _data(10, 5, seed=0))
    with pytest.raises(TypeError, match="LinearNet or OneHiddenNet"):
        hl.block_ratios_at_init(torch.nn.Linear(4, 3).double(), X)
    with pytest.raises(ValueError, match="decouple_with must have"):
        hl.block_ratios_at_init(lin, X, decouple_with=_data(11, 4, seed=1))
    with pytest.raises(ValueError, match="num_classes"):
        hl.chapters.static_force.class_sweep([1, 4], [0], N=10, d=4, progress=False)
    with pytest.raises(ValueError, match="C must be >= 2"):
        hl.chapters.static_force.intuition_ratio([1], block="vv")


def test_dependence_sweep_rows_are_the_library_ratios():
    out = hl.chapters.static_force.dependence_sweep([40, 80], gamma=0.25, C=12, m=3, draws=2)
    assert out["N"].tolist() == [40, 80] and out["d"].tolist() == [10, 20]
    for key in ("measured", "decoupled", "predicted"):
        assert out[key].shape == (2, 2) and np.all(out[key] > 0)
    # the first point, rebuilt by hand with the same seeds
    X, X_ind, X_pred = (hl.gaussian_data(40, 10, 2, seed=k, device="cpu").X for k in range(3))
    net, _ = hl.case_model(4, 10, 12, m=3, seed=3, device="cpu")
    assert out["measured"][0, 0] == pytest.approx(hl.block_ratios_at_init(net, X).vv, rel=1e-12)
    dec = hl.block_ratios_at_init(net, X, decouple_with=X_ind).vv
    assert out["decoupled"][0, 0] == pytest.approx(dec, rel=1e-12)
    pred = hl.predicted_block_ratios(net, X_pred, N=40).vv
    assert out["predicted"][0, 0] == pytest.approx(pred, rel=1e-12)
    with pytest.raises(ValueError, match="num_classes"):
        hl.chapters.static_force.dependence_sweep([40], gamma=0.25, C=1)


def test_case4_class_block_gap_does_not_close_with_size():
    """For fixed m the class blocks converge to E[S_ij a aᵀ]: fitted as a + b/sqrt(N), the gap
    to the decoupled prediction has a non-zero limit a instead of vanishing with the size."""
    out = hl.chapters.static_force.dependence_sweep([500, 2000], gamma=0.1, C=64, draws=2)
    miss = 1 - out["predicted"].mean(1) / out["measured"].mean(1)
    dec = out["decoupled"].mean(1) / out["predicted"].mean(1) - 1
    limit = hl.chapters.static_force.size_limit(out["N"], miss).limit
    assert limit > 0.04 and miss[-1] > limit
    assert np.abs(dec).max() < 0.05


def test_size_limit_recovers_a_known_law():
    Ns = np.array([100, 400, 1600])
    fit = hl.chapters.static_force.size_limit(Ns, 0.2 + 3.0 / np.sqrt(Ns))
    assert fit.limit == pytest.approx(0.2) and fit.coef == pytest.approx(3.0)
    assert fit(10_000) == pytest.approx(0.23)
    with pytest.raises(ValueError, match="two positive sizes"):
        hl.chapters.static_force.size_limit([100], [0.1])
