"""Input validation shared by hesslib's public functions (clear errors, never silent NaN)."""

from __future__ import annotations

import torch

__all__ = []


def check_matrix(name: str, A: object, *, ndim: int = 2) -> torch.Tensor:
    """Raise unless ``A`` is a finite floating tensor with ``ndim`` dimensions."""
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(A).__name__}")
    if A.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(A.shape)}")
    if not A.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (float32/float64), got {A.dtype}")
    if not bool(torch.isfinite(A).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return A


def check_num_classes(num_classes: object) -> int:
    """Raise unless ``num_classes`` is an integer >= 2."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(
            f"num_classes must be >= 2 (a classifier needs two classes), got {num_classes}"
        )
    return num_classes


def check_labels(y: object, N: int, num_classes: int) -> torch.Tensor:
    """Raise unless ``y`` is an integer vector of length ``N`` with values in ``[0, C)``."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor of class indices, got {type(y).__name__}")
    if y.ndim != 1 or y.shape[0] != N:
        raise ValueError(f"y must have shape ({N},) to match X, got {tuple(y.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"y must hold integer class indices, got dtype {y.dtype}")
    if N and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"y has labels outside [0, {num_classes}): min {int(y.min())}, max {int(y.max())}"
        )
    return y


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Raise unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_loss(loss: object) -> str:
    """Raise unless ``loss`` names a supported loss."""
    if loss not in ("ce", "mse"):
        raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")
    return loss  # type: ignore[return-value]


def check_complex_upper(z, name: str = "z") -> torch.Tensor:
    """Convert to a complex128 tensor with ``Im z > 0`` or raise ``ValueError``."""
    try:
        t = torch.as_tensor(z.detach() if isinstance(z, torch.Tensor) else z)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be array-like of complex numbers") from err
    t = t.to(device="cpu", dtype=torch.complex128)
    if not bool(torch.isfinite(t.real).all() & torch.isfinite(t.imag).all()):
        raise ValueError(f"{name} contains non-finite values")
    if t.numel() and not bool((t.imag > 0).all()):
        raise ValueError(
            f"{name} must lie in the upper half-plane (Im {name} > 0); "
            f"min Im {name} = {t.imag.min().item():.3g}"
        )
    return t
