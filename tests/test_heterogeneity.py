"""Blockwise spectra, JS distances, the small CNN and the heterogeneity dial of chapter 06."""

from __future__ import annotations

import math

import pytest
import torch

import hesslib as hl


@pytest.fixture(scope="module")
def digits_flat():
    return hl.nets.digits_data(num=48, image=False, seed=0, device="cpu")


def test_digits_data_offline_and_standardised():
    full = hl.nets.digits_data(device="cpu")
    assert full.X.shape == (1797, 1, 8, 8) and full.num_classes == 10
    assert abs(float(full.X.mean())) < 1e-12 and abs(float(full.X.std()) - 1) < 1e-12
    up = hl.nets.digits_data(num=5, upsample=2, seed=1, device="cpu")
    assert up.X.shape == (5, 1, 16, 16)
    assert torch.equal(up.y, hl.nets.digits_data(num=5, seed=1, device="cpu").y)  # seeded subset
    with pytest.raises(ValueError, match="num"):
        hl.nets.digits_data(num=5000)


def test_small_cnn_hessian_matches_torch_func():
    data = hl.nets.digits_data(num=4, seed=0, device="cpu")
    net = hl.nets.small_cnn(channels=(2, 2, 2), seed=0, device="cpu")
    layout = hl.nets.cnn_layout(net)
    assert layout.names == ("conv1", "conv2", "conv3", "fc")
    assert layout.sizes == (18, 36, 36, 10 * 2 * 4 * 4)  # one pooling step: 8 -> 4
    f, theta = hl.flat_loss(net, data.X, data.y, "ce")
    H = hl.full_hessian(f, theta)
    ref = hl.hessian_reference(f, theta)
    assert float((H - ref).abs().max()) <= 1e-10 * float(ref.abs().max())
    fc = slice(layout.offsets[3], layout.offsets[4])
    assert torch.equal(theta[fc], net.fc.detach().reshape(-1))  # fc is last in the flat vector


def test_blockwise_spectra_exact_with_full_krylov_space(digits_flat):
    mlp = hl.chapters.llm_implications.scaled_mlp(
        1.0, widths=(64, 2, 3, 10), bias=False, init="lecun", seed=2, device="cpu"
    )
    layout = hl.chapters.llm_implications.mlp_layout(mlp)
    assert layout.sizes == (128, 6, 30)
    f, theta = hl.flat_loss(mlp, digits_flat.X, digits_flat.y, "ce")
    H = hl.full_hessian(f, theta)
    res = hl.blockwise_spectra(
        mlp, digits_flat.X, digits_flat.y, layout, num_steps=30, num_probes=2, seed=0
    )
    assert res.num_matvecs <= 30  # one batched HVP per step serves all three blocks
    for b in (1, 2):  # blocks of size <= 30: Lanczos reaches every eigenvalue it can see
        sl = slice(layout.offsets[b], layout.offsets[b + 1])
        eig = torch.linalg.eigvalsh(H[sl, sl])
        s = res.spectra[b]
        nodes = s.nodes[s.weights > 1e-10]
        assert float((nodes[:, None] - eig[None]).abs().min(1).values.max()) < 1e-8
        assert s.moment(1) == pytest.approx(float(eig.mean()), abs=0.5 * float(eig.abs().max()))
    D = res.js
    assert torch.allclose(D, D.T) and float(D.diagonal().abs().max()) == 0.0
    assert res.js0 == pytest.approx(float(D.sum()) / 6)


@pytest.mark.parametrize("c", [15.0, 40.0, 200.0])
def test_js_finite_for_large_c(c, digits_flat):
    mlp = hl.chapters.llm_implications.scaled_mlp(
        c, widths=(64, 16, 8, 8, 10), seed=0, device="cpu"
    )
    res = hl.blockwise_spectra(
        mlp,
        digits_flat.X,
        digits_flat.y,
        hl.chapters.llm_implications.mlp_layout(mlp),
        num_steps=6,
        num_probes=1,
        seed=0,
    )
    assert bool(torch.isfinite(res.js).all())
    assert 0.0 <= float(res.js.min()) and float(res.js.max()) <= 1.0
    assert math.isfinite(res.js0) and 0.0 <= res.js0 <= 1.0


