"""Random-matrix laws of hesslib.rmt against closed forms and simulated spectra (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from hesslib.rmt import laws as rmt


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _law_cdf(res: rmt.GMPDensity) -> torch.Tensor:
    """CDF of the GMP law on its grid: integrated density plus the atom at 0."""
    acc = torch.cat([torch.zeros(1), torch.cumulative_trapezoid(res.density, res.grid)])
    return acc + res.atom * (res.grid >= 0)


def _ks(eigs: torch.Tensor, grid: torch.Tensor, cdf: torch.Tensor) -> float:
    emp = torch.searchsorted(eigs.reshape(-1).sort().values, grid, right=True) / eigs.numel()
    return float((emp - cdf).abs().max())


def _gmp_sample(d: int, N: int, lam: torch.Tensor, num: int, seed: int) -> torch.Tensor:
    """Eigenvalues of ``num`` draws of ``H = (1/N) X Λ Xᵀ``, X: d × N standard Gaussian."""
    g = _gen(seed)
    out = []
    for _ in range(num):
        X = torch.randn(d, N, generator=g)  # (d, N), samples as columns
        out.append(torch.linalg.eigvalsh((X * lam) @ X.T / N))
    return torch.stack(out)  # (num, d)


# ----------------------------------------------------------------------------- closed forms
def test_semicircle_matches_wigner_eigenvalues():
    n = 1000
    A = torch.randn(n, n, generator=_gen(0))
    eigs = torch.linalg.eigvalsh((A + A.T) / math.sqrt(2 * n))
    x = torch.linspace(-2.5, 2.5, 2001)
    rho = rmt.semicircle_density(x)
    cdf = torch.cat([torch.zeros(1), torch.cumulative_trapezoid(rho, x)])
    assert abs(float(cdf[-1]) - 1) < 1e-4
    # one n = 1000 matrix: eigenvalue rigidity keeps the KS distance far below 1 %
    assert _ks(eigs, x, cdf) < 0.01
    assert torch.allclose(rmt.semicircle_density(x * 3, sigma=3.0), rho / 3)


@pytest.mark.parametrize("ratio", [0.25, 0.5, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("sigma2", [1.0, 2.5])
def test_marchenko_pastur_integrates_to_one_minus_atom(ratio, sigma2):
    # x = a + (b − a) sin²θ removes the square-root edges (and the 1/√x pole at ratio = 1)
    a, b = sigma2 * (1 - math.sqrt(ratio)) ** 2, sigma2 * (1 + math.sqrt(ratio)) ** 2
    h = (math.pi / 2) / 20000
    theta = (torch.arange(20000) + 0.5) * h  # midpoint rule
    x = a + (b - a) * torch.sin(theta) ** 2
    jac = (b - a) * torch.sin(2 * theta)
    mass = (rmt.marchenko_pastur_density(x, ratio=ratio, sigma2=sigma2) * jac).sum() * h
    atom = rmt.marchenko_pastur_atom(ratio)
    assert atom == pytest.approx(max(0.0, 1 - 1 / ratio))
    assert float(mass) == pytest.approx(1 - atom, abs=1e-6)


@pytest.mark.parametrize("gamma", [0.3, 1.0, 2.5])
def test_gmp_with_unit_lambda_is_marchenko_pastur(gamma):
    z = torch.complex(torch.randn(200, generator=_gen(1)) * 3, torch.rand(200, generator=_gen(2)))
    z = z + 1e-4j
    m = rmt.gmp_stieltjes(z, torch.ones(50), gamma=gamma)
    assert torch.allclose(m, rmt.marchenko_pastur_stieltjes(z, ratio=gamma), rtol=1e-9, atol=0)
    # and it solves the MP quadratic γ z m² + (z − 1 + γ) m + 1 = 0
    assert float((gamma * z * m**2 + (z - 1 + gamma) * m + 1).abs().max()) < 1e-9
    a, b = (1 - math.sqrt(gamma)) ** 2, (1 + math.sqrt(gamma)) ** 2
    x = torch.linspace(a + 1e-3, b - 1e-3, 801)
    res = rmt.gmp_density(x, [1.0], gamma=gamma, eps=1e-12)
    mp = rmt.marchenko_pastur_density(x, ratio=gamma)
    assert float((res.density - mp).abs().max() / mp.max()) < 1e-8
    assert res.atom == pytest.approx(rmt.marchenko_pastur_atom(gamma))


# ----------------------------------------------------------------------------- generalised MP
@pytest.mark.parametrize(
    ("kind", "gamma"),
    [("uniform", 0.5), ("two-point+zeros", 0.2), ("two-point+zeros", 3.0), ("signed", 0.7)],
)
def test_gmp_density_mass_and_moments(kind, gamma):
    """The law's mass is 1 (atom included), its mean E λ and its second moment γEλ² + (Eλ)²."""
    g = _gen(3)
    lam = {
        "uniform": 0.2 + 1.6 * torch.rand(200, generator=g),
        "two-point+zeros": torch.cat(
            [torch.full((40,), 0.1), torch.full((40,), 5.0), torch.zeros(20)]
        ),
        "signed": torch.randn(200, generator=g),
    }[kind]
    s = float(lam.abs().max()) * (1 + math.sqrt(gamma)) ** 2
    x = torch.linspace(-1.05 * s, 1.05 * s, 4001)
    res = rmt.gmp_density(x, lam, gamma=gamma)
    assert bool(torch.isfinite(res.density).all()) and bool((res.density >= 0).all())
    assert bool((res.stieltjes.imag > 0).all())
    mass = float(torch.trapezoid(res.density, x))
    assert mass + res.atom == pytest.approx(1.0, abs=2e-3)
    mean = float(torch.trapezoid(res.density * x, x))
    assert mean == pytest.approx(float(lam.mean()), abs=2e-3 * s)
    m2 = float(torch.trapezoid(res.density * x**2, x))
    assert m2 == pytest.approx(rmt.second_moment_prediction(lam, gamma=gamma), rel=2e-3)


