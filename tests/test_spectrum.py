"""Lanczos, SLQ densities and JS distances (hesslib.lanczos, hesslib.spectrum), float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

import hesslib as hl
from hesslib.spectral import density as sp

# the module, not the function hl.lanczos that hesslib/__init__ re-exports under the same name
from hesslib.spectral import krylov as lz


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sym_with_spectrum(eigs: torch.Tensor, seed: int) -> torch.Tensor:
    """``Q diag(eigs) Qᵀ`` with a Haar-like orthogonal ``Q``."""
    n = eigs.numel()
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=_gen(seed)))
    return (Q * eigs) @ Q.T


def _gram_operator(d: int, N: int, seed: int):
    """``H = (1/N) Xᵀ Λ X`` (X: N × d) as a dense matrix — a GMP-type Hessian block."""
    g = _gen(seed)
    X = torch.randn(N, d, generator=g)
    lam = torch.rand(N, generator=g)
    return X.T @ (lam[:, None] * X) / N


# ----------------------------------------------------------------------------- Lanczos
@pytest.mark.parametrize("num_probes", [1, 3])
def test_lanczos_with_dim_steps_reproduces_eigvalsh(num_probes):
    H = _gram_operator(150, 400, seed=0)
    exact = torch.linalg.eigvalsh(H)
    res = lz.lanczos(lambda V: H @ V, 150, num_steps=150, num_probes=num_probes, seed=1)
    assert res.nodes.shape == (num_probes, 150) and bool((res.lengths == 150).all())
    assert float((res.nodes - exact).abs().max()) <= 1e-8 * float(exact.abs().max())
    assert torch.allclose(res.weights.sum(1), torch.ones(num_probes), atol=1e-13)
    assert bool((res.weights >= 0).all())
    # T = Qᵀ H Q: its trace is the trace of H
    assert float(res.alphas.sum(1)[0]) == pytest.approx(float(H.trace()), rel=1e-10)


def test_lanczos_breakdown_few_distinct_eigenvalues():
    H = _sym_with_spectrum(torch.tensor([1.0, 2.0, 5.0]).repeat(100), seed=2)  # d = 300
    widths = []

    def matvec(V):
        widths.append(V.shape[1])
        return H @ V

    res = lz.lanczos(matvec, 300, num_steps=40, num_probes=4, seed=3)
    assert res.lengths.tolist() == [3, 3, 3, 3]  # the Krylov space is invariant after 3 steps
    assert widths == [4, 4, 4]  # stopped probes leave the block; no matvec after the breakdown
    for t in (res.alphas, res.betas, res.nodes, res.weights):
        assert bool(torch.isfinite(t).all())
    assert torch.allclose(res.nodes[:, :3], torch.tensor([1.0, 2.0, 5.0]).expand(4, 3), atol=1e-10)
    assert bool((res.weights[:, 3:] == 0).all())  # padding: zero weight, last node repeated
    assert torch.equal(res.nodes[:, 3:], res.nodes[:, 2:3].expand(4, 37))
    assert torch.allclose(res.weights.sum(1), torch.ones(4), atol=1e-13)
    assert res.tridiagonal(0).shape == (3, 3)


def test_lanczos_breakdown_at_first_step_and_zero_operator():
    H = torch.diag(torch.arange(1.0, 11.0))
    e3 = torch.zeros(10, 2)
    e3[2, 0] = 1.0  # an eigenvector: breakdown after one step
    e3[:, 1] = 1.0  # a generic start
    res = lz.lanczos(lambda V: H @ V, 10, num_steps=10, probes=e3)
    assert res.lengths.tolist() == [1, 10]
    assert float(res.nodes[0, 0]) == 3.0 and float(res.weights[0, 0]) == 1.0
    zero = lz.lanczos(lambda V: torch.zeros_like(V), 10, num_steps=5, num_probes=2, seed=0)
    assert zero.lengths.tolist() == [1, 1] and bool((zero.nodes == 0).all())


def test_lanczos_probes_are_unit_rademacher_and_seeded():
    seen = []

    def matvec(V):
        seen.append(V.clone())
        return V

    lz.lanczos(matvec, 64, num_steps=1, num_probes=5, seed=7)
    V0 = seen[0]
    assert torch.allclose(V0.abs(), torch.full_like(V0, 1 / 8))  # ±1/√64
    a = lz.lanczos(lambda V: 2 * V, 64, num_steps=1, num_probes=5, seed=7)
    b = lz.lanczos(lambda V: 2 * V, 64, num_steps=1, num_probes=5, generator=_gen(7))
    assert torch.equal(a.alphas, b.alphas)


def test_block_lanczos_all_equals_per_block_lanczos():
    P = 150
    H = _gram_operator(P, 300, seed=4)
    slices = [(0, 40), (40, 100), (100, 150)]
    probes = [torch.randn(b - a, 3, generator=_gen(10 + i)) for i, (a, b) in enumerate(slices)]
    calls = []

    def full(V):
        calls.append(V.shape)
        return H @ V

    together = lz.block_lanczos_all(full, slices, P, num_steps=25, probes=probes)
    assert calls == [(P, 9)] * 25  # one matvec of width k·B per step serves every block
    for (a, b), pr, res in zip(slices, probes, together, strict=True):
        alone = lz.lanczos(lambda V, a=a, b=b: H[a:b, a:b] @ V, b - a, num_steps=25, probes=pr)
        # equal up to the summation order inside the GEMM (zeros contribute exactly 0)
        for x, y in [
            (res.alphas, alone.alphas),
            (res.betas, alone.betas),
            (res.nodes, alone.nodes),
        ]:
            assert torch.allclose(x, y, rtol=0, atol=1e-12)
        assert torch.allclose(res.weights, alone.weights, rtol=0, atol=1e-12)
    # default probes: Rademacher drawn block after block from one seeded generator
    g = _gen(5)
    drawn = [lz._rademacher(3, b - a, g, torch.float64, "cpu").T for a, b in slices]
    seeded = lz.block_lanczos_all(full, slices, P, num_steps=5, num_probes=3, seed=5)
    explicit = lz.block_lanczos_all(full, slices, P, num_steps=5, probes=drawn)
    for s, e in zip(seeded, explicit, strict=True):
        assert torch.allclose(s.alphas, e.alphas, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- SLQ
def test_slq_moments_match_trace_powers():
    """``mean_p Σ_j τ_j θ_j^k`` vs ``tr(H^k)/d``; Gauss quadrature is exact per probe for
    ``k < 2s``, so the only error is Hutchinson's, with variance
    ``2(‖H^k‖_F² − Σ_i (H^k)_ii²)/(d² K)`` for K unit Rademacher probes. Tolerance: 4 sd."""
    d, K = 500, 20
    H = _gram_operator(d, 700, seed=6)
    spec = sp.slq(lambda V: H @ V, d, num_steps=12, num_probes=K, seed=8)
    Hk = torch.eye(d)
    for k in range(1, 6):
        Hk = Hk @ H
        exact = float(Hk.trace()) / d
        sd = math.sqrt(2 * float((Hk**2).sum() - (Hk.diagonal() ** 2).sum()) / (d**2 * K))
        assert abs(spec.moment(k) - exact) <= 4 * sd, (k, spec.moment(k), exact, sd)
    assert spec.moment(0) == pytest.approx(1.0, abs=1e-13)


def test_slq_density_matches_exact_eigenvalues_n1200():
    """SLQ on a 1200 × 1200 Wigner matrix against its exact eigenvalues.

    Measured: L1 between the two densities blurred with the same σ ≈ 0.04, KS distance
    between the quadrature CDF and the eigenvalue CDF ≈ 0.027. Tolerances: 0.08 and 0.05.
    """
    n = 1200
    A = torch.randn(n, n, generator=_gen(9))
    W = (A + A.T) / math.sqrt(2 * n)
    exact = torch.linalg.eigvalsh(W)
    spec = sp.slq(lambda V: W @ V, n, num_steps=60, num_probes=10, seed=0, sigma_rel=0.02)
    uniform = torch.full((1, n), 1 / n)
    blurred = sp.slq_density((exact[None], uniform), grid=spec.grid, sigma=spec.sigma).density
    assert float(torch.trapezoid(spec.density, spec.grid)) == pytest.approx(1.0, abs=1e-6)
    assert float(torch.trapezoid((spec.density - blurred).abs(), spec.grid)) < 0.08
    order = spec.nodes.reshape(-1).argsort()
    theta = spec.nodes.reshape(-1)[order]
    cum = (spec.weights.reshape(-1)[order] / spec.num_probes).cumsum(0)
    t = torch.linspace(-2.2, 2.2, 2001)
    cdf_slq = torch.cat([torch.zeros(1), cum])[torch.searchsorted(theta, t, right=True)]
    cdf_exact = torch.searchsorted(exact, t, right=True) / n
    assert float((cdf_slq - cdf_exact).abs().max()) < 0.05
    assert spec.density_std.shape == spec.grid.shape and bool((spec.density_sem >= 0).all())


def test_slq_density_is_scale_invariant():
    H = _gram_operator(200, 300, seed=11)
    a = sp.slq(lambda V: H @ V, 200, num_steps=30, num_probes=4, seed=1)
    b = sp.slq(lambda V: 7.5 * (H @ V), 200, num_steps=30, num_probes=4, seed=1)
    assert b.sigma == pytest.approx(7.5 * a.sigma)
    assert torch.allclose(b.grid, 7.5 * a.grid) and torch.allclose(b.density, a.density / 7.5)


def test_slq_density_accepts_nodes_weights_and_grid():
    nodes = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    weights = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    grid = torch.linspace(-1, 2, 3001)
    spec = sp.slq_density((nodes, weights), grid=grid, sigma_rel=0.05)
    assert spec.sigma == pytest.approx(0.05)
    assert float(torch.trapezoid(spec.density, grid)) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(spec.evaluate(grid), spec.density)
    assert spec.moment(1) == pytest.approx(0.625)


# ----------------------------------------------------------------------------- JS distance
def test_js_distance_properties():
    x = torch.linspace(-5, 5, 2001)
    p = torch.exp(-0.5 * x**2)
    q = torch.exp(-0.5 * (x - 1) ** 2 / 0.5)
    assert float(hl.js_distance(p, p, x)) == 0.0
    assert float(hl.js_distance(p, q, x)) == pytest.approx(
        float(hl.js_distance(q, p, x)), abs=1e-15
    )
    left, right = (x < -1).double(), (x > 1).double()  # disjoint supports, zeros elsewhere
    assert float(hl.js_distance(left, right, x)) == pytest.approx(1.0, abs=1e-12)
    assert float(hl.js_distance(left, right, x, base=math.e)) == pytest.approx(
        math.sqrt(math.log(2))
    )
    # zero regions: finite, inside (0, 1); matches scipy on the cell probabilities
    pz = torch.where(x.abs() < 2, p, 0.0)
    d = float(hl.js_distance(pz, q, x))
    cell = torch.cat([x[1:2] - x[:1], x[2:] - x[:-2], x[-1:] - x[-2:-1]]) / 2
    ref = jensenshannon(np.asarray(pz * cell), np.asarray(q * cell), base=2)
    assert 0 < d < 1 and d == pytest.approx(ref, rel=1e-10)
    # scaling a density does not matter (renormalised on the grid)
    assert float(hl.js_distance(3 * p, q, x)) == pytest.approx(float(hl.js_distance(p, q, x)))


def test_pairwise_js_from_spectra():
    ops = [_gram_operator(120, n, seed=s) for s, n in [(1, 200), (2, 200), (3, 1000)]]
    spectra = [sp.slq(lambda V, H=H: H @ V, 120, num_steps=20, num_probes=3, seed=0) for H in ops]
    D = hl.pairwise_js(spectra)
    assert D.shape == (3, 3) and bool((D.diagonal() == 0).all()) and torch.equal(D, D.T)
    assert bool(((D >= 0) & (D <= 1)).all())
    assert float(D[0, 1]) < float(D[0, 2])  # same γ closer than a different γ
    grid = torch.linspace(-0.5, 5, 4001)
    dens = torch.stack([s.evaluate(grid) for s in spectra])
    D2 = hl.pairwise_js(dens, grid=grid)
    assert float(D2[0, 2]) == pytest.approx(float(hl.js_distance(dens[0], dens[2], grid)))
    assert torch.allclose(D2, D, atol=2e-3)  # sampled densities ≈ exact cell masses
    # spectra 10⁶ apart in scale: still resolved (cell masses, not samples), still ≤ 1
    tiny = sp.slq(lambda V: 1e-6 * (ops[0] @ V), 120, num_steps=20, num_probes=3, seed=0)
    D3 = hl.pairwise_js([spectra[0], tiny])
    assert 0.5 < float(D3[0, 1]) <= 1.0


# ----------------------------------------------------------------------------- bad input
def _eye(V):
    return V


@pytest.mark.parametrize(
    ("call", "exc", "name"),
    [
        (lambda: lz.lanczos(_eye, 10, num_steps=0), ValueError, "num_steps"),
        (lambda: lz.lanczos(_eye, 0, num_steps=3), ValueError, "dim"),
        (lambda: lz.lanczos(_eye, 10, num_steps=3, probes=torch.ones(9, 2)), ValueError, "probes"),
        (lambda: lz.lanczos(_eye, 3, num_steps=3, probes=torch.zeros(3, 1)), ValueError, "probes"),
        (lambda: lz.lanczos(lambda V: V[:-1], 10, num_steps=3), ValueError, "matvec"),
        (lambda: lz.lanczos(lambda V: V * float("nan"), 10, num_steps=3), ValueError, "matvec"),
        (lambda: lz.lanczos("H", 10, num_steps=3), TypeError, "matvec"),
        (
            lambda: lz.block_lanczos_all(_eye, [(0, 11)], 10, num_steps=2),
            ValueError,
            "block_slices",
        ),
        (lambda: lz.block_lanczos_all(_eye, [], 10, num_steps=2), ValueError, "block_slices"),
        (lambda: sp.slq_density((torch.ones(2, 3), torch.ones(2, 2))), ValueError, "weights"),
        (
            lambda: sp.slq_density((torch.ones(1, 2), torch.ones(1, 2)), sigma_rel=0),
            ValueError,
            "sigma_rel",
        ),
        (lambda: hl.js_distance(torch.zeros(5), torch.ones(5), torch.arange(5.0)), ValueError, "p"),
        (
            lambda: hl.js_distance(torch.ones(5), torch.ones(5) * float("nan"), torch.arange(5.0)),
            ValueError,
            "q",
        ),
        (lambda: hl.js_distance(-torch.ones(5), torch.ones(5), torch.arange(5.0)), ValueError, "p"),
        (lambda: hl.js_distance(torch.ones(5), torch.ones(4), torch.arange(5.0)), ValueError, "q"),
        (lambda: hl.js_distance(torch.ones(3), torch.ones(3), torch.zeros(3)), ValueError, "grid"),
        (lambda: hl.pairwise_js(torch.ones(2, 5)), ValueError, "grid"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, exc, name):
    with pytest.raises(exc, match=name):
        call()
