"""Input validation shared by hesslib's public functions (clear errors, never silent NaN).

Every check names the argument it refuses and says what would be valid: a wrong type raises
``TypeError``, a wrong value (shape, size, non-finite entries) ``ValueError``. Tensors of
the engine are float32 or float64 (:data:`FLOAT_DTYPES`): half precision is refused rather
than run at an accuracy no result in the book is checked at.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch

__all__ = []

#: The floating dtypes the engine computes in.
FLOAT_DTYPES = (torch.float32, torch.float64)


def check_directions(name: str, v: object, theta: torch.Tensor) -> torch.Tensor:
    """Raise unless ``v`` is one finite direction ``(P,)`` or a block ``(P, k)`` in ``theta``'s
    dtype (``P`` = ``theta``'s length); return it as ``(P, k)``."""
    P = theta.shape[0]
    if not isinstance(v, torch.Tensor) or v.ndim not in (1, 2) or v.shape[0] != P:
        shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"{name} must have shape ({P},) or ({P}, k), got {shape}")
    if v.dtype != theta.dtype:
        raise TypeError(f"{name} must have theta's dtype {theta.dtype}, got {v.dtype}")
    if not bool(v.isfinite().all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return v.reshape(P, -1)


def check_matrix(name: str, A: object, *, ndim: int = 2, nonempty: bool = False) -> torch.Tensor:
    """Raise unless ``A`` is a finite float32/float64 tensor with ``ndim`` dimensions.

    Args:
        name: the argument's name, for the message.
        A: the value passed.
        ndim: required number of dimensions.
        nonempty: also require every dimension to be at least 1.
    """
    if not isinstance(A, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(A).__name__}")
    if A.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(A.shape)}")
    if A.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 tensor, got {A.dtype}")
    if nonempty and A.numel() == 0:
        raise ValueError(f"{name} must not be empty (every dimension >= 1), got {tuple(A.shape)}")
    if not bool(torch.isfinite(A).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return A


def check_shape(name: str, A: torch.Tensor, shape: Sequence[int | str], why: str = "") -> None:
    """Raise ``ValueError`` unless ``A.shape`` matches ``shape``.

    Args:
        name: the argument's name.
        A: a tensor already checked by :func:`check_matrix`.
        shape: the expected sizes: an int must match, a string (``"m"``) is any size and
            labels the dimension in the message.
        why: what the sizes must match (``"to match X"``), appended to the message.
    """
    if len(A.shape) != len(shape) or any(
        isinstance(s, int) and a != s for a, s in zip(A.shape, shape, strict=False)
    ):
        want = "(" + ", ".join(str(s) for s in shape) + ")"
        raise ValueError(
            f"{name} must have shape {want}{' ' + why if why else ''}, got {tuple(A.shape)}"
        )


def check_like(name: str, A: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """Raise ``TypeError`` unless ``A`` has the dtype and device of ``ref``."""
    if A.dtype != ref.dtype or A.device != ref.device:
        raise TypeError(
            f"{name} must have {ref_name}'s dtype/device ({ref.dtype}, {ref.device}), "
            f"got ({A.dtype}, {A.device})"
        )


def check_dtype(name: str, dtype: object) -> torch.dtype:
    """Raise unless ``dtype`` is ``torch.float32`` or ``torch.float64``."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype (float32 or float64), got {dtype!r}")
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be torch.float32 or torch.float64, got {dtype}")
    return dtype


def check_device(name: str, device: object) -> torch.device | None:
    """``device`` as a ``torch.device`` (``None`` stays ``None``), or a ``ValueError`` naming it."""
    if device is None:
        return None
    if not isinstance(device, str | torch.device):
        raise TypeError(f"{name} must be a torch.device or a string like 'cpu', got {device!r}")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{name} must name a device like 'cpu' or 'cuda:0', got {device!r}"
        ) from err


def check_real(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    positive: bool = False,
) -> float:
    """Raise unless ``value`` is a finite real number (``> 0`` / ``>= minimum`` if asked).

    Returns:
        ``value`` as a Python float.
    """
    valid = "a finite number" + (" > 0" if positive else "")
    valid += f" >= {minimum}" if minimum is not None else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if not (isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex()):
            raise TypeError(f"{name} must be {valid}, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0) or (minimum is not None and v < minimum):
        raise ValueError(f"{name} must be {valid}, got {value!r}")
    return v


def check_net_inputs(X, W, V, *, loss: str, y=None) -> tuple[int, int, int, int]:
    """Check the inputs of the closed forms of ``f(x) = V relu(W x)`` (or ``V x``).

    ``X`` ``(N, d)``, ``W`` ``(m, d)`` (``None`` for the linear model, where ``m = d``) and
    ``V`` ``(C, m)``: non-empty finite float32/float64 tensors of one dtype and device;
    ``loss`` ``"ce"``/``"mse"``; ``y`` (when given) ``N`` labels in ``[0, C)``, ``C >= 2``.

    Returns:
        ``(N, d, m, C)``.
    """
    check_matrix("X", X, nonempty=True)
    N, d = X.shape
    for name, A in (("W", W), ("V", V)):
        if A is not None or name == "V":
            check_matrix(name, A, nonempty=True)
            check_like(name, A, "X", X)
    if W is not None:
        check_shape("W", W, ("m", d), "to match X")
    m = d if W is None else W.shape[0]
    check_shape("V", V, ("C", m), "to match W" if W is not None else "to match X")
    check_loss(loss)
    C = V.shape[0]
    if y is not None:
        check_labels(y, N, check_num_classes(C))
    return N, d, m, C


def check_num_classes(num_classes: object, name: str = "num_classes") -> int:
    """Raise unless ``num_classes`` is an integer >= 2 (``name``: the argument's name)."""
    label = name if name == "num_classes" else f"{name} (num_classes)"
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"{label} must be an int >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(
            f"{label} must be >= 2 (a classifier needs two classes), got {num_classes}"
        )
    return num_classes


def check_labels(y: object, N: int, num_classes: int) -> torch.Tensor:
    """Raise unless ``y`` is an integer vector of length ``N`` with values in ``[0, C)``."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor of class indices, got {type(y).__name__}")
    if y.ndim != 1 or y.shape[0] != N:
        raise ValueError(f"y must have shape ({N},) to match X, got {tuple(y.shape)}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
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


def as_float64(name: str, x: object, *, complex_ok: bool = False) -> torch.Tensor:
    """``x`` (tensor, NumPy array, list or scalar) as a CPU float64 (or complex128) tensor.

    Python lists and scalars go through NumPy, which keeps them in double precision (torch
    would round them to the default float32 first); tensors and arrays are converted exactly.

    Raises:
        ValueError: ``x`` is not array-like of real (or, with ``complex_ok``, complex) numbers.
    """
    kind = "complex" if complex_ok else "real"
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name} must be array-like of {kind} numbers") from err
        if arr.dtype.kind not in "iufc":
            raise ValueError(f"{name} must be array-like of {kind} numbers, got {type(x).__name__}")
        t = torch.as_tensor(arr)  # a copy when arr is not contiguous; 0-d stays 0-d
    if t.dtype == torch.bool or not (
        t.is_floating_point() or t.is_complex() or t.dtype.is_signed or t.dtype == torch.uint8
    ):
        raise ValueError(f"{name} must be array-like of {kind} numbers, got dtype {t.dtype}")
    if t.is_complex() and not complex_ok:
        raise ValueError(f"{name} must be real, got a complex array")
    return t.to(device="cpu", dtype=torch.complex128 if complex_ok else torch.float64)


def check_complex_upper(z, name: str = "z") -> torch.Tensor:
    """Convert to a complex128 tensor with ``Im z > 0`` or raise ``ValueError``."""
    t = as_float64(name, z, complex_ok=True)
    if not bool(torch.isfinite(t.real).all() & torch.isfinite(t.imag).all()):
        raise ValueError(f"{name} contains non-finite values")
    if t.numel() and not bool((t.imag > 0).all()):
        raise ValueError(
            f"{name} must lie in the upper half-plane (Im {name} > 0); "
            f"min Im {name} = {t.imag.min().item():.3g}"
        )
    return t


def check_type(name: str, value: object, types: type | tuple[type, ...], what: str) -> object:
    """Raise ``TypeError`` unless ``value`` is an instance of ``types`` (``what`` names them)."""
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def check_index(name: str, value: object, n: int, what: str = "an index") -> int:
    """Raise unless ``value`` is an integer in ``[0, n)``."""
    check_positive_int(name, value, minimum=0)
    if value >= n:
        raise ValueError(f"{name} must be {what} in [0, {n}), got {value}")
    return value


def check_class_count(name: str, value: object) -> int:
    """:func:`check_num_classes` for a number of classes under another name (``C``)."""
    return check_num_classes(value, name)


def as_finite_float64(name: str, x: object, *, positive: bool = False) -> torch.Tensor:
    """:func:`as_float64`, refusing non-finite entries (and, with ``positive``, entries <= 0)."""
    t = as_float64(name, x)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got non-finite values (NaN or inf)")
    if positive and t.numel() and not bool((t > 0).all()):
        raise ValueError(f"{name} must be positive, got a minimum of {float(t.min()):.3g}")
    return t


def check_model_data(model: object, X: object, y: object) -> None:
    """Raise unless ``model`` is a module mapping ``X`` to logits ``(len(y), C)`` and ``y``
    holds class indices in ``[0, C)``.

    ``X`` is whatever the model takes: finite float32/float64 inputs or images, or integer
    token ids. One forward pass without gradients checks that the model accepts it.
    """
    check_type("model", model, torch.nn.Module, "a torch.nn.Module")
    check_type("X", X, torch.Tensor, "a torch.Tensor of inputs")
    if X.is_floating_point():
        check_matrix("X", X, ndim=X.ndim)
    elif X.is_complex() or X.dtype == torch.bool:
        raise TypeError(f"X must hold float32/float64 inputs or integer token ids, got {X.dtype}")
    check_type("y", y, torch.Tensor, "a torch.Tensor of class indices")
    if y.ndim != 1:
        raise ValueError(f"y must have shape (N,) (one class per logit row), got {tuple(y.shape)}")
    try:
        with torch.no_grad():
            out = model(X)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise ValueError(
            f"X must be an input the model accepts, got {X.dtype} {tuple(X.shape)}: {err}"
        ) from err
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != y.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"X must give logits of shape ({y.shape[0]}, C) to match y, got {shape}")
    check_labels(y, y.shape[0], out.shape[1])


def check_callable(name: str, fn: object, what: str = "a callable") -> object:
    """Raise ``TypeError`` unless ``fn`` is callable (``what`` says what it must compute)."""
    if not callable(fn):
        raise TypeError(f"{name} must be {what}, got {type(fn).__name__}")
    return fn


def check_record(name: str, value: object, fields: Sequence[str], what: str) -> object:
    """Raise ``TypeError`` unless ``value`` has the attributes ``fields``.

    For the result records a function only reads (duck typing: a stand-in with the same
    attributes works too); ``what`` names the record, e.g. ``"a HessianSnapshot"``.
    """
    missing = [f for f in fields if not hasattr(value, f)]
    if missing:
        raise TypeError(
            f"{name} must be {what} (with {', '.join(fields)}), got {type(value).__name__} "
            f"without {', '.join(missing)}"
        )
    return value
