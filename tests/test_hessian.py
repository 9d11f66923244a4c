"""The general batched-HVP path, HVPs, the naive loop and the memory guard.

Every model family of the shared ``hessian_case`` fixture (linear, one-hidden, deep MLP, CNN,
GPT): ``hl.full_hessian`` and ``hl.model_hessian`` equal ``hl.hessian_reference``, and so does
the closed form where the book has one.
"""

from __future__ import annotations

import pytest
import torch

import hesslib as hl

RTOL = 1e-10
LOSSES = ["ce", "mse"]


def _assert_close(A: torch.Tensor, ref: torch.Tensor, rtol: float = RTOL) -> None:
    assert A.shape == ref.shape and A.dtype == ref.dtype == torch.float64
    scale = float(ref.abs().max())
    assert scale > 0
    err = float((A - ref).abs().max())
    assert err <= rtol * scale, f"max error {err:.3e} > {rtol:g} x {scale:.3e}"


def test_hessian_cases_are_the_intended_models(hessian_case):
    """The fixture really covers each family (and is small enough for the reference)."""
    kinds = {
        "linear": hl.LinearNet,
        "one_hidden": hl.OneHiddenNet,
        "deep": hl.nets.DeepNet,
        "cnn": hl.nets.SmallCNN,
        "gpt": hl.nets.GPT,
    }
    assert isinstance(hessian_case.model, kinds[hessian_case.name.split("-")[0]])
    assert all(p.dtype == torch.float64 for p in hessian_case.model.parameters())
    assert 5 <= hessian_case.num_params <= 500


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("chunk", ["auto", "ragged"])
def test_full_hessian_matches_reference_on_every_model(hessian_case, loss, chunk):
    f, theta = hessian_case.flat_loss(loss)
    P = theta.numel()
    chunk_size = None
    if chunk == "ragged":  # a few chunks, the last one shorter
        chunk_size = P // 3 + 1
        chunk_size += P % chunk_size == 0
    H = hl.full_hessian(f, theta, chunk_size=chunk_size)
    ref = hessian_case.reference(loss)
    _assert_close(H, ref)
    _assert_close(H.T, ref)  # symmetric up to round-off


@pytest.mark.parametrize("loss", LOSSES)
def test_model_hessian_matches_reference_on_every_model(hessian_case, loss):
    H = hl.model_hessian(hessian_case.model, hessian_case.X, hessian_case.y, loss)
    _assert_close(H, hessian_case.reference(loss))


@pytest.mark.parametrize("loss", LOSSES)
def test_closed_form_matches_reference_where_one_exists(hessian_case, loss):
    if hessian_case.closed_form is None:
        assert hessian_case.name in ("cnn", "gpt"), hessian_case.name
        return  # no closed form: the HVP engine is the only exact path
    _assert_close(hessian_case.closed_form(loss), hessian_case.reference(loss))


@pytest.mark.parametrize("loss", LOSSES)
def test_hvp_on_every_model(hessian_case, loss):
    f, theta = hessian_case.flat_loss(loss)
    ref = hessian_case.reference(loss)
    V = torch.randn(theta.numel(), 3, generator=torch.Generator().manual_seed(0))
    scale = float((ref.abs() @ V.abs()).max())
    assert float((hl.hvp(f, theta, V) - ref @ V).abs().max()) <= RTOL * scale
    assert float((hl.hvp(f, theta, V[:, 1]) - ref @ V[:, 1]).abs().max()) <= RTOL * scale


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
