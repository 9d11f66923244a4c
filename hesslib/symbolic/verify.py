"""Exact symbolic Hessians of the talk's linear examples; the graph rule predicts their zeros.

For a :class:`~hesslib.symbolic.LinearExample` (chapter 02, :mod:`hesslib.symbolic.graphs`) the loss
``½ ||V W − Y||_F²`` is a sympy polynomial, so its Hessian is exact: :func:`symbolic_hessian`
differentiates it, :func:`symbolic_support` marks the entries that are not identically zero,
and :func:`hessian_latex` prints it with labelled rows and columns. :func:`verify_example`
evaluates it at a random point against two numeric Hessians (``torch.func.hessian`` and
batched Hessian-vector products) and compares its zero pattern with the links of the
computation graph (:func:`~hesslib.symbolic.predicted_pattern`): an entry is identically zero
exactly when the two parameters have no link (arXiv 2505.02809, Part II-1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

from ..core.checks import as_finite_float64, check_type
from .graphs import LinearExample, hessian_at, predicted_pattern, random_point, torch_loss

__all__ = [
    "ExampleCheck",
    "hessian_latex",
    "symbolic_hessian",
    "symbolic_support",
    "verify_example",
]

_EXAMPLE = "a LinearExample (from linear_example)"


def symbolic_hessian(ex: LinearExample) -> sp.Matrix:
    """Exact Hessian ``∂²ℓ/∂θ∂θᵀ`` as a sympy matrix (entries expanded)."""
    check_type("ex", ex, LinearExample, _EXAMPLE)
    return sp.hessian(ex.loss, ex.symbols).applyfunc(sp.expand)


def symbolic_support(H: sp.Matrix) -> np.ndarray:
    """Booleans: which entries of a symbolic matrix are not identically zero."""
    check_type("H", H, sp.MatrixBase, "a sympy Matrix")
    return np.array([[sp.simplify(e) != 0 for e in row] for row in H.tolist()], dtype=bool)


def hessian_latex(ex: LinearExample, H: sp.Matrix | None = None, *, rows=None) -> str:
    """LaTeX of ``H`` with its rows and columns labelled by the parameters.

    Args:
        ex: the example.
        H: its symbolic Hessian (computed when omitted).
        rows: which rows to show (default all), e.g. ``range(2)`` for the first block-row.
    """
    check_type("ex", ex, LinearExample, _EXAMPLE)
    H = symbolic_hessian(ex) if H is None else check_type("H", H, sp.MatrixBase, "a sympy Matrix")
    if H.shape != (ex.num_params,) * 2:
        raise ValueError(f"H must have shape {(ex.num_params,) * 2} to match ex, got {H.shape}")
    head = " & ".join(ex.labels)
    rows = range(ex.num_params) if rows is None else rows
    rows = [f"{ex.labels[r]} & " + " & ".join(sp.latex(e) for e in H.row(r)) for r in rows]
    cols = "c|" + "c" * ex.num_params
    return (
        r"\begin{array}{"
        + cols
        + "} & "
        + head
        + r" \\ \hline "
        + r" \\ ".join(rows)
        + r"\end{array}"
    )


@dataclass(frozen=True)
class ExampleCheck:
    """The exact Hessian of an example and its checks at one point.

    Attributes:
        H: the symbolic Hessian.
        theta: the point ``(P,)`` (float64).
        H_exact: ``H`` evaluated at ``theta``.
        H_autograd: :func:`hesslib.hessian_reference` (``torch.func.hessian``) at ``theta``.
        H_hvp: :func:`hesslib.full_hessian` (batched Hessian-vector products) at ``theta``.
        max_err: largest ``|H_exact − H_autograd|`` and ``|H_exact − H_hvp|`` entry.
        pattern: :func:`predicted_pattern` from the graph.
        pattern_ok: the graph's links are exactly the entries that are not identically zero.
        num_zero: number of identically zero entries.
    """

    H: sp.Matrix
    theta: torch.Tensor
    H_exact: torch.Tensor
    H_autograd: torch.Tensor
    H_hvp: torch.Tensor
    max_err: float
    pattern: np.ndarray
    pattern_ok: bool
    num_zero: int


def verify_example(ex: LinearExample, *, seed: int = 0, theta=None) -> ExampleCheck:
    """Exact Hessian, two numeric Hessians at a random point, and the graph's prediction.

    Args:
        ex: the example.
        seed: seed of the random point (``N(0, 1)`` entries) when ``theta`` is not given.
        theta: the point.

    Returns:
        An :class:`ExampleCheck`.
    """
    from ..core.hessian import full_hessian, hessian_reference

    check_type("ex", ex, LinearExample, _EXAMPLE)
    theta = random_point(ex, seed=seed) if theta is None else as_finite_float64("theta", theta)
    H = symbolic_hessian(ex)
    exact = hessian_at(ex, theta)
    f = torch_loss(ex)
    auto = hessian_reference(f, theta)
    hvp_h = full_hessian(f, theta)
    err = max(float((exact - auto).abs().max()), float((exact - hvp_h).abs().max()))
    support = symbolic_support(H)
    pattern = predicted_pattern(ex)
    return ExampleCheck(
        H,
        theta,
        exact,
        auto,
        hvp_h,
        err,
        pattern,
        bool((support == (pattern > 0)).all()),
        int((~support).sum()),
    )
