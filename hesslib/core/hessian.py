r"""Hessian-vector products and exact Hessians of any model and loss, memory-checked.

**The general path.** :func:`full_hessian` of a flat loss (:func:`flat_loss`) whose model ends
in a linear layer — every model of the book and any ``nn.Sequential`` ending in ``nn.Linear``,
found by tracing, no formulas — is assembled by :mod:`hesslib.core.head_hessian`: head × head as
one GEMM over the rows, body × head as batched VJPs of the body, body × body as batched HVPs of
a feature-space surrogate with the loss's exact gradient and Hessian; a random probe checks the
result against an autograd HVP. Anything else gets batched HVP columns.

**Why** (talk's Gaussian setting, N = 5000, d = C = 500, m = 8, P = 8000, CE). An HVP direction
pushes an ``N × C`` logits tangent (2.5 M numbers) through the double derivative of
``log_softmax`` in dozens of memory-bound passes, so batching directions does not help:
``vmap(jvp(grad(f)))`` was 0.41× the per-column loop (the issue's run) and reverse-over-reverse
no better; a per-sample Jacobian route costs :math:`N C P^2` = 1.6e14 multiply-adds. The head is
linear in its weight, so its blocks are Kronecker sums over the rows (GEMMs) and the body's HVPs
see ``N × m`` features instead of the logits. ``benchmarks/bench_peers.py``, one thread of a
loaded 2-core CPU, median of 2: float64 34.5 s (36× the loop's 1243 s; closed form 15.6 s;
curvlinops 0.83×, hessian-eigenthings 0.70× the loop), float32 11.9 s (19× the loop's 222 s),
agreeing with the closed form to 5e-16 in float64. Two batching costs of ``vmap`` are worked
around: a parameter times the data runs as ``(W Xᵀ)ᵀ`` so the batched tangent is the left GEMM
operand (3.6× faster body HVPs), and the per-row ``m × m`` products of the surrogate run as one
batched GEMM (an autograd function with its own vmap rule).

**HVPs** (:func:`hvp`, hence Lanczos, SLQ, top-k) use the head's structure where the logits
dominate the forward pass (Gaussian setting: about eight passes over the logits per direction;
SLQ 10 probes × 80 steps in 26 s against hessian-eigenthings' 68 s, same probes, same
accuracy); elsewhere (the chapter-06 GPT and CNN) the fastest batched HVP and pass width,
measured once per architecture, and for long runs at one point a traced HVP that computes
only the direction's share (:mod:`hesslib.core.hvp_methods` says which and why). Block spectra
need only the diagonal blocks, which :mod:`hesslib.core.block_hvp` gets for a fraction of that
work.

**Memory.** Chunk sizes come from a budget that counts the intermediates
(:mod:`hesslib.core.workspace`); a Hessian whose result and smallest chunk of work do not fit is
refused with both byte counts before anything large is allocated.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.func import hessian

from .checks import check_directions, check_matrix
from .flat import FlatLoss, flat_loss
from .head_hessian import head_terms
from .hvp_methods import ScalarFn, gradient_graph, in_passes, reverse_over_reverse, tuned
from .workspace import (
    HVP_BYTES_PER_FORWARD,
    available_memory,
    check_memory,
    forward_bytes,
    memory_budget,
    plan_chunk,
)

__all__ = [
    "available_memory",
    "check_memory",
    "full_hessian",
    "hessian_loop",
    "hessian_reference",
    "hvp",
    "model_hessian",
]

_METHODS = ("auto", "hvp")


def _state(f: FlatLoss, theta: torch.Tensor) -> dict:
    """What the HVPs of ``f`` at ``theta`` need, computed once while ``theta`` is unchanged:
    the head's terms (``None`` without a linear head), whether HVPs should use them, and the
    bytes of one forward pass."""
    c = f.cache
    if c.get("theta") is theta and c.get("version") == theta._version:
        return c
    c.clear()
    c.update(theta=theta, version=theta._version, bytes=forward_bytes(f.logits, theta))
    terms = c["terms"] = head_terms(f, theta)
    # HVPs through the head's structure pay where the logits dominate the forward pass
    # (Gaussian setting: 3.8x a loop column); where the body does (the chapter-06 GPT and
    # CNN) plain forward-over-reverse is faster (1.2x curvlinops there).
    logits = terms.R * terms.C * theta.element_size() if terms is not None else 0
    c["head_hvp"] = terms is not None and (3 * logits >= c["bytes"] or not terms.body_bytes)
    return c


def work_per_direction(f: ScalarFn, theta: torch.Tensor, structured: bool = True) -> int:
    """Bytes of work of one HVP direction: the forward's intermediates × the measured factor."""
    if structured and isinstance(f, FlatLoss) and _state(f, theta)["head_hvp"]:
        return _state(f, theta)["terms"].hvp_bytes()
    A = _state(f, theta)["bytes"] if isinstance(f, FlatLoss) else forward_bytes(f, theta)
    return HVP_BYTES_PER_FORWARD * A + 3 * theta.numel() * theta.element_size()


