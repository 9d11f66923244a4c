"""Bad input gets a clear error naming the argument."""

from __future__ import annotations

import pytest
import torch

import hesslib as hl


@pytest.fixture
def small():
    data = hl.gaussian_data(8, 4, 3, seed=0, device="cpu")
    net = hl.one_hidden_net(4, 2, 3, seed=0, device="cpu")
    return data, net


def test_num_classes_below_two():
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        hl.gaussian_data(10, 3, 1)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        hl.one_hidden_net(3, 2, 1)


def test_wrong_shapes(small):
    data, net = small
    with pytest.raises(ValueError, match="X must have 2 dimensions"):
        hl.core.one_hidden_hessian(data.X[0], data.y, net.W.detach(), net.V.detach())
    with pytest.raises(ValueError, match=r"W must be \(m, 4\)"):
        hl.core.one_hidden_hessian(data.X, data.y, net.W.detach()[:, :3], net.V.detach())
    with pytest.raises(ValueError, match=r"y must have shape \(8,\)"):
        hl.core.one_hidden_hessian(data.X, data.y[:5], net.W.detach(), net.V.detach())


def test_labels_out_of_range(small):
    data, net = small
    y = data.y.clone()
    y[0] = 3
    with pytest.raises(ValueError, match=r"labels outside \[0, 3\)"):
        hl.core.one_hidden_hessian(data.X, y, net.W.detach(), net.V.detach())
    with pytest.raises(TypeError, match="integer class indices"):
        hl.core.one_hidden_hessian(data.X, data.y.double(), net.W.detach(), net.V.detach())


def test_non_finite_data(small):
    data, net = small
    X = data.X.clone()
    X[1, 2] = float("inf")
    with pytest.raises(ValueError, match="X contains non-finite"):
        hl.core.one_hidden_hessian(X, data.y, net.W.detach(), net.V.detach())


def test_unknown_loss_and_init(small):
    data, net = small
    with pytest.raises(ValueError, match="loss must be 'ce' or 'mse'"):
        hl.core.one_hidden_hessian(data.X, data.y, net.W.detach(), net.V.detach(), loss="hinge")
    with pytest.raises(ValueError, match="init must be one of"):
        hl.one_hidden_net(3, 2, 2, init="xavier")


def test_dtype_mismatch(small):
    data, net = small
    with pytest.raises(TypeError, match="W must have X's dtype"):
        hl.core.one_hidden_hessian(data.X, data.y, net.W.detach().float(), net.V.detach())


def test_seed_and_profile_errors():
    with pytest.raises(ValueError, match="seed must be non-negative"):
        hl.seed_everything(-1)
    with pytest.raises(ValueError, match="profile must be one of"):
        hl.resolve_profile("fast", {"quick": {"N": 1}, "default": {"N": 2}})
    with pytest.raises(ValueError, match="unknown setting 'M'"):
        hl.resolve_profile("quick", {"quick": {"N": 1}}, M=3)
    assert hl.resolve_profile("quick", {"quick": {"N": 1}}, N=None, verbose=False).N == 1


def test_determinism():
    a = hl.gaussian_data(20, 5, 4, seed=7, device="cpu")
    b = hl.gaussian_data(20, 5, 4, seed=7, device="cpu")
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    assert torch.equal(hl.one_hidden_net(5, 2, 4, seed=3).W, hl.one_hidden_net(5, 2, 4, seed=3).W)


def test_portable_randn_depends_only_on_the_generator():
    x = hl.core.portable_randn(3, 4, generator=hl.make_generator(5), dtype=torch.float32)
    ref = torch.randn(3, 4, generator=hl.make_generator(5), dtype=torch.float64)
    assert x.shape == (3, 4) and x.dtype == torch.float32
    assert torch.equal(x, ref.float())
    # the data of the Gaussian setting are such draws
    data = hl.gaussian_data(6, 2, 3, seed=5, device="cpu")
    ref = torch.randn(6, 2, generator=hl.make_generator(5), dtype=torch.float64)
    assert torch.equal(data.X, ref)


def test_single_thread_restores_the_thread_count():
    n = torch.get_num_threads()
    with hl.core.single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n
    with hl.core.single_thread("meta"):  # not the CPU: left alone
        assert torch.get_num_threads() == n