def test_js_helpers():
    D = torch.tensor([[0.0, 0.2, 0.4], [0.2, 0.0, 0.6], [0.4, 0.6, 0.0]])
    assert hl.js_zero(D) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="square"):
        hl.js_zero(torch.zeros(1, 1))
    a = hl.slq_density((torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]])))
    b = hl.slq_density((torch.tensor([[1e-3, 2e-3]]), torch.tensor([[0.5, 0.5]])))
    g = hl.spectral.union_grid([a, b])
    assert bool((g[1:] > g[:-1]).all()) and g.numel() == a.grid.numel() + b.grid.numel()
    # a spectrum 1000x narrower than the other: resolved on the union grid, far from it
    D2 = hl.pairwise_js([a, b], grid=g)
    assert 0.5 < float(D2[0, 1]) <= 1.0


def test_scaled_mlp_homogeneity_biases_and_layout(digits_flat):
    ch = hl.chapters.llm_implications
    kw = dict(widths=(64, 8, 10), seed=3, device="cpu")
    m1, m3 = ch.scaled_mlp(1.0, bias=False, **kw), ch.scaled_mlp(3.0, bias=False, **kw)
    assert torch.equal(m1.layers[0].weight, m3.layers[0].weight)  # same weights for every c
    x = digits_flat.X[:2]
    # without biases ReLU is positively homogeneous: two scaled layers multiply logits by c²
    assert torch.allclose(m3(x), 9 * m1(x), atol=1e-12)
    b1, b3 = ch.scaled_mlp(1.0, **kw), ch.scaled_mlp(3.0, **kw)  # biases: no longer so
    assert torch.equal(b1.layers[1].bias, b3.layers[1].bias)
    assert not torch.allclose(b3(x), 9 * b1(x), atol=1e-3)
    bound = 1 / 8**0.5  # nn.Linear's default U(±1/√fan_in), weights and biases
    assert float(b1.layers[1].weight.detach().abs().max()) <= bound
    assert float(b1.layers[1].bias.detach().abs().max()) <= bound
    assert ch.mlp_layout(b1).sizes == (64 * 8 + 8, 8 * 10 + 10)
    f, theta = hl.flat_loss(b1, x, digits_flat.y[:2], "ce")
    assert theta.numel() == ch.mlp_layout(b1).num_params
    with pytest.raises(ValueError, match="c must be"):
        ch.scaled_mlp(0.0)
    with pytest.raises(ValueError, match="init"):
        ch.scaled_mlp(1.0, init="xavier")


def test_dial_point_runs_and_verdict(digits_flat):
    ch = hl.chapters.llm_implications
    X = digits_flat.X.float()
    train = hl.Dataset(X[:36], digits_flat.y[:36], 10)
    test = hl.Dataset(X[36:], digits_flat.y[36:], 10)
    pt = ch.heterogeneity_dial(
        2.0, train, test, widths=(64, 8, 8, 10), steps=6, batch_size=8,
        grids={"sgd": (0.01, 0.1), "adam": (1e-3, 1e-2)}, seeds=(0, 1), tune_seeds=1,
        spectra_samples=24, num_steps=4, num_probes=1,
    )  # fmt: skip
    assert pt.spectra.names == ("layer1", "layer2", "layer3")
    assert len(pt.grid.best("sgd")) == 2 and pt.grid.select == "accuracy"
    assert 0 <= pt.accuracy("adam").lo <= pt.accuracy("adam").hi <= 1
    assert pt.verdict in ("SGD better", "Adam better", "no gap beyond the seed spread")


def test_layout_helpers():
    lay = hl.BlockLayout.from_named_sizes([("a", 1), ("b", 3)])
    assert hl.chapters.llm_implications.null_diag_mass(lay) == pytest.approx(10 / 16)
    norms = torch.tensor([[1.0, 3.0], [3.0, 9.0]])
    rms = hl.chapters.llm_implications.block_entry_rms(norms, lay)
    assert torch.allclose(
        rms, torch.tensor([[1.0, 3 / 3**0.5], [3 / 3**0.5, 3.0]], dtype=torch.float64)
    )


def test_blockwise_spectra_from_file(tmp_path):
    H = torch.diag(torch.linspace(-1, 2, 12, dtype=torch.float64))
    layout = hl.BlockLayout.from_named_sizes([("a", 5), ("b", 7)])
    results = hl.spectral.block_lanczos_all(
        lambda V: H @ V, layout, 12, num_steps=5, num_probes=2, seed=0
    )
    path = tmp_path / "spectra.pt"
    hl.spectral.save_block_spectra(
        path, layout.names, layout.sizes, results, {"steps": 5, "seconds": 0.1}
    )
    res = hl.spectral.blockwise_spectra_from_file(path)
    assert res.names == ("a", "b") and res.num_matvecs == 5 and res.seconds == pytest.approx(0.1)
    assert res.js.shape == (2, 2) and 0 < res.js0 <= 1