@pytest.mark.parametrize(("d", "N"), [(400, 800), (600, 300)])
def test_gmp_matches_simulated_spectrum(d, N):
    """KS distance between the GMP law (λ sample fixed) and 3 draws of (1/N) X Λ Xᵀ.

    Measured ≈ 0.003–0.005; the tolerance 0.02 leaves room for seeds and finite-d edges.
    """
    lam = 0.2 + 1.6 * torch.rand(N, generator=_gen(4))
    eigs = _gmp_sample(d, N, lam, num=3, seed=5)
    x = torch.linspace(-0.05, 1.1 * float(eigs.max()), 601)
    res = rmt.gmp_density(x, lam, gamma=d / N)
    assert _ks(eigs, x, _law_cdf(res)) < 0.02
    if d > N:  # rank ≤ N: the atom at 0 has mass 1 − N/d
        assert res.atom == pytest.approx(1 - N / d)
        assert float((eigs.abs() < 1e-8).double().mean()) == pytest.approx(res.atom, abs=1e-12)


def test_second_moment_prediction_matches_simulation():
    d, N = 400, 800
    lam = torch.distributions.Gamma(2.0, 4.0).sample((N,)).double()
    g = _gen(6)
    X = torch.randn(4, d, N, generator=g)  # 4 draws, samples as columns
    H = (X * lam) @ X.transpose(1, 2) / N  # (4, d, d)
    measured = float((H**2).sum((1, 2)).mean() / d)  # (1/d)‖H‖_F², averaged over draws
    predicted = rmt.second_moment_prediction(lam, gamma=d / N)
    assert predicted == pytest.approx(float(d / N * (lam**2).mean() + lam.mean() ** 2))
    # finite-size bias is O(1/d) ≈ 0.5 %; fluctuations are smaller still
    assert measured == pytest.approx(predicted, rel=0.02)


def test_stieltjes_empirical_shapes_and_limit():
    d, N = 400, 800
    lam = 0.2 + 1.6 * torch.rand(N, generator=_gen(7))
    eigs = _gmp_sample(d, N, lam, num=3, seed=8)
    z = torch.tensor([0.5 + 0.2j, 1.0 + 0.5j, 2.0 + 0.1j])
    s = rmt.stieltjes_empirical(eigs, z)
    assert s.shape == (3, 3) and s.dtype == torch.complex128
    assert complex(s[0, 1]) == pytest.approx(complex((1 / (eigs[0] - z[1])).mean()))
    m = rmt.gmp_stieltjes(z, lam, gamma=d / N)
    assert float((s.mean(0) - m).abs().max()) < 0.02  # O(1/d) at Im z ≥ 0.1


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: rmt.gmp_stieltjes([1 + 1j], [1.0, float("nan")], gamma=0.5), "lam"),
        (lambda: rmt.gmp_stieltjes([1 + 1j], [1.0], gamma=-1.0), "gamma"),
        (lambda: rmt.gmp_stieltjes([1 + 0j], [1.0], gamma=0.5), "z"),
        (lambda: rmt.gmp_stieltjes([1 - 1j], [1.0], gamma=0.5), "z"),
        (lambda: rmt.gmp_stieltjes([1 + 1j], [], gamma=0.5), "lam"),
        (lambda: rmt.gmp_density(torch.zeros(3, 3), [1.0], gamma=0.5), "x"),
        (lambda: rmt.gmp_density([0.0, 1.0], [1.0], gamma=0.5, eps=0.0), "eps"),
        (lambda: rmt.marchenko_pastur_density([1.0], ratio=0.0), "ratio"),
        (lambda: rmt.marchenko_pastur_density([1.0], ratio=0.5, sigma2=float("inf")), "sigma2"),
        (lambda: rmt.semicircle_density([float("nan")]), "x"),
        (lambda: rmt.semicircle_density([0.0], sigma=-1), "sigma"),
        (lambda: rmt.second_moment_prediction([1.0], gamma=float("nan")), "gamma"),
        (lambda: rmt.stieltjes_empirical([], [1j]), "eigs"),
        (lambda: rmt.stieltjes_empirical([1.0], [0.5]), "z"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
