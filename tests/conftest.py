"""Shared fixtures: seeded float64 problems small enough for torch.func.hessian.

``problem``: the one-hidden-layer net on Gaussian data (the closed-form tests use it).
``hessian_case``: one model of every family the book takes Hessians of — linear, one-hidden,
deep ReLU MLP, small CNN, tiny GPT — with its data and, where one exists, its closed form;
tests/test_hessian.py checks the HVP engine against ``hl.hessian_reference`` on all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

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


# ------------------------------------------------------------------------ one case per model family
@dataclass(eq=False)
class HessianCase:
    """A float64 model on the CPU, its data and (if the book has one) its closed-form Hessian.

    ``closed_form(loss)`` returns the dense Hessian in the order of :func:`hesslib.flat_loss`;
    ``reference(loss)`` is ``hl.hessian_reference``, computed once per loss.
    """

    name: str
    model: nn.Module
    X: torch.Tensor
    y: torch.Tensor
    closed_form: Callable[[str], torch.Tensor] | None = None
    _refs: dict = field(default_factory=dict, repr=False)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def flat_loss(self, loss: str):
        return hl.flat_loss(self.model, self.X, self.y, loss)

    def reference(self, loss: str) -> torch.Tensor:
        if loss not in self._refs:
            self._refs[loss] = hl.hessian_reference(*self.flat_loss(loss))
        return self._refs[loss]


def _linear() -> HessianCase:
    data = hl.gaussian_data(8, 5, 4, seed=11, device="cpu")
    net = hl.linear_net(5, 4, seed=12, device="cpu")
    return HessianCase(
        "linear",
        net,
        data.X,
        data.y,
        lambda loss: hl.closed_form_hessian(net, data.X, data.y, loss=loss),
    )


def _one_hidden(N: int, d: int, m: int, C: int) -> Callable[[], HessianCase]:
    def build() -> HessianCase:
        seed = N + d + m + C
        data = hl.gaussian_data(N, d, C, seed=seed, device="cpu")
        net = hl.one_hidden_net(d, m, C, seed=seed + 1, device="cpu")
        return HessianCase(
            f"one_hidden-N{N}-d{d}-m{m}-C{C}",
            net,
            data.X,
            data.y,
            lambda loss: hl.closed_form_hessian(net, data.X, data.y, loss=loss),
        )

    return build


def _deep() -> HessianCase:
    data = hl.gaussian_data(10, 5, 3, seed=21, device="cpu")
    net = hl.nets.deep_net(5, 4, 3, depth=3, seed=22, device="cpu")
    return HessianCase(
        "deep",
        net,
        data.X,
        data.y,
        lambda loss: hl.nets.deep_hessian(net, data.X, data.y, loss=loss),
    )


def _cnn() -> HessianCase:
    """Three 2-channel 3×3 convolutions and one pooling step on 8×8 digits: P = 410."""
    data = hl.nets.digits_data(num=6, seed=31, device="cpu", dtype=torch.float64)
    net = hl.nets.small_cnn(channels=(2, 2, 2), seed=32, device="cpu", dtype=torch.float64)
    return HessianCase("cnn", net, data.X, data.y)


def _gpt() -> HessianCase:
    """Two layers with LayerNorm and GPT-2 init (chapter 06's kind), 16 tokens: P = 396."""
    tokens, _ = hl.nets.char_tokens(hl.nets.zen_text(), vocab_size=16)
    data = hl.nets.token_windows(tokens, 3, num=12, vocab_size=16, device="cpu")
    net = hl.nets.gpt(
        16,
        context=3,
        width=4,
        num_heads=2,
        mlp_width=8,
        num_layers=2,
        layernorm=True,
        init="gpt2",
        seed=41,
        device="cpu",
        dtype=torch.float64,
    )
    return HessianCase("gpt", net, data.X, data.y)


HESSIAN_CASES = {
    "linear": _linear,
    "one_hidden-N7-d5-m3-C4": _one_hidden(7, 5, 3, 4),
    "one_hidden-N6-d4-m1-C2": _one_hidden(6, 4, 1, 2),
    "deep": _deep,
    "cnn": _cnn,
    "gpt": _gpt,
}


@pytest.fixture(scope="session", params=list(HESSIAN_CASES))
def hessian_case(request) -> HessianCase:
    """Every model family of the book, small enough for ``torch.func.hessian`` in float64."""
    return HESSIAN_CASES[request.param]()
