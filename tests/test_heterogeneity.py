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
        1.0, widths=(64, 2, 3, 10), init="lecun", seed=2, device="cpu"
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


def test_scaled_mlp_and_training(digits_flat):
    m1 = hl.chapters.llm_implications.scaled_mlp(1.0, widths=(64, 8, 10), seed=3, device="cpu")
    m3 = hl.chapters.llm_implications.scaled_mlp(3.0, widths=(64, 8, 10), seed=3, device="cpu")
    assert torch.equal(m1.weights[0], m3.weights[0])  # same weights for every c
    x = digits_flat.X[:2]
    # ReLU is positively homogeneous: two scaled layers multiply the logits by c²
    assert torch.allclose(m3(x), 9 * m1(x), atol=1e-12)
    with pytest.raises(ValueError, match="c must be"):
        hl.chapters.llm_implications.scaled_mlp(0.0)
    train = hl.Dataset(digits_flat.X[:40].float(), digits_flat.y[:40], 10)
    test = hl.Dataset(digits_flat.X[40:].float(), digits_flat.y[40:], 10)
    net = m1.float()
    a = hl.chapters.llm_implications.train_classifier(
        net, train, test, optimizer="adam", lr=1e-2, epochs=3, batch_size=16
    )
    b = hl.chapters.llm_implications.train_classifier(
        net, train, test, optimizer="adam", lr=1e-2, epochs=3, batch_size=16
    )
    assert a == b and a.final_loss < a.losses[0]  # deterministic and learning
    big = hl.chapters.llm_implications.scaled_mlp(
        15.0, widths=(64, 10), seed=3, device="cpu"
    ).float()  # linear: no dead ReLUs
    d = hl.chapters.llm_implications.train_classifier(
        big, train, test, optimizer="sgd", lr=1e38, epochs=2, batch_size=16
    )
    assert math.isinf(d.final_loss) and d.test_accuracy == 0.0  # diverged: inf, not NaN
    with pytest.raises(ValueError, match="optimizer"):
        hl.chapters.llm_implications.train_classifier(
            net, train, test, optimizer="lbfgs", lr=1.0, epochs=1
        )


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
