r"""A small convolutional network on scikit-learn's digits (real images that ship offline).

The digits data set (1797 grey-scale 8×8 images of handwritten digits, 10 classes) is part of
scikit-learn's installed package, so nothing is downloaded. The CNN is the control group of
chapter 06: a stack of *similar* blocks (3×3 convolutions, ReLU), as opposed to the disparate
blocks of a transformer ("Why Transformers Need Adam", §2.3).

Parameter order: ``conv1 … conv{L}`` (each ``(c_out, c_in, 3, 3)``), then ``fc`` ``(10, c·s²)``;
no biases. Optional parameter-free normalisation after each convolution (batch statistics, as
a ResNet's BatchNorm in training mode, without the affine part).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.blocks import BlockLayout
from ..core.checks import check_positive_int
from ..core.data import Dataset
from ..core.device import default_device, make_generator

__all__ = [
    "CNN_INITS",
    "cnn_layout",
    "digits_data",
    "small_cnn",
    "SmallCNN",
]

CNN_INITS = ("lecun", "he")


def digits_data(
    *,
    num: int | None = None,
    image: bool = True,
    upsample: int = 1,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Dataset:
    """scikit-learn's handwritten digits, standardised (pixels / 16, then zero mean, unit
    variance over the whole set), optionally a seeded random subset.

    Args:
        num: number of images (a seeded random subset; default all 1797).
        image: return ``X`` as images ``(N, 1, 8·u, 8·u)``; else flat ``(N, 64·u²)``.
        upsample: integer nearest-neighbour upsampling factor ``u``.
        seed: seed of the subset.
        device: where the tensors live.
        dtype: floating dtype of ``X``.

    Returns:
        A :class:`~hesslib.Dataset` with 10 classes.
    """
    from sklearn.datasets import load_digits

    check_positive_int("upsample", upsample)
    raw = load_digits()
    X = torch.tensor(raw.data, dtype=torch.float64) / 16.0  # (1797, 64)
    y = torch.tensor(raw.target, dtype=torch.long)
    if num is not None:
        check_positive_int("num", num)
        if num > X.shape[0]:
            raise ValueError(f"num must be <= {X.shape[0]}, got {num}")
        idx = torch.randperm(X.shape[0], generator=make_generator(seed))[:num]
        X, y = X[idx], y[idx]
    X = (X - X.mean()) / X.std()
    X = X.reshape(-1, 1, 8, 8)
    if upsample > 1:
        X = X.repeat_interleave(upsample, dim=2).repeat_interleave(upsample, dim=3)
    if not image:
        X = X.reshape(X.shape[0], -1)
    device = torch.device(device) if device is not None else default_device()
    side = 8 * upsample
    return Dataset(
        X.to(device=device, dtype=dtype),
        y.to(device),
        10,
        name=f"digits {side}×{side}, N={X.shape[0]}",
    )


class SmallCNN(nn.Module):
    """``L`` 3×3 convolutions with ReLU (2×2 average pooling after the convolutions numbered in
    ``pool_after``), then a linear classifier; ``forward`` maps ``(N, 1, s, s)`` images to
    logits ``(N, 10)``."""

    def __init__(
        self,
        channels: tuple[int, ...],
        side: int,
        num_classes: int = 10,
        *,
        normalize: bool = False,
        pool_after: tuple[int, ...] = (2, 4),
    ):
        super().__init__()
        if len(channels) < 1:
            raise ValueError("channels must list at least one convolution")
        c_in = 1
        self.convs = nn.ParameterList()
        for c in channels:
            check_positive_int("channels", c)
            self.convs.append(nn.Parameter(torch.empty(c, c_in, 3, 3)))
            c_in = c
        self.pool_after = tuple(int(i) for i in pool_after)
        side //= 2 ** sum(1 for i in self.pool_after if i <= len(channels))
        if side < 1:
            raise ValueError("too many pooling steps for this image size")
        # a submodule after the convolutions, so that named_parameters() lists it last
        self.head = nn.Linear(c_in * side * side, num_classes, bias=False)
        self.normalize = normalize

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        h = X
        for i, W in enumerate(self.convs):
            h = F.conv2d(h, W, padding=1)
            if self.normalize:  # per-channel batch statistics, no affine parameters
                mu = h.mean(dim=(0, 2, 3), keepdim=True)
                var = h.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
                h = (h - mu) / torch.sqrt(var + 1e-5)
            h = torch.relu(h)
            if i + 1 in self.pool_after:
                h = F.avg_pool2d(h, 2)
        return h.flatten(1) @ self.fc.T  # (N, 10)

    @property
    def fc(self) -> nn.Parameter:
        """The classifier weight ``(10, c·s²)`` (parameter ``head.weight``)."""
        return self.head.weight


def small_cnn(
    *,
    channels: tuple[int, ...] = (8, 8, 8, 8, 8, 8),
    side: int = 8,
    pool_after: tuple[int, ...] = (2, 4),
    num_classes: int = 10,
    normalize: bool = False,
    init: str = "he",
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> SmallCNN:
    """A seeded :class:`SmallCNN` (default: six 8-channel convolutions on 8×8 digits, pooled to
    4×4 after the second and to 2×2 after the fourth).

    Args:
        channels: output channels of each convolution (at least 3 for the chapter).
        side: input image side.
        pool_after: 1-based indices of the convolutions followed by 2×2 average pooling.
        num_classes: classes of the linear head.
        normalize: normalise each convolution's output with batch statistics.
        init: ``"he"`` (``N(0, 2/fan_in)``, keeps ReLU activations at a constant scale, as a
            ResNet's initialisation does) or ``"lecun"`` (``N(0, 1/fan_in)``); the head is
            always LeCun.
        seed: seed of the initialisation.
        device: device (default :func:`hesslib.default_device`).
        dtype: parameter dtype.
    """
    if init not in CNN_INITS:
        raise ValueError(f"init must be one of {CNN_INITS}, got {init!r}")
    model = SmallCNN(tuple(channels), side, num_classes, normalize=normalize, pool_after=pool_after)
    gen = make_generator(seed)
    gain = 2.0 if init == "he" else 1.0
    for name, p in model.named_parameters():
        fan_in = p[0].numel()
        g = 1.0 if name.startswith("head") else gain
        with torch.no_grad():
            p.copy_(
                torch.randn(p.shape, generator=gen, dtype=torch.float64) * math.sqrt(g / fan_in)
            )
    device = torch.device(device) if device is not None else default_device()
    return model.to(device=device, dtype=dtype)


def cnn_layout(model: SmallCNN) -> BlockLayout:
    """One block per layer: ``conv1 … conv{L}`` (group ``conv``), then ``fc`` (group ``fc``),
    in the order of ``named_parameters()``."""
    named = [
        ("fc" if n.startswith("head") else f"conv{int(n.split('.')[1]) + 1}", p.numel())
        for n, p in model.named_parameters()
    ]
    L = len(model.convs)
    if [n for n, _ in named] != [f"conv{i + 1}" for i in range(L)] + ["fc"]:
        raise ValueError(f"unexpected parameter order {[n for n, _ in named]}")
    return BlockLayout(
        tuple(s for _, s in named),
        tuple(n for n, _ in named),
        (("conv", 0, L), ("fc", L, L + 1)),
    )
