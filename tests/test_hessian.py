"""The general batched-HVP path, HVPs, the naive loop and the memory guard."""

from __future__ import annotations

import pytest
import torch

import hesslib as hl


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("chunk_size", [1, 5, None])
def test_full_hessian_matches_torch_func(problem, loss, chunk_size):
    data, net = problem
    f, theta = hl.flat_loss(net, data.X, data.y, loss)
    H = hl.full_hessian(f, theta, chunk_size=chunk_size)
    ref = hl.hessian_reference(f, theta)
    assert float((H - ref).abs().max()) <= 1e-12 * float(ref.abs().max())
    assert float((H - H.T).abs().max()) <= 1e-12 * float(ref.abs().max())


def test_model_hessian_on_an_arbitrary_module():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)
    ).double()
    X = torch.randn(10, 3)
    y = torch.randint(3, (10,))
    H = hl.model_hessian(model, X, y, "ce")
    f, theta = hl.flat_loss(model, X, y, "ce")
    assert H.shape == (theta.numel(), theta.numel())
    assert torch.allclose(H, hl.hessian_reference(f, theta), rtol=1e-10, atol=1e-13)


def test_hvp_single_and_batched(problem):
    data, net = problem
    f, theta = hl.flat_loss(net, data.X, data.y, "ce")
    ref = hl.hessian_reference(f, theta)
    V = torch.randn(theta.numel(), 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(hl.hvp(f, theta, V), ref @ V, rtol=1e-10, atol=1e-13)
    assert torch.allclose(hl.hvp(f, theta, V[:, 0]), ref @ V[:, 0], rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match="v must have shape"):
        hl.hvp(f, theta, torch.randn(theta.numel() + 1))


def test_naive_loop_columns(problem):
    data, net = problem
    f, theta = hl.flat_loss(net, data.X, data.y, "mse")
    ref = hl.hessian_reference(f, theta)
    cols = range(0, theta.numel(), 2)
    assert torch.allclose(
        hl.core.hessian_loop(f, theta, cols), ref[:, list(cols)], rtol=1e-10, atol=1e-13
    )


def test_memory_guard_names_bytes():
    theta = torch.zeros(100_000)
    with pytest.raises(MemoryError, match=r"80,000,000,000 bytes"):
        hl.full_hessian(lambda t: t.sum(), theta)
    data = hl.gaussian_data(10, 100, 3, seed=0, device="cpu")
    net = hl.one_hidden_net(100, 4, 3, seed=0, device="cpu")
    with pytest.raises(MemoryError, match="needs 1,357,952 bytes"):
        hl.closed_form_hessian(net, data.X, data.y, max_bytes=1000)


def test_available_memory_is_positive():
    assert hl.core.available_memory("cpu") > 2**20
