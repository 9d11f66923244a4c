"""The model families of the papers, with the theory's initialisation and named block layouts.

Parameter order follows the book's notation: rows of ``W`` (``w_1 … w_m``) then rows of ``V``
(``v_1 … v_C``), so a flattened parameter vector is ``cat([W.reshape(-1), V.reshape(-1)])``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import BlockLayout
from .checks import (
    check_dtype,
    check_like,
    check_matrix,
    check_num_classes,
    check_positive_int,
    check_shape,
)
from .device import default_device, make_generator

__all__ = [
    "INITS",
    "init_matrix",
    "linear_net",
    "LinearNet",
    "one_hidden_net",
    "OneHiddenNet",
]

INITS = ("lecun", "pytorch")


def init_matrix(shape: tuple[int, int], init: str, gen: torch.Generator) -> torch.Tensor:
    """A float64 ``(fan_out, fan_in)`` weight matrix drawn from ``gen`` (on the CPU).

    ``"lecun"``: ``N(0, 1/fan_in)``, the assumption of the theory; ``"pytorch"``: ``nn.Linear``'s
    default ``U(−1/√fan_in, 1/√fan_in)``.
    """
    fan_in = shape[1]
    if init == "lecun":
        return torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)
    if init == "pytorch":
        return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(fan_in)
    raise ValueError(f"init must be one of {INITS}, got {init!r}")


class LinearNet(nn.Module):
    """Linear model ``f(x) = V x`` with ``V`` of shape ``(C, d)`` (no bias)."""

    def __init__(self, V: torch.Tensor):
        super().__init__()
        self.V = nn.Parameter(check_matrix("V", V, nonempty=True))

    @property
    def num_classes(self) -> int:
        return self.V.shape[0]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return X @ self.V.T  # (N, C)

    def layout(self) -> BlockLayout:
        """C class blocks of size d."""
        C, d = self.V.shape
        return BlockLayout.uniform([("V", C, d)])


class OneHiddenNet(nn.Module):
    """One-hidden-layer ReLU net ``f(x) = V relu(W x)``, ``W`` (m, d), ``V`` (C, m), no biases."""

    def __init__(self, W: torch.Tensor, V: torch.Tensor):
        super().__init__()
        check_matrix("W", W, nonempty=True)
        check_shape("V", check_matrix("V", V, nonempty=True), ("C", W.shape[0]), "to match W")
        check_like("V", V, "W", W)
        self.W = nn.Parameter(W)
        self.V = nn.Parameter(V)

    @property
    def num_classes(self) -> int:
        return self.V.shape[0]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return torch.relu(X @ self.W.T) @ self.V.T  # (N, m) -> (N, C)

    def layout(self) -> BlockLayout:
        """m neuron blocks of size d (group ``W``), then C class blocks of size m (group ``V``)."""
        m, d = self.W.shape
        C = self.V.shape[0]
        return BlockLayout.uniform([("W", m, d), ("V", C, m)])


def linear_net(
    d: int,
    num_classes: int,
    *,
    init: str = "lecun",
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> LinearNet:
    """A :class:`LinearNet` with i.i.d. initialisation (LeCun ``N(0, 1/d)`` by default).

    Args:
        d: input dimension.
        num_classes: number of classes ``C >= 2``.
        init: ``"lecun"`` (the theory's assumption) or ``"pytorch"`` (``nn.Linear``'s uniform
            default, which the authors' scripts used).
        seed: seed of the initialisation.
        device: device (default :func:`hesslib.default_device`).
        dtype: parameter dtype.
    """
    check_positive_int("d", d)
    check_num_classes(num_classes)
    check_dtype("dtype", dtype)
    gen = make_generator(seed)
    V = init_matrix((num_classes, d), init, gen)
    device = torch.device(device) if device is not None else default_device()
    return LinearNet(V.to(device=device, dtype=dtype))


def one_hidden_net(
    d: int,
    m: int,
    num_classes: int,
    *,
    init: str = "lecun",
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> OneHiddenNet:
    """A :class:`OneHiddenNet` with i.i.d. initialisation (variance 1/fan_in by default).

    Args:
        d: input dimension.
        m: number of hidden neurons.
        num_classes: number of classes ``C >= 2``.
        init: ``"lecun"`` or ``"pytorch"`` (see :func:`linear_net`).
        seed: seed of the initialisation.
        device: device (default :func:`hesslib.default_device`).
        dtype: parameter dtype.
    """
    check_positive_int("d", d)
    check_positive_int("m", m)
    check_num_classes(num_classes)
    check_dtype("dtype", dtype)
    gen = make_generator(seed)
    W = init_matrix((m, d), init, gen)
    V = init_matrix((num_classes, m), init, gen)
    device = torch.device(device) if device is not None else default_device()
    return OneHiddenNet(W.to(device=device, dtype=dtype), V.to(device=device, dtype=dtype))
