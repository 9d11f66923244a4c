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
accuracy); elsewhere (the chapter-06 GPT and CNN) the fastest of three batched HVPs and of
three pass widths, measured once per architecture: forward-over-reverse (``vmap(jvp(grad))``,
curvlinops' method), a batched backward through the gradient's graph (``is_grads_batched``),
and ``vmap`` of the VJP of ``grad`` — both of the latter keep the gradient's graph for the next
call, and the VJP's batching rules avoid the per-direction loops that autograd's batched
backward falls back to for convolutions, GELU and layer norm (the CNN: 6.8 k operator calls
per 32 HVPs, against 165 k). For dense directions these are all near the floor of the method:
an HVP is about two gradients' work (a tangent forward and a tangent backward), and 32 HVPs of
the GPT in float32 take about 2.5 gradients of a batch 32 times larger; the winner changes
with the dtype and the machine's mood, so it is measured rather than assumed. Block spectra
need only the diagonal blocks, which :mod:`hesslib.core.block_hvp` gets for a fraction of that
work.

**Memory.** Chunk sizes come from a budget that counts the intermediates
(:mod:`hesslib.core.workspace`); a Hessian whose result and smallest chunk of work do not fit is
refused with both byte counts before anything large is allocated.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.func import grad, hessian, jvp, vjp, vmap

from .checks import check_matrix
from .flat import FlatLoss, flat_loss
from .head_hessian import head_terms
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

ScalarFn = Callable[[torch.Tensor], torch.Tensor]
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


def _work_per_direction(f: ScalarFn, theta: torch.Tensor, structured: bool = True) -> int:
    """Bytes of work of one HVP direction: the forward's intermediates × the measured factor."""
    if structured and isinstance(f, FlatLoss) and _state(f, theta)["head_hvp"]:
        return _state(f, theta)["terms"].hvp_bytes()
    A = _state(f, theta)["bytes"] if isinstance(f, FlatLoss) else forward_bytes(f, theta)
    return HVP_BYTES_PER_FORWARD * A + 3 * theta.numel() * theta.element_size()


def _gradient_graph(f: ScalarFn, theta: torch.Tensor):
    """``(t, ∇f(t))`` with the graph of the gradient kept for second derivatives."""
    t = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        g = torch.autograd.grad(f(t), t, create_graph=True)[0]
    return t, g


def _reverse_over_reverse(t: torch.Tensor, g: torch.Tensor):
    """``V (P, k) -> H V``: one batched backward through the gradient's graph
    (``is_grads_batched``), which is kept for the next call."""

    def mv(V: torch.Tensor) -> torch.Tensor:
        if not g.requires_grad:  # the gradient does not depend on theta: H = 0
            return torch.zeros_like(V)
        if V.shape[1] == 1:  # one direction: no vmap (1.8x on the chapter-06 GPT)
            return torch.autograd.grad(g, t, V[:, 0], retain_graph=True)[0][:, None]
        HV = torch.autograd.grad(g, t, V.T, is_grads_batched=True, retain_graph=True)[0]
        return HV.T  # (P, k)

    return mv


def _forward_over_reverse(f: ScalarFn, theta: torch.Tensor):
    """``V (P, k) -> H V``: ``vmap`` of ``jvp(grad(f))``, recording no autograd graph."""
    batched = vmap(lambda u: jvp(grad(f), (theta,), (u,))[1], in_dims=1, out_dims=1)
    return torch.no_grad()(batched)


def _vjp_of_grad(f: ScalarFn, theta: torch.Tensor):
    """``V (P, k) -> H V``: ``vmap`` of the VJP of ``grad(f)`` at ``theta`` (``H`` is
    symmetric). The VJP keeps the gradient's graph like :func:`_reverse_over_reverse`, but
    batches through functorch's rules, which cover convolutions without a per-direction loop."""
    _, pullback = vjp(grad(f), theta)
    return torch.no_grad()(vmap(lambda u: pullback(u)[0], in_dims=1, out_dims=1))


#: The pass each architecture measured fastest, per process: ``signature -> (method, width)``.
_FASTEST: dict[tuple, tuple[str, int]] = {}

#: Directions per pass the tuner tries. Narrower passes keep a direction block's activations in
#: cache (the chapter-06 CNN in float64 runs 1.1–1.2× faster in passes of 8 than of 32); wider
#: ones make fewer, larger GEMMs (the GPT in float32 prefers 32).
_WIDTHS = (8, 16, 32)


def _signature(f: FlatLoss, theta: torch.Tensor) -> tuple:
    return (type(f.model).__qualname__, f.shapes, tuple(f.X.shape), f.X.dtype, f.loss,
            theta.dtype, theta.device.type)  # fmt: skip


def _in_passes(mv, V: torch.Tensor, width: int) -> torch.Tensor:
    """``mv`` over the columns of ``V`` in passes of at most ``width`` directions."""
    if V.shape[1] <= width:
        return mv(V)
    return torch.cat([mv(V[:, i : i + width]) for i in range(0, V.shape[1], width)], dim=1)


def _tuned(f: FlatLoss, theta: torch.Tensor, state: dict):
    """The fastest batched HVP and pass width for the architecture: three methods × the widths
    of ``_WIDTHS`` (up to the block's width) timed on (up to 32 columns of) the first block of
    at least four directions — untimed warm-up, one round over every pair, four more over the
    three best and forward-over-reverse in one pass, best of each; another pair wins only if it
    is at least 10 % faster than that one — and remembered for the architecture (model class,
    parameter and input shapes, dtypes, device). The winner depends on the model and the dtype:
    see ``benchmarks/bench_peers.py`` (HVPs per second on the chapter-06 GPT and CNN)."""
    builders = {"rr": lambda: _reverse_over_reverse(*_gradient_graph(f, theta)),
                "vjp": lambda: _vjp_of_grad(f, theta),
                "fwd": lambda: _forward_over_reverse(f, theta)}  # fmt: skip
    methods = state.setdefault("methods", {})  # built once per theta (a graph each)

    def method(name: str):
        if name not in methods:
            methods[name] = builders[name]()
        return methods[name]

    def mv(V: torch.Tensor) -> torch.Tensor:
        if "method" not in state and _signature(f, theta) in _FASTEST:
            state["method"] = _FASTEST[_signature(f, theta)]
        if "method" in state or V.shape[1] < 4:
            name, width = state.get("method", ("rr", V.shape[1]))
            return _in_passes(method(name), V, width)
        probe = V[:, :32]
        widths = [w for w in _WIDTHS if w < probe.shape[1]] + [probe.shape[1]]
        pairs = [(name, w) for name in builders for w in dict.fromkeys(widths)]
        seconds, out = dict.fromkeys(pairs, float("inf")), {}
        for name in builders:
            method(name)(probe[:, :2])  # first-use costs are not the method's
        default = ("fwd", probe.shape[1])  # forward-over-reverse in one pass, as curvlinops
        for rnd in range(5):  # a run varies by 10-20 % on a busy machine: best of up to five
            top = set(sorted(pairs, key=seconds.get)[:3]) | {default}
            for pair in pairs if rnd == 0 else [p for p in pairs if p in top]:
                t0 = time.perf_counter()
                out[pair] = _in_passes(method(pair[0]), probe, pair[1])
                seconds[pair] = min(seconds[pair], time.perf_counter() - t0)
        best = min(seconds, key=seconds.get)
        if seconds[best] > 0.9 * seconds[default]:  # not clearly faster: no switching on noise
            best = default
        state["method"] = _FASTEST[_signature(f, theta)] = best
        if probe.shape[1] == V.shape[1]:
            return out[best]  # no recomputing
        return _in_passes(method(best[0]), V, best[1])

    return mv


def _hvp_block(
    f: ScalarFn, theta: torch.Tensor, structured: bool = True
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``V (P, k) -> H V (P, k)``: the head's structure where it pays; else, for a flat loss,
    the fastest batched HVP for the architecture (:func:`_tuned`; graphs built once per
    ``theta``); for any other function, reverse-over-reverse."""
    if isinstance(f, FlatLoss):
        state = _state(f, theta)
        if structured and state["head_hvp"]:
            return state["terms"].hvp
        return _tuned(f, theta, state)
    return _reverse_over_reverse(*_gradient_graph(f, theta))


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
    P = theta.shape[0]
    if not isinstance(v, torch.Tensor) or v.ndim not in (1, 2) or v.shape[0] != P:
        shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"v must have shape ({P},) or ({P}, k), got {shape}")
    if v.dtype != theta.dtype:
        raise TypeError(f"v must have theta's dtype {theta.dtype}, got {v.dtype}")
    if not bool(v.isfinite().all()):
        raise ValueError("v contains non-finite values (NaN or inf)")
    V = v.reshape(P, -1)
    mv = _hvp_block(f, theta)
    k = V.shape[1]
    if k > 1:
        k = plan_chunk(
            k,
            per_item=_work_per_direction(f, theta),
            budget=memory_budget(theta.device, max_bytes),
            what=f"a batched HVP of {V.shape[1]} directions",
            device=theta.device,
            max_chunk=64,  # wider passes only add memory: the work is per direction
        )
    HV = torch.cat([mv(V[:, i : i + k]) for i in range(0, V.shape[1], k)], dim=1)
    return HV.reshape(v.shape)


def _hvp_columns(f: ScalarFn, theta: torch.Tensor, chunk_size, max_bytes) -> torch.Tensor:
    """``H`` column block by column block: unit vectors through :func:`_hvp_block`."""
    P, item = theta.shape[0], theta.element_size()
    mv = _hvp_block(f, theta, structured=False)
    per = _work_per_direction(f, theta, structured=False)
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
