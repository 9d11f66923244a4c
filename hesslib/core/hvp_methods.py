r"""The batched Hessian-vector products of the general path, and the tuner that picks one.

Four ways to compute ``H V`` for a block of directions ``V (P, k)`` of a flat loss:

* **rr** — a batched backward through the gradient's graph (``is_grads_batched``), the graph
  built once per point and kept;
* **vjp** — ``vmap`` of the VJP of ``grad``: the same graph, but functorch's batching rules,
  which cover convolutions, GELU and layer norm without the per-direction loops autograd's
  batched backward falls back to (the chapter-06 CNN: 6.8 k operator calls per 32 HVPs, against
  165 k);
* **fwd** — forward-over-reverse, ``vmap(jvp(grad))``, no graph kept (curvlinops' method);
* **lin** — the same, traced once per point by ``torch.func.linearize``: every computation
  that does not depend on the direction (the forward and backward passes, and the products of
  their values inside the second-derivative formulas) is done once at tracing and kept as a
  constant, so each call runs only the direction's share. On chapter 06's GPT at ``default``,
  32 directions, with the same numbers to the last bit: 1.16–1.19× the rate of **fwd** and of
  curvlinops in float32 and float64 when timed side by side alone; in ``bench_peers.py``'s run
  (9 interleaved repeats, float32) 129 HVPs/s against curvlinops' 102 (per repeat 1.06–1.55×).
  The tracing costs seconds (3 s for that GPT in float32, 5 s in float64), so it only pays on
  long runs at one point; and it fails on some models (the CNN: a view of a non-contiguous
  tensor), which then keep their method.

For dense directions the differences are constant factors: every method does the same
arithmetic per direction (a tangent forward and a tangent backward, about two gradients' work),
and which is fastest changes with the model, the dtype and the pass width (narrow passes keep
activations in cache, wide ones make larger GEMMs), so
:func:`tuned` measures them once per architecture. Block spectra need only the diagonal blocks,
which :mod:`hesslib.core.block_hvp` gets for a fraction of this work.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import torch
from torch.func import grad, jvp, linearize, vjp, vmap

from .flat import FlatLoss

ScalarFn = Callable[[torch.Tensor], torch.Tensor]


def gradient_graph(f: ScalarFn, theta: torch.Tensor):
    """``(t, ∇f(t))`` with the graph of the gradient kept for second derivatives."""
    t = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        g = torch.autograd.grad(f(t), t, create_graph=True)[0]
    return t, g


def reverse_over_reverse(t: torch.Tensor, g: torch.Tensor):
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


def forward_over_reverse(f: ScalarFn, theta: torch.Tensor):
    """``V (P, k) -> H V``: ``vmap`` of ``jvp(grad(f))``, recording no autograd graph."""
    batched = vmap(lambda u: jvp(grad(f), (theta,), (u,))[1], in_dims=1, out_dims=1)
    return torch.no_grad()(batched)


def vjp_of_grad(f: ScalarFn, theta: torch.Tensor):
    """``V (P, k) -> H V``: ``vmap`` of the VJP of ``grad(f)`` at ``theta`` (``H`` is
    symmetric). The VJP keeps the gradient's graph like :func:`reverse_over_reverse`, but
    batches through functorch's rules, which cover convolutions without a per-direction loop."""
    _, pullback = vjp(grad(f), theta)
    return torch.no_grad()(vmap(lambda u: pullback(u)[0], in_dims=1, out_dims=1))


