"""A model's loss as a function of one flat parameter vector, with its batch checked.

:func:`flat_loss` is the entry point of the general path: every Hessian-vector product, dense
Hessian, Lanczos run and spectrum of a model that has no closed form starts from its
``(f, theta)``. It checks the batch once, by one forward pass without gradients
(:func:`~hesslib.core.checks.check_model_data`): ``X`` is what the model takes (finite
float32/float64 inputs, or integer token ids), ``y`` is one class label per row of the model's
output, and the output is the ``(N, C)`` logits the loss needs. A batch that does not fit is
refused here, naming ``X`` or ``y``, instead of failing as a raw matmul error deep inside a
batched HVP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from .checks import check_loss, check_model_data
from .losses import loss_fn

__all__ = ["FlatLoss", "flat_loss"]


@dataclass(frozen=True, eq=False)
class FlatLoss:
    """``theta -> loss(model(X), y)``, carrying what the structured paths need."""

    model: nn.Module
    X: torch.Tensor
    y: torch.Tensor
    loss: str
    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def num_params(self) -> int:
        return sum(s.numel() for s in self.shapes)

    def params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """The named parameters of a flat vector (rows of ``W``, then rows of ``V`` …)."""
        if theta.ndim != 1 or theta.shape[0] != self.num_params:
            raise ValueError(
                f"theta must have shape ({self.num_params},) for this model "
                f"({len(self.names)} parameter tensors), got {tuple(theta.shape)}"
            )
        parts = torch.split(theta, [s.numel() for s in self.shapes])
        return {n: q.reshape(s) for n, q, s in zip(self.names, parts, self.shapes, strict=True)}

    def logits(self, theta: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, self.params(theta), (self.X,))

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return loss_fn(self.loss)(self.logits(theta), self.y)


def flat_loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss: str = "ce"):
    """The loss as a function of one flat parameter vector.

    Args:
        model: any module; its parameters are flattened in ``named_parameters`` order
            (for the book's models: rows of ``W``, then rows of ``V``).
        X: inputs ``(N, d)`` (or images, or token ids: whatever ``model`` takes).
        y: labels: one integer class per row of the model's ``(N, C)`` output.
        loss: ``"ce"`` or ``"mse"``.

    Returns:
        ``(f, theta)``: ``f(theta) -> scalar`` and the current flat parameters ``(P,)``.

    Raises:
        TypeError: ``model`` not a module, ``X`` not a float32/float64/integer tensor, ``y``
            not an integer tensor.
        ValueError: unknown ``loss``, a model without parameters, non-finite ``X`` or
            parameters, or a batch the model and loss cannot take (checked by one forward
            pass without gradients: :func:`hesslib.core.checks.check_model_data`).
    """
    check_loss(loss)
    check_model_data(model, X, y)  # model a module, X and y a batch it takes
    named = list(model.named_parameters())
    if not named:
        raise ValueError("model has no parameters")
    theta = torch.cat([p.detach().reshape(-1) for _, p in named])
    if not bool(theta.isfinite().all()):
        raise ValueError("model parameters contain non-finite values (NaN or inf)")
    names = tuple(n for n, _ in named)
    f = FlatLoss(model, X, y, loss, names, tuple(p.shape for _, p in named))
    return f, theta
