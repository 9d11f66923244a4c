"""Shared fixtures: seeded float64 problems small enough for torch.func.hessian."""

from __future__ import annotations

import pytest
import torch

import hesslib as hl

# (N, d, m, C): includes C = 2 and m = 1 as the foundation issue asks
SHAPES = [(7, 5, 3, 4), (6, 4, 1, 2), (9, 3, 2, 5), (12, 6, 4, 3), (5, 2, 5, 7)]


@pytest.fixture(params=SHAPES, ids=lambda s: "N{}-d{}-m{}-C{}".format(*s))
def problem(request):
    """A seeded one-hidden-layer problem on the CPU in float64."""
    N, d, m, C = request.param
    seed = sum(request.param)
    data = hl.gaussian_data(N, d, C, seed=seed, device="cpu")
    net = hl.one_hidden_net(d, m, C, seed=seed + 1, device="cpu")
    return data, net


@pytest.fixture(autouse=True)
def _float64_cpu():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)
