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
