"""The deep ReLU MLP: initialisation, forward pass, layouts and its exact Hessian."""

from __future__ import annotations

import pytest
import torch

import hesslib as hl


def test_shapes_and_init():
    net = hl.nets.deep_net(50, 40, 30, depth=4, seed=0, device="cpu")
    assert net.depth == 4 and net.num_classes == 30
    assert [tuple(W.shape) for W in net.weights] == [(40, 50), (40, 40), (40, 40), (30, 40)]
    assert [n for n, _ in net.named_parameters()] == ["W1", "W2", "W3", "W4"]
    big = hl.nets.deep_net(400, 400, 400, depth=2, seed=1, device="cpu")
    for W in big.weights:  # LeCun: variance 1 / fan_in (160 000 draws: std error ~0.4 %)
        assert float(W.var() * W.shape[1]) == pytest.approx(1.0, abs=0.02)
        assert abs(float(W.mean())) < 3 * (1 / W.shape[1]) ** 0.5 / 400
    uni = hl.nets.deep_net(400, 400, 400, depth=2, init="pytorch", seed=1, device="cpu")
    assert float(uni.W1.abs().max()) <= 1 / 400**0.5
    assert float(uni.W1.var() * 400) == pytest.approx(1 / 3, abs=0.01)


def test_seeds():
    a = hl.nets.deep_net(5, 4, 3, seed=2, device="cpu")
    b = hl.nets.deep_net(5, 4, 3, seed=2, device="cpu")
    c = hl.nets.deep_net(5, 4, 3, seed=3, device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.weights, b.weights, strict=True))
    assert not torch.equal(a.W1, c.W1)


def test_forward():
    X = torch.randn(9, 5, generator=hl.make_generator(0), dtype=torch.float64)
    net = hl.nets.deep_net(5, 4, 3, depth=3, seed=0, device="cpu")
    W1, W2, W3 = net.weights
    expected = torch.relu(torch.relu(X @ W1.T) @ W2.T) @ W3.T
    assert torch.allclose(net(X), expected, rtol=0, atol=1e-15)
    two = hl.nets.deep_net(5, 4, 3, depth=2, seed=0, device="cpu")
    one = hl.OneHiddenNet(two.W1.detach(), two.W2.detach())
    assert torch.equal(two(X), one(X))  # depth 2 is the one-hidden-layer net


def test_layouts():
    net = hl.nets.deep_net(6, 5, 4, depth=4, seed=0, device="cpu")
    lay = net.layout()
    assert lay.num_blocks == 3 * 5 + 4
    assert lay.num_params == sum(W.numel() for W in net.weights)
    assert lay.sizes[:5] == (6,) * 5 and lay.sizes[5:] == (5,) * 14
    assert [g for g, _, _ in lay.groups] == ["W1", "W2", "W3", "W4"]
    assert lay.param_slice("W2") == slice(30, 55)
    per_layer = net.layout("layer")
    assert per_layer.sizes == (30, 25, 25, 20) and per_layer.names == ("W1", "W2", "W3", "W4")
    with pytest.raises(ValueError, match="per"):
        net.layout("row")


def test_hessian_matches_reference_and_block_order():
    """General batched-HVP Hessian of the deep net equals torch.func.hessian; blocks are rows."""
    data = hl.gaussian_data(20, 4, 3, seed=1, device="cpu")
    net = hl.nets.deep_net(4, 3, 3, depth=3, seed=2, device="cpu")
    H = hl.model_hessian(net, data.X, data.y, "ce")
    f, theta = hl.flat_loss(net, data.X, data.y, "ce")
    ref = hl.hessian_reference(f, theta)
    assert float((H - ref).abs().max()) < 1e-12 * float(ref.abs().max())
    # theta order = rows of W1, then W2, then W3: block i of the layout = row i of its layer
    assert torch.equal(theta, torch.cat([W.detach().reshape(-1) for W in net.weights]))
    # the output layer is linear in W3: its block is the linear-model Hessian of the features
    W1, W2, W3 = (W.detach() for W in net.weights)
    feats = torch.relu(torch.relu(data.X @ W1.T) @ W2.T)  # (N, width)
    s = net.layout().param_slice("W3")
    H33 = hl.core.linear_hessian(feats, data.y, W3, loss="ce")
    assert float((H[s, s] - H33).abs().max()) < 1e-12 * float(H33.abs().max())


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_classes"):
        hl.nets.deep_net(5, 4, 1)
    with pytest.raises(ValueError, match="depth"):
        hl.nets.deep_net(5, 4, 3, depth=0)
    with pytest.raises(ValueError, match="init"):
        hl.nets.deep_net(5, 4, 3, init="xavier")
    with pytest.raises(ValueError, match="columns"):
        hl.nets.DeepNet([torch.zeros(3, 2), torch.zeros(4, 5)])
    with pytest.raises(ValueError, match="at least one"):
        hl.nets.DeepNet([])


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_deep_hessian_matches_autograd(depth, loss):
    data = hl.gaussian_data(13, 4, 3, seed=depth, device="cpu")
    net = hl.nets.deep_net(4, 5, 3, depth=depth, seed=2, device="cpu")
    H = hl.nets.deep_hessian(net, data.X, data.y, loss=loss)
    f, theta = hl.flat_loss(net, data.X, data.y, loss)
    ref = hl.hessian_reference(f, theta)
    assert float((H - ref).abs().max()) < 1e-13 * float(ref.abs().max())
    assert float((H - H.T).abs().max()) < 1e-15 * float(H.abs().max())