# ------------------------------------------------------------------ JS⁰ above its noise floor
def _block_spectra(seed, probes=4):
    """Two rotated blocks (a diagonal matrix would give every Rademacher probe the same
    quadrature), estimated from ``probes`` probes each."""
    q = hl.train.block_quadratic(
        [torch.linspace(0.1, 2, 40), torch.linspace(5, 9, 30)], names=["a", "b"], seed=3
    )
    return hl.block_slq(lambda V: q.H @ V, q.layout, 70, num_steps=8, num_probes=probes, seed=seed)


def test_noise_floor_split_and_two_runs():
    spec = _block_spectra(0)
    halves = [hl.spectral.split_probes(s) for s in spec]
    assert all(a.num_probes == b.num_probes == 2 for a, b in halves)
    A, B = zip(*halves)
    floor = hl.spectral.js_noise_floor(A, B)
    assert floor.shape == (2,) and bool((floor > 0).all()) and bool((floor < 0.5).all())
    assert float(hl.spectral.js_noise_floor(A, A).abs().max()) < 1e-6  # same estimate: 0
    # the floor shrinks with more probes per estimate (independent runs, two seeds)
    many = [_block_spectra(s, probes=32) for s in (1, 2)]
    assert float(hl.spectral.js_noise_floor(*many).mean()) < float(floor.mean())
    with pytest.raises(ValueError, match="at least 2 probes"):
        hl.spectral.split_probes(_block_spectra(0, probes=1)[0])
    with pytest.raises(ValueError, match="same blocks"):
        hl.spectral.js_noise_floor(A, B[:1])


def test_js_estimate_of_a_model(digits_flat):
    mlp = hl.chapters.llm_implications.scaled_mlp(1.0, widths=(64, 8, 8, 10), device="cpu")
    layout = hl.chapters.llm_implications.mlp_layout(mlp)
    kw = dict(num_steps=6, seed=0)
    four = hl.blockwise_spectra(mlp, digits_flat.X, digits_flat.y, layout, num_probes=4, **kw)
    est = hl.spectral.js_estimate(four)  # halves of the probes
    assert est.names == layout.names and est.floor.shape == (3,)
    assert 0 < est.floor_mean < 1 and 0 <= est.js0_other <= 1
    again = hl.blockwise_spectra(mlp, digits_flat.X, digits_flat.y, layout, num_probes=4, seed=1)
    two = hl.spectral.js_estimate(four, again, drop=("layer1",))
    assert two.names == ("layer2", "layer3") and two.js.shape == (2, 2)
    pair = [four.spectra[1], four.spectra[2]]
    ref = hl.pairwise_js(pair, grid=hl.spectral.union_grid(pair))
    assert two.js0 == pytest.approx(float(ref[0, 1]), abs=1e-12)


def test_scaled_spectrum_and_tail_masses():
    eig = torch.linspace(-1, 1, 41, dtype=torch.float64)
    s = hl.slq_density((eig[None], torch.full((1, 41), 1 / 41, dtype=torch.float64)))
    big = hl.slq_density((1000 * eig[None], torch.full((1, 41), 1 / 41, dtype=torch.float64)))
    a, b = hl.spectral.scaled_spectrum(s), hl.spectral.scaled_spectrum(big)
    assert hl.spectral.spectrum_distance(a, b) < 1e-6  # a common scale is divided out
    assert a.moment(2) == pytest.approx(1.0)
    neg, pos = hl.spectral.tail_masses(s, rel=0.05)
    assert neg == pytest.approx(pos) and neg == pytest.approx(19 / 41)
    shifted = hl.slq_density((eig[None] + 1.0, torch.full((1, 41), 1 / 41, dtype=torch.float64)))
    assert hl.spectral.tail_masses(shifted)[0] == 0.0


def test_full_spectrum_is_slq_of_the_whole_hessian(digits_flat):
    mlp = hl.chapters.llm_implications.scaled_mlp(
        1.0, widths=(64, 2, 10), bias=False, seed=1, device="cpu"
    )
    X, y = digits_flat.X[:20], digits_flat.y[:20]
    f, theta = hl.flat_loss(mlp, X, y, "ce")
    eig = torch.linalg.eigvalsh(hl.full_hessian(f, theta))
    s = hl.spectral.full_spectrum(mlp, X, y, num_steps=theta.numel(), num_probes=2, seed=0)
    nodes = s.nodes[s.weights > 1e-8]
    assert float((nodes[:, None] - eig[None]).abs().min(1).values.max()) < 1e-6
    assert s.moment(2) == pytest.approx(float((eig**2).mean()), rel=0.5)
