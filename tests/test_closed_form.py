"""Closed forms of cases 1–4 equal torch.func.hessian in float64 (rtol 1e-10)."""

from __future__ import annotations

import pytest
import torch

import hesslib as hl

RTOL = 1e-10


def _close(A: torch.Tensor, B: torch.Tensor) -> None:
    scale = float(B.abs().max())
    assert float((A - B).abs().max()) <= RTOL * max(scale, 1e-300)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_one_hidden_matches_autograd(problem, loss):
    data, net = problem
    f, theta = hl.flat_loss(net, data.X, data.y, loss)
    ref = hl.hessian_reference(f, theta)
    blocks = hl.closed_form_blocks(net, data.X, data.y, loss=loss)
    _close(blocks.dense, ref)
    Pw = net.W.numel()
    _close(blocks.Hww, ref[:Pw, :Pw])
    _close(blocks.Hwv, ref[:Pw, Pw:])
    _close(blocks.Hvv, ref[Pw:, Pw:])
    assert (
        torch.equal(blocks.dense, blocks.dense.T)
        or float((blocks.dense - blocks.dense.T).abs().max()) < 1e-14
    )


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_linear_matches_autograd(problem, loss):
    data, _ = problem
    lin = hl.linear_net(data.d, data.num_classes, seed=3, device="cpu")
    f, theta = hl.flat_loss(lin, data.X, data.y, loss)
    _close(hl.closed_form_hessian(lin, data.X, data.y, loss=loss), hl.hessian_reference(f, theta))


def test_case1_off_diagonal_blocks_exactly_zero(problem):
    data, _ = problem
    lin = hl.linear_net(data.d, data.num_classes, seed=4, device="cpu")
    H = hl.closed_form_hessian(lin, data.X, data.y, loss="mse")
    norms = hl.block_norms(H, lin.layout())
    off = norms - torch.diag(norms.diagonal())
    assert float(off.abs().max()) == 0.0
    assert float(norms.diagonal().min()) > 0


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_hwv_decomposition(problem, loss):
    data, net = problem
    m, d = net.W.shape
    C = net.V.shape[0]
    residual, rest = hl.hwv_decomposition(data.X, data.y, net.W.detach(), net.V.detach(), loss=loss)
    f, theta = hl.flat_loss(net, data.X, data.y, loss)
    ref = hl.hessian_reference(f, theta)[: m * d, m * d :]
    _close(residual + rest, ref)
    blocks = residual.view(m, d, C, m)  # (k, i, c, j)
    for k in range(m):
        mask = torch.ones(m, dtype=torch.bool)
        mask[k] = False
        assert float(blocks[k][:, :, mask].abs().sum()) == 0.0
    # the residual column is (1/N) sum_n g_nc D_nk x_n
    Z = data.X @ net.W.detach().T
    F = torch.relu(Z) @ net.V.detach().T
    onehot = torch.nn.functional.one_hot(data.y, C).to(F.dtype)
    g = (torch.softmax(F, 1) if loss == "ce" else F) - onehot
    expected = (data.X * (Z[:, :1] > 0)).T @ g / data.N
    _close(blocks[0][:, :, 0], expected)


def test_float32_agrees_with_float64():
    data = hl.gaussian_data(50, 20, 10, seed=0, device="cpu")
    net = hl.one_hidden_net(20, 4, 10, seed=1, device="cpu")
    H64 = hl.closed_form_hessian(net, data.X, data.y)
    net32 = hl.OneHiddenNet(net.W.detach().float(), net.V.detach().float())
    H32 = hl.closed_form_hessian(net32, data.X.float(), data.y)
    assert H32.dtype == torch.float32
    assert float((H32.double() - H64).abs().max()) < 1e-5 * float(H64.abs().max())


def test_pytorch_init_option_changes_scale():
    lecun = hl.one_hidden_net(400, 8, 10, init="lecun", seed=0, device="cpu")
    torch_init = hl.one_hidden_net(400, 8, 10, init="pytorch", seed=0, device="cpu")
    # LeCun: variance 1/fan_in; PyTorch uniform: variance 1/(3 fan_in)
    assert abs(float(lecun.W.var()) * 400 - 1) < 0.05
    assert abs(float(torch_init.W.var()) * 400 - 1 / 3) < 0.03