def test_deep_hessian_depth2_equals_closed_form():
    data = hl.gaussian_data(30, 6, 5, seed=0, device="cpu")
    net = hl.nets.deep_net(6, 4, 5, depth=2, seed=1, device="cpu")
    one = hl.OneHiddenNet(net.W1.detach(), net.W2.detach())
    H = hl.nets.deep_hessian(net, data.X, data.y)
    ref = hl.closed_form_hessian(one, data.X, data.y)
    assert float((H - ref).abs().max()) < 1e-14 * float(ref.abs().max())


def test_deep_hessian_bad_inputs():
    data = hl.gaussian_data(10, 4, 3, seed=0, device="cpu")
    net = hl.nets.deep_net(4, 5, 3, seed=0, device="cpu")
    with pytest.raises(TypeError, match="DeepNet"):
        hl.nets.deep_hessian(hl.one_hidden_net(4, 2, 3, device="cpu"), data.X, data.y)
    with pytest.raises(ValueError, match="X must be"):
        hl.nets.deep_hessian(net, data.X.float(), data.y)
    with pytest.raises(MemoryError):
        hl.nets.deep_hessian(net, data.X, data.y, max_bytes=1000)


def test_deep_hessian_parts():
    """Gauss-Newton + residual = H; the residual part lives off the layer-diagonal blocks."""
    data = hl.gaussian_data(15, 4, 3, seed=3, device="cpu")
    net = hl.nets.deep_net(4, 5, 3, depth=3, seed=4, device="cpu")
    H = hl.nets.deep_hessian(net, data.X, data.y)
    gn = hl.nets.deep_hessian(net, data.X, data.y, part="gauss_newton")
    res = hl.nets.deep_hessian(net, data.X, data.y, part="residual")
    assert float((gn + res - H).abs().max()) < 1e-14 * float(H.abs().max())
    norms = hl.block_norms(res, net.layout("layer"))
    assert float(norms.diagonal().abs().max()) == 0.0 and float(norms.max()) > 1e-3
    # the Gauss-Newton part is positive semi-definite for CE
    assert float(torch.linalg.eigvalsh(gn).min()) > -1e-12
    with pytest.raises(ValueError, match="part"):
        hl.nets.deep_hessian(net, data.X, data.y, part="ggn")


def test_deep_snapshot():
    data = hl.gaussian_data(15, 4, 3, seed=5, device="cpu")
    net = hl.nets.deep_net(4, 5, 3, depth=3, seed=6, device="cpu")
    snap = hl.chapters.dynamic_force.deep_snapshot(net, data.X, data.y, step=4, max_pixels=10_000)
    H = hl.nets.deep_hessian(net, data.X, data.y)
    R = hl.nets.deep_hessian(net, data.X, data.y, part="residual")
    assert snap.step == 4 and snap.factor == 1 and snap.layer_sizes == (20, 25, 15)
    assert snap.residual_share == pytest.approx(float(R.norm() / H.norm()), rel=1e-12)
    ref = hl.block_norms(H, net.layout("layer"))
    assert torch.allclose(snap.layer_norms, ref, rtol=1e-12, atol=0)
    assert snap.layer_diag_mass == pytest.approx(hl.diag_mass_fraction(H, net.layout("layer")))
    assert snap.neuron_diag_mass == pytest.approx(hl.diag_mass_fraction(H, net.layout()))
    assert snap.loss == pytest.approx(float(hl.core.cross_entropy(net(data.X), data.y)))


def test_deep_snapshot_neuron_ratios():
    data = hl.gaussian_data(15, 4, 3, seed=5, device="cpu")
    net = hl.nets.deep_net(4, 5, 3, depth=3, seed=6, device="cpu")
    snap = hl.chapters.dynamic_force.deep_snapshot(net, data.X, data.y)
    H = hl.nets.deep_hessian(net, data.X, data.y)
    expected = [hl.block_ratio(H, net.layout(), group=g) for g in ("W1", "W2", "W3")]
    assert snap.layer_widths == (5, 5, 3)
    assert snap.neuron_ratios == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("init", ["lecun", "pytorch"])
def test_two_layer_deep_net_is_the_one_hidden_net(init):
    """Both draw their weights with hl.core.init_matrix from one generator, W first."""
    deep = hl.nets.deep_net(7, 5, 3, depth=2, init=init, seed=4, device="cpu")
    one = hl.one_hidden_net(7, 5, 3, init=init, seed=4, device="cpu")
    assert torch.equal(deep.weights[0], one.W) and torch.equal(deep.weights[1], one.V)
    with pytest.raises(ValueError, match="init must be one of"):
        hl.nets.deep_net(7, 5, 3, init="xavier")
