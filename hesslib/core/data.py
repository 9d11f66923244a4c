"""Data sets of the book: Gaussian classification data."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import (
    check_device,
    check_dtype,
    check_labels,
    check_matrix,
    check_num_classes,
    check_positive_int,
)
from .device import default_device, make_generator, portable_randn

__all__ = [
    "Dataset",
    "gaussian_data",
]


@dataclass(frozen=True)
class Dataset:
    """Inputs and labels of a classification problem (checked when it is made).

    Attributes:
        X: inputs, shape ``(N, d)`` (float32/float64; images ``(N, c, s, s)``, or integer
            token ids ``(N, T)`` for a language model).
        y: labels in ``[0, num_classes)``, shape ``(N,)``, dtype long.
        num_classes: the number of classes ``C``.
        name: a short description used in figure titles.
    """

    X: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.X, torch.Tensor) or self.X.ndim == 0:
            raise TypeError(f"X must be a tensor of N rows, got {_describe(self.X)}")
        if self.X.shape[0] == 0:
            raise ValueError("X must have at least one row (N >= 1)")
        if self.X.is_floating_point():  # inputs (N, d) or images; else token ids (N, T)
            check_matrix("X", self.X, ndim=self.X.ndim)
        C = check_num_classes(self.num_classes)
        if not isinstance(self.y, torch.Tensor) or self.y.ndim != 1:
            raise TypeError(f"y must be a 1-D tensor of class indices, got {_describe(self.y)}")
        if self.y.numel() % self.X.shape[0]:  # (N,) labels, or (N·T,) per-position targets
            raise ValueError(f"y must have N = {self.X.shape[0]} entries (or a multiple)")
        check_labels(self.y, self.y.numel(), C)

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]


def _describe(t: object) -> str:
    return f"shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__


def gaussian_data(
    N: int,
    d: int,
    num_classes: int,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Dataset:
    r"""Rows :math:`x_n \sim \mathcal N(0, I_d)` and labels uniform on ``[C]``, independent of X.

    This is the setting of the theory in arXiv 2505.02809 (the labels carry no signal, so the
    Hessian at initialisation is a pure random-matrix object).

    Args:
        N: number of samples.
        d: input dimension.
        num_classes: number of classes ``C >= 2``.
        seed: seed of the generator (inputs and labels are drawn from the same stream).
        device: where the tensors live (default: :func:`hesslib.default_device`).
        dtype: floating dtype of ``X`` (float32 or float64).

    Returns:
        A :class:`Dataset` with ``X`` of shape ``(N, d)`` and ``y`` of shape ``(N,)``.
    """
    check_positive_int("N", N)
    check_positive_int("d", d)
    check_num_classes(num_classes)
    check_dtype("dtype", dtype)
    device = check_device("device", device) or default_device()
    gen = make_generator(seed)  # CPU generator: identical data on every device
    X = portable_randn(N, d, generator=gen, device=device, dtype=dtype)
    y = torch.randint(num_classes, (N,), generator=gen).to(device)
    return Dataset(X, y, num_classes, name=f"Gaussian N={N}, d={d}, C={num_classes}")
