"""Block-diagonal quadratics and the optimisers of chapter 06 (float64, seeded)."""

from __future__ import annotations

import math

import pytest
import torch

import hesslib as hl


def test_block_quadratic_structure():
    q = hl.train.block_quadratic([[1.0, 2.0], [5.0, 7.0, 9.0]], names=["a", "b"], seed=3)
    assert q.dim == 5 and q.layout.names == ("a", "b")
    assert torch.allclose(q.H, q.H.T, atol=0)
    assert float(q.H[:2, 2:].abs().max()) == 0.0  # block-diagonal
    eig = torch.linalg.eigvalsh(q.H)
    assert torch.allclose(
        eig, torch.tensor([1.0, 2.0, 5.0, 7.0, 9.0], dtype=torch.float64), atol=1e-12
    )
    assert q.kappa == 9.0 and q.block_kappas == [2.0, 9.0 / 5.0]
    with pytest.raises(ValueError, match="positive"):
        hl.train.block_quadratic([[1.0, -1.0]])


def test_paper_cases_share_eigenvalues():
    q3, q4 = hl.train.paper_quadratic(3), hl.train.paper_quadratic(4)
    e3, e4 = torch.linalg.eigvalsh(q3.H), torch.linalg.eigvalsh(q4.H)
    assert torch.allclose(e3, e4, atol=1e-9)
    assert q3.kappa == q4.kappa == 2000.0
    assert max(q3.block_kappas) == 3.0 and max(q4.block_kappas) == 1998.0
    with pytest.raises(ValueError, match="case"):
        hl.train.paper_quadratic(1)


def test_gd_and_blockwise_rates():
    q = hl.train.paper_quadratic(3, seed=0)
    gd = hl.train.gd(q, 1500, seed=0)
    bgd = hl.train.blockwise_gd(q, 60, seed=0)
    rate_gd = hl.train.measured_rate(gd.gaps)
    assert rate_gd <= hl.train.predicted_rate(q.kappa) + 1e-4  # worst-case asymptotic rate
    assert rate_gd > 0.99  # ... and GD is slow
    assert hl.train.measured_rate(bgd.gaps) == pytest.approx(0.25, abs=1e-6)  # the {1,2,3} block
    assert float(bgd.gaps[40]) < 1e-20


def test_adam_beta2_one_is_frozen_diagonal_preconditioning():
    # diagonal H: Adam with β2 = 1 multiplies coordinate i by (1 − η λ_i / |g0_i|) each step
    lam = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    q = hl.train.block_quadratic([lam[:1], lam[1:]], seed=0)
    q = hl.train.BlockQuadratic(torch.diag(lam), q.eigenvalues, q.layout)
    w0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    eta, T = 0.3, 7
    run = hl.train.adam_quadratic(q, T, lr=eta, beta2=1.0, w0=w0)
    factor = 1 - eta * lam / (lam * w0).abs()
    wT = w0 * factor**T
    assert float(run.gaps[-1]) == pytest.approx(float(q.loss(wT) / q.loss(w0)), rel=1e-12)


