"""The two losses of the book, with the conventions of the notation page."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import check_loss

__all__ = [
    "LOSSES",
    "cross_entropy",
    "loss_fn",
    "mse",
]

LOSSES = ("ce", "mse")


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Mean cross-entropy :math:`\frac1N\sum_n -\log \operatorname{softmax}(f(x_n))_{y_n}`."""
    return F.cross_entropy(logits, y)


def mse(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Half mean squared error to one-hot targets, :math:`\frac{1}{2N}\sum_n\|f(x_n)-e_{y_n}\|^2`.

    The factor ½ makes the Hessian blocks match the formulas of the talk (arXiv 2505.02809).
    """
    target = F.one_hot(y, logits.shape[-1]).to(logits.dtype)
    return 0.5 * (logits - target).pow(2).sum(dim=-1).mean()


def loss_fn(loss: str):
    """The loss callable ``(logits, y) -> scalar`` named ``"ce"`` or ``"mse"``."""
    return {"ce": cross_entropy, "mse": mse}[check_loss(loss)]
