"""Data sets of the book: Gaussian classification data."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check_num_classes, check_positive_int
from .device import default_device, make_generator, portable_randn

__all__ = [
    "Dataset",
    "gaussian_data",
]


@dataclass(frozen=True)
class Dataset:
    """Inputs and labels of a classification problem.

    Attributes:
        X: inputs, shape ``(N, d)``.
        y: labels in ``[0, num_classes)``, shape ``(N,)``, dtype long.
        num_classes: the number of classes ``C``.
        name: a short description used in figure titles.
    """

    X: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str = ""

    @property
    def N(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]


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
        dtype: floating dtype of ``X``.

    Returns:
        A :class:`Dataset` with ``X`` of shape ``(N, d)`` and ``y`` of shape ``(N,)``.
    """
    check_positive_int("N", N)
    check_positive_int("d", d)
    check_num_classes(num_classes)
    device = torch.device(device) if device is not None else default_device()
    gen = make_generator(seed)  # CPU generator: identical data on every device
    X = portable_randn(N, d, generator=gen, device=device, dtype=dtype)
    y = torch.randint(num_classes, (N,), generator=gen).to(device)
    return Dataset(X, y, num_classes, name=f"Gaussian N={N}, d={d}, C={num_classes}")