def test_adam_mini_is_blockwise_gd_with_gradient_scaled_steps():
    q = hl.train.paper_quadratic(3, seed=1)
    w0 = torch.randn(q.dim, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    eta, T = 0.2, 25
    run = hl.train.adam_quadratic(q, T, lr=eta, per_block=True, w0=w0)
    g0 = q.H @ w0
    steps = torch.cat(
        [torch.full((3,), eta / float(g0[b : b + 3].pow(2).mean().sqrt())) for b in (0, 3, 6)]
    )
    w = w0.clone()
    for _ in range(T):
        w = w - steps * (q.H @ w)
    assert float(run.gaps[-1]) == pytest.approx(float(q.loss(w) / q.loss(w0)), rel=1e-10)


def test_heterogeneous_versus_homogeneous_ordering():
    lrs = torch.logspace(-4, 0, 13).tolist()
    speed = {}
    for case in (3, 4):
        q = hl.train.paper_quadratic(case, seed=0)
        gd = hl.train.gd(q, 2000)
        adam = hl.train.best_lr(hl.train.adam_quadratic(q, 2000, lr=lrs, beta2=1.0))
        bgd = hl.train.blockwise_gd(q, 2000)
        speed[case] = {
            k: -math.log(hl.train.measured_rate(r.gaps))
            for k, r in (("gd", gd), ("adam", adam), ("bgd", bgd))
        }
    assert speed[3]["adam"] > 10 * speed[3]["gd"] and speed[3]["bgd"] > 100 * speed[3]["gd"]
    assert speed[4]["adam"] < 5 * speed[4]["gd"] and speed[4]["bgd"] < 2 * speed[4]["gd"]


def test_grid_search_and_divergence():
    q = hl.train.paper_quadratic(4)
    runs = hl.train.adam_quadratic(q, 50, lr=[1e-3, 1e-2, 1e3])
    assert len(runs) == 3 and all(isinstance(r, hl.train.OptRun) for r in runs)
    assert math.isinf(runs[2].final)  # diverged: inf, never NaN
    assert hl.train.best_lr(runs).lr in (1e-3, 1e-2)
    gd = hl.train.gd(q, 20, lr=1.0)  # far above 2/L
    assert math.isinf(gd.final) and not bool(torch.isnan(gd.gaps).any())
    with pytest.raises(ValueError, match="lr"):
        hl.train.adam_quadratic(q, 5, lr=[])
    with pytest.raises(ValueError, match="beta2"):
        hl.train.adam_quadratic(q, 5, lr=0.1, beta2=1.5)


def test_rescale_and_quantiles():
    out = hl.train.rescale_spectra(
        [torch.tensor([-1.0, 0.0]), torch.tensor([0.5, 3.0])], lo=1, hi=2000
    )
    assert float(out[0][0]) == 1.0 and float(out[1][-1]) == 2000.0
    assert torch.allclose(out[0][1] - out[0][0], torch.tensor(1999.0 / 4, dtype=torch.float64))
    # quantiles of a (blurred) uniform spectrum on [0, 1]
    nodes = torch.linspace(0, 1, 2001, dtype=torch.float64)[None]
    spec = hl.slq_density((nodes, torch.full_like(nodes, 1 / 2001)), sigma_rel=1e-3, num_grid=4000)
    qs = hl.train.spectrum_quantiles(spec, 10)
    assert torch.allclose(qs, (torch.arange(10, dtype=torch.float64) + 0.5) / 10, atol=5e-3)


def test_measured_rate_of_a_geometric_sequence():
    gaps = 0.9 ** torch.arange(50, dtype=torch.float64)
    assert hl.train.measured_rate(gaps) == pytest.approx(0.9, rel=1e-12)
    with pytest.raises(ValueError, match="3 finite"):
        hl.train.measured_rate(torch.tensor([1.0, 0.0, 0.0]))
    assert hl.train.predicted_rate(3.0) == pytest.approx(0.25)


def _toy_loss():
    A = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    b = torch.randn(6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return lambda t: ((A @ t - b) ** 2).mean() + 0.1 * t.pow(4).sum()


def test_adam_flat_matches_torch_adam():
    loss = _toy_loss()
    theta0 = torch.tensor([0.3, -0.2, 0.5, 1.0], dtype=torch.float64)
    losses, theta, state = hl.train.adam_flat(loss, theta0, lr=0.05, steps=12)
    p = theta0.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=0.05)
    for _ in range(12):
        opt.zero_grad()
        loss(p).backward()
        opt.step()
    assert torch.allclose(theta, p.detach(), atol=1e-12)
    assert state == 8 and float(losses[-1]) == pytest.approx(float(loss(theta)))


def test_adam_flat_per_block_state_and_singletons():
    loss = _toy_loss()
    theta0 = torch.tensor([0.3, -0.2, 0.5, 1.0], dtype=torch.float64)
    singles = hl.BlockLayout.from_named_sizes([(str(i), 1) for i in range(4)])
    a, ta, _ = hl.train.adam_flat(loss, theta0, lr=0.05, steps=10)
    b, tb, sb = hl.train.adam_flat(loss, theta0, lr=0.05, steps=10, layout=singles)
    assert torch.allclose(ta, tb, atol=1e-14)  # one coordinate per block = Adam
    two = hl.BlockLayout.from_named_sizes([("x", 1), ("y", 3)])
    _, _, s2 = hl.train.adam_flat(loss, theta0, lr=0.05, steps=3, layout=two)
    assert s2 == 4 + 2 == hl.train.optimizer_state_numel(two, "adam-mini")
    assert (
        hl.train.optimizer_state_numel(two, "adam") == 8
        and hl.train.optimizer_state_numel(two, "sgd") == 0
    )
    with pytest.raises(ValueError, match="method"):
        hl.train.optimizer_state_numel(two, "lion")
    with pytest.raises(ValueError, match="layout covers"):
        hl.train.adam_flat(
            loss, theta0, lr=0.1, steps=1, layout=hl.BlockLayout.from_named_sizes([("x", 3)])
        )


def test_single_thread_restores_setting():
    n = torch.get_num_threads()
    with hl.core.single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n


def test_adam_flat_with_block_ids_equals_layout():
    loss = _toy_loss()
    theta0 = torch.tensor([0.3, -0.2, 0.5, 1.0], dtype=torch.float64)
    lay = hl.BlockLayout.from_named_sizes([("x", 1), ("y", 3)])
    a, ta, sa = hl.train.adam_flat(loss, theta0, lr=0.05, steps=8, layout=lay)
    b, tb, sb = hl.train.adam_flat(
        loss, theta0, lr=0.05, steps=8, layout=torch.tensor([0, 1, 1, 1])
    )
    assert torch.equal(ta, tb) and sa == sb == 6
    # ids need not be contiguous: swapping the roles of coordinates 0 and 3
    c, tc, _ = hl.train.adam_flat(loss, theta0, lr=0.05, steps=8, layout=torch.tensor([1, 1, 1, 0]))
    assert not torch.equal(tc, ta)
    with pytest.raises(ValueError, match="every id"):
        hl.train.adam_flat(loss, theta0, lr=0.05, steps=1, layout=torch.tensor([0, 2, 2, 2]))
    with pytest.raises(ValueError, match="long tensor"):
        hl.train.adam_flat(loss, theta0, lr=0.05, steps=1, layout=torch.tensor([0.0, 1, 1, 1]))
    assert hl.train.optimizer_state_numel((10, 3), "adam-mini") == 13


# ------------------------------------------------------------------ cases 1-2 from spectra
def _spectrum(lo, hi, n=200):
    eig = torch.linspace(lo, hi, n, dtype=torch.float64)
    return hl.slq_density((eig[None], torch.full((1, n), 1 / n, dtype=torch.float64)))


def test_sample_spectrum_follows_the_density():
    s = _spectrum(-1.0, 3.0)
    x = hl.train.sample_spectrum(s, 4000, seed=1)
    assert bool((x[1:] >= x[:-1]).all()) and x.shape == (4000,)
    assert float(x.mean()) == pytest.approx(1.0, abs=0.05)  # uniform on [-1, 3]
    assert torch.equal(x, hl.train.sample_spectrum(s, 4000, seed=1))  # seeded
    assert not torch.equal(x, hl.train.sample_spectrum(s, 4000, seed=2))
    q = hl.train.spectrum_quantiles(s, 5)
    assert torch.allclose(
        q, torch.tensor([-0.6, 0.2, 1.0, 1.8, 2.6], dtype=torch.float64), atol=0.03
    )


def test_measured_quadratic_shift_and_scale():
    spectra = [_spectrum(-1.0, 1.0), _spectrum(0.0, 0.01), _spectrum(2.0, 3.0)]
    for method in ("sample", "quantiles"):
        q = hl.train.measured_quadratic(spectra, dim=50, names=["a", "b", "c"], method=method)
        assert q.dim == 150 and q.kappa == pytest.approx(2000.0)
        assert q.mu == pytest.approx(1.0) and q.L == pytest.approx(2000.0)
        # one affine map: the narrow block stays narrow, in the middle of [1, 2000]
        assert q.block_kappas[1] < 1.1 and q.block_kappas[2] < 1.5
    with pytest.raises(ValueError, match="method"):
        hl.train.measured_quadratic(spectra, method="histogram")


# ------------------------------------------------------------------ Assumption 1, Theorem 2
def test_adam_constants_are_the_tightest_ones():
    q = hl.train.paper_quadratic(3, seed=1)
    w0 = torch.randn(q.dim, generator=hl.make_generator(5), dtype=torch.float64)
    c = hl.train.adam_constants(q, w0)
    g = (q.H @ w0).abs()
    for b in range(3):
        gl, top = g[3 * b : 3 * b + 3], float(q.eigenvalues[b][-1])
        assert float(c.C1[b]) == pytest.approx(float(gl.min()) / top)
        assert float(c.C2[b]) == pytest.approx(float(gl.max()) / top)
    assert c.r == pytest.approx(float(((c.C2 / c.C1) ** 2).max()))
    assert c.r_proof >= c.r and c.step == float(c.C1.min())
    assert c.complexity() == pytest.approx(c.r * 3.0)
    assert c.rate_bound() == pytest.approx(1 - 1 / (c.r * 3.0))
    with pytest.raises(ValueError, match="Assumption 1"):
        hl.train.adam_constants(q, torch.zeros(q.dim, dtype=torch.float64))


def test_preconditioned_kappas_match_dense_eigenvalues():
    q = hl.train.paper_quadratic(4, seed=2)
    w0 = torch.randn(q.dim, generator=hl.make_generator(0), dtype=torch.float64)
    k = hl.train.preconditioned_kappas(q, w0)
    D = (q.H @ w0).abs()
    for b in range(3):
        sl = slice(3 * b, 3 * b + 3)
        ev = torch.linalg.eigvals(torch.diag(1 / D[sl]) @ q.H[sl, sl]).real.sort().values
        assert float(k[b]) == pytest.approx(float(ev[-1] / ev[0]), rel=1e-9)


@pytest.mark.parametrize("case", [3, 4])
def test_theorem2_bound_holds_at_the_theorems_step(case):
    q = hl.train.paper_quadratic(case, seed=0)
    for s in range(5):
        w0 = torch.randn(q.dim, generator=hl.make_generator(s), dtype=torch.float64)
        check = hl.train.theorem2_check(q, w0, 200)
        assert check.holds_proof and check.worst_ratio < 1
        assert float(check.gaps[-1]) < 1.0


def test_r_trials_case3_is_below_the_papers_two_thirds():
    """003 §3.3: "r ≤ 100 with probability ≥ 2/3" in case 3. With r = max_l (C_l2/C_l1)² and
    three coordinates per block we find about 40 %: the smallest of three |Gaussian| entries
    is below a tenth of the largest too often."""
    t = hl.train.r_trials(lambda s: hl.train.paper_quadratic(3, seed=s), 1000, seed=0)
    assert 0.3 < t.fraction_below(100) < 0.5 < 2 / 3
    assert t.fraction_below(100, proof=True) <= t.fraction_below(100)
    assert t.kappa_factor.shape == (1000, 3) and bool((t.kappa_factor > 0).all())
    assert float(t.kappa_factor.median()) > 1  # the frozen diagonal D usually makes κ worse


def test_quadratic_report():
    q = hl.train.paper_quadratic(3, seed=0)
    rep = hl.train.quadratic_report(q, 300, lrs=[0.01, 0.1, 1.0], seed=0)
    assert set(rep.runs) == {"GD", "blockwise GD", "Adam, β2 = 1", "Adam, β2 = 0.999",
                             "Adam-mini, β2 = 1"}  # fmt: skip
    assert rep.speedup("GD") == pytest.approx(1.0) and rep.speedup("blockwise GD") > 100
    assert rep.predicted[0] == pytest.approx(hl.train.predicted_rate(2000.0))
    assert rep.check.holds_proof