def _hvp_block(
    f: ScalarFn, theta: torch.Tensor, structured: bool = True
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``V (P, k) -> H V (P, k)``: the head's structure where it pays; else, for a flat loss,
    the fastest batched HVP for the architecture (:func:`~hesslib.core.hvp_methods.tuned`;
    graphs built once per ``theta``); for any other function, reverse-over-reverse."""
    if isinstance(f, FlatLoss):
        state = _state(f, theta)
        if structured and state["head_hvp"]:
            return state["terms"].hvp
        return tuned(f, theta, state)
    return reverse_over_reverse(*gradient_graph(f, theta))


def _check_point(f: ScalarFn, theta: torch.Tensor) -> None:
    if not callable(f):
        raise TypeError(f"f must be a callable theta -> scalar, got {type(f).__name__}")
    check_matrix("theta", theta, ndim=1)
    if isinstance(f, FlatLoss):
        f.params(theta)  # raises ValueError on a wrong length


def hvp(
    f: ScalarFn, theta: torch.Tensor, v: torch.Tensor, *, max_bytes: int | None = None
) -> torch.Tensor:
    r"""Hessian-vector product(s) :math:`H v` of a scalar function at ``theta``.

    Args:
        f: scalar function of a flat parameter vector (a flat loss from :func:`flat_loss`
            gets the surrogate described in the module docstring).
        theta: point, shape ``(P,)``.
        v: one vector ``(P,)`` or a block of vectors ``(P, k)`` (columns), done in batched
            passes of as many columns as the memory budget allows.
        max_bytes: memory budget for the work (default 80 % of what is free).

    Returns:
        ``H v`` with the shape of ``v`` (and the dtype of ``theta``).
    """
    _check_point(f, theta)
    V = check_directions("v", v, theta)
    mv = _hvp_block(f, theta)
    k = V.shape[1]
    if k > 1:
        k = plan_chunk(
            k,
            per_item=work_per_direction(f, theta),
            budget=memory_budget(theta.device, max_bytes),
            what=f"a batched HVP of {V.shape[1]} directions",
            device=theta.device,
            max_chunk=64,  # wider passes only add memory: the work is per direction
        )
    HV = in_passes(mv, V, k)
    return HV.reshape(v.shape)


def _hvp_columns(f: ScalarFn, theta: torch.Tensor, chunk_size, max_bytes) -> torch.Tensor:
    """``H`` column block by column block: unit vectors through :func:`_hvp_block`."""
    P, item = theta.shape[0], theta.element_size()
    mv = _hvp_block(f, theta, structured=False)
    per = work_per_direction(f, theta, structured=False)
    budget, what = memory_budget(theta.device, max_bytes), f"a dense {P}x{P} Hessian"
    k = plan_chunk(P, per_item=per, budget=budget, fixed=per // HVP_BYTES_PER_FORWARD,
                   result=P * P * item, device=theta.device, what=what,
                   chunk_size=chunk_size, max_chunk=256)  # fmt: skip
    H = torch.empty(P, P, dtype=theta.dtype, device=theta.device)
    for c0 in range(0, P, k):
        c1 = min(P, c0 + k)
        E = torch.zeros(P, c1 - c0, dtype=theta.dtype, device=theta.device)  # (P, k) unit vectors
        E[torch.arange(c0, c1), torch.arange(c1 - c0)] = 1
        H[:, c0:c1] = mv(E)
    return H


def _agrees(f: ScalarFn, theta: torch.Tensor, H: torch.Tensor) -> bool:
    """One random probe: ``H v`` against an autograd HVP of the whole loss."""
    gen = torch.Generator(device=theta.device).manual_seed(0)
    v = torch.randn(theta.shape[0], 1, generator=gen, dtype=theta.dtype, device=theta.device)
    ref = _hvp_block(f, theta, structured=False)(v)
    err = float((H @ v - ref).norm()) / max(float(ref.norm()), torch.finfo(theta.dtype).tiny)
    return err <= torch.finfo(theta.dtype).eps ** 0.5


def full_hessian(
    f: ScalarFn,
    theta: torch.Tensor,
    *,
    chunk_size: int | None = None,
    max_bytes: int | None = None,
    symmetrize: bool = False,
    method: str = "auto",
) -> torch.Tensor:
    """Exact Hessian of ``f`` at ``theta``.

    Args:
        f: scalar function of a flat parameter vector; a flat loss from :func:`flat_loss`
            whose model ends in a linear layer takes the structured path (module docstring).
        theta: point ``(P,)`` (its dtype/device are those of the result).
        chunk_size: at most this many directions per batched HVP (default: as many as the
            memory budget allows, counting intermediates, up to 256).
        max_bytes: memory budget for the ``(P, P)`` result and the work together (default
            80 % of what is free).
        symmetrize: return ``(H + Hᵀ)/2`` (removes round-off asymmetry).
        method: ``"auto"`` (structured where possible) or ``"hvp"`` (batched HVP columns).

    Returns:
        ``H`` of shape ``(P, P)``.

    Raises:
        ValueError: ``theta`` of the wrong length for ``f``'s model, non-finite, or an
            unknown ``method``.
        MemoryError: before allocating, if the result and the work of the smallest chunk do
            not fit, with both byte counts.
    """
    _check_point(f, theta)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    P = theta.shape[0]
    what = f"a dense {P}x{P} Hessian"
    check_memory(P * P * theta.element_size(), what=what, device=theta.device, max_bytes=max_bytes)
    H = None
    terms = _state(f, theta)["terms"] if isinstance(f, FlatLoss) else None
    if method == "auto" and terms is not None:
        H = terms.hessian(max_bytes=max_bytes, chunk_size=chunk_size)
        if not _agrees(f, theta, H):
            warnings.warn("structured Hessian failed its probe check; using batched HVPs")
            H = None
    if H is None:
        H = _hvp_columns(f, theta, chunk_size, max_bytes)
    if symmetrize:
        H = 0.5 * (H + H.T)
    return H


def hessian_reference(
    f: ScalarFn, theta: torch.Tensor, *, max_bytes: int | None = None
) -> torch.Tensor:
    """``torch.func.hessian`` — the reference every closed form is tested against.

    It pushes all ``P`` tangents through the forward pass at once, so it is refused (with the
    bytes) where that work, estimated as in :mod:`hesslib.core.workspace`, would not fit.
    """
    _check_point(f, theta)
    P = theta.shape[0]
    work = HVP_BYTES_PER_FORWARD * forward_bytes(f, theta) * P
    check_memory(P * P * theta.element_size(), what=f"torch.func.hessian ({P}x{P})",
                 device=theta.device, max_bytes=max_bytes, work_bytes=work)  # fmt: skip
    return hessian(f)(theta)


def hessian_loop(f: ScalarFn, theta: torch.Tensor, columns: range | None = None) -> torch.Tensor:
    """The naive method, baseline of the benchmarks: one autograd HVP per column (double
    backward, graph kept), in a Python loop; ``H[:, columns]`` of shape ``(P, len(columns))``
    (default all columns)."""
    columns = range(theta.shape[0]) if columns is None else columns
    t = theta.detach().clone().requires_grad_(True)
    g = torch.autograd.grad(f(t), t, create_graph=True)[0]
    out = torch.empty(theta.shape[0], len(columns), dtype=theta.dtype, device=theta.device)
    for k, i in enumerate(columns):
        out[:, k] = torch.autograd.grad(g[i], t, retain_graph=True)[0]
    return out


def model_hessian(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss: str = "ce",
    **kwargs,
) -> torch.Tensor:
    """Exact Hessian of ``loss(model(X), y)`` w.r.t. all parameters (the general path).

    Keyword arguments go to :func:`full_hessian`.

    Raises:
        ValueError: non-finite ``X`` or parameters (see :func:`flat_loss`).
    """
    f, theta = flat_loss(model, X, y, loss)
    return full_hessian(f, theta, **kwargs)