def linearized(f: ScalarFn, theta: torch.Tensor):
    """``V (P, k) -> H V``: ``vmap`` of the linear map ``torch.func.linearize`` traces from
    ``jvp(grad(f))`` at ``theta`` (raises where the model cannot be traced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the constant folding's notes on its own graph
        _, jfn = linearize(grad(f), theta)
    return torch.no_grad()(vmap(jfn, in_dims=1, out_dims=1))


#: The pass each architecture measured fastest, per process: ``signature -> (method, width)``.
FASTEST: dict[tuple, tuple[str, int]] = {}

#: Directions per pass the tuner tries. Narrower passes keep a direction block's activations in
#: cache (the chapter-06 CNN in float64 runs 1.1–1.2× faster in passes of 8 than of 32); wider
#: ones make fewer, larger GEMMs (the GPT in float32 prefers 32).
WIDTHS = (8, 16, 32)


def signature(f: FlatLoss, theta: torch.Tensor) -> tuple:
    return (type(f.model).__qualname__, f.shapes, tuple(f.X.shape), f.X.dtype, f.loss,
            theta.dtype, theta.device.type)  # fmt: skip


def in_passes(mv, V: torch.Tensor, width: int) -> torch.Tensor:
    """``mv`` over the columns of ``V`` in passes of at most ``width`` directions."""
    if V.shape[1] <= width:
        return mv(V)
    return torch.cat([mv(V[:, i : i + width]) for i in range(0, V.shape[1], width)], dim=1)


#: Per architecture, once measured: ``(seconds to trace, seconds saved per direction)`` of
#: **lin** against the tuned method, or ``None`` where it fails or is not 5 % faster.
LINEARIZED: dict[tuple, tuple[float, float] | None] = {}

#: Seconds of HVPs at one point after which **lin** is first tried on an architecture.
TRY_LINEARIZE_AFTER_S = 10.0


def _try_linearize(f, theta, state: dict, method, V: torch.Tensor) -> None:
    """Measure **lin** on an architecture for the first time: trace it, then time it against
    the tuned method on ``V`` (two rounds alternating, best of each); switch if it is 5 %
    faster and remember the cost and the gain."""
    sig, (name, width) = signature(f, theta), state["method"]
    try:
        t0 = time.perf_counter()
        lin = linearized(f, theta)
        lin(V[:, :2])
        setup = time.perf_counter() - t0
    except Exception:  # noqa: BLE001 - any failure to trace: keep the tuned method
        LINEARIZED[sig] = None
        return
    best = {"lin": float("inf"), name: float("inf")}
    for _ in range(2):
        for key, mv in (("lin", lin), (name, method(name))):
            t0 = time.perf_counter()
            in_passes(mv, V, width)
            best[key] = min(best[key], (time.perf_counter() - t0) / V.shape[1])
    faster = best["lin"] < 0.95 * best[name]
    LINEARIZED[sig] = (setup, best[name] - best["lin"]) if faster else None
    if faster:
        state["methods"]["lin"], state["method"] = lin, ("lin", width)


def _after_call(f, theta, state: dict, method, V: torch.Tensor) -> None:
    """Switch a point to **lin** when it pays. Unknown architecture: try once the point has
    spent :data:`TRY_LINEARIZE_AFTER_S` in HVPs. Known: switch as soon as the time **lin**
    would have saved so far reaches its tracing cost (the ski-rental rule: never more than
    twice the cost of the better choice made in hindsight)."""
    if state["method"][0] == "lin":
        return
    known = LINEARIZED.get(signature(f, theta), "unknown")
    if known == "unknown":
        if state["spent"] >= TRY_LINEARIZE_AFTER_S:
            _try_linearize(f, theta, state, method, V)
    elif known is not None and state["done"] * known[1] >= known[0]:
        try:
            state["methods"]["lin"] = linearized(f, theta)
            state["method"] = ("lin", state["method"][1])
        except Exception:  # noqa: BLE001 - traced before on this architecture; keep the method
            LINEARIZED[signature(f, theta)] = None


def tuned(f: FlatLoss, theta: torch.Tensor, state: dict):
    """The fastest batched HVP and pass width for the architecture: **rr**, **vjp** and
    **fwd** × the widths of :data:`WIDTHS` (up to the block's width) timed on (up to 32 columns
    of) the first block of at least four directions — untimed warm-up, one round over every
    pair, four more over the three best and **fwd** in one pass, best of each; another pair
    wins only if it is at least 10 % faster than that one — and remembered for the
    architecture (model class, parameter and input shapes, dtypes, device). Long runs at one
    point then move to **lin** (:func:`_after_call`). The winner depends on the model and the
    dtype: see ``benchmarks/bench_peers.py`` (HVPs per second on the chapter-06 GPT and CNN)."""
    builders = {"rr": lambda: reverse_over_reverse(*gradient_graph(f, theta)),
                "vjp": lambda: vjp_of_grad(f, theta),
                "fwd": lambda: forward_over_reverse(f, theta)}  # fmt: skip
    methods = state.setdefault("methods", {})  # built once per theta (a graph each)
    state.setdefault("spent", 0.0)  # seconds and directions of HVPs at this point, for
    state.setdefault("done", 0)  # the move to lin (_after_call)

    def method(name: str):
        if name not in methods:
            methods[name] = builders[name]()
        return methods[name]

    def mv(V: torch.Tensor) -> torch.Tensor:
        if "method" not in state and signature(f, theta) in FASTEST:
            state["method"] = FASTEST[signature(f, theta)]
        if "method" in state or V.shape[1] < 4:
            name, width = state.get("method", ("rr", 0))
            t0 = time.perf_counter()
            out = in_passes(method(name), V, width or V.shape[1])
            if "method" in state:
                state["spent"] += time.perf_counter() - t0
                state["done"] += V.shape[1]
                _after_call(f, theta, state, method, V)
            return out
        probe = V[:, :32]
        widths = [w for w in WIDTHS if w < probe.shape[1]] + [probe.shape[1]]
        pairs = [(name, w) for name in builders for w in dict.fromkeys(widths)]
        seconds, out = dict.fromkeys(pairs, float("inf")), {}
        for name in builders:
            method(name)(probe[:, :2])  # first-use costs are not the method's
        default = ("fwd", probe.shape[1])  # forward-over-reverse in one pass, as curvlinops
        for rnd in range(5):  # a run varies by 10-20 % on a busy machine: best of up to five
            top = set(sorted(pairs, key=seconds.get)[:3]) | {default}
            for pair in pairs if rnd == 0 else [p for p in pairs if p in top]:
                t0 = time.perf_counter()
                out[pair] = in_passes(method(pair[0]), probe, pair[1])
                seconds[pair] = min(seconds[pair], time.perf_counter() - t0)
        best = min(seconds, key=seconds.get)
        if seconds[best] > 0.9 * seconds[default]:  # not clearly faster: no switching on noise
            best = default
        state["method"] = FASTEST[signature(f, theta)] = best
        if probe.shape[1] == V.shape[1]:
            return out[best]  # no recomputing
        return in_passes(method(best[0]), V, best[1])

    return mv
