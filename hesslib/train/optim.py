r"""The optimisers of "Why Transformers Need Adam", §3, on block-diagonal quadratics.

The problems ``min_w ½ wᵀ H w`` with block-diagonal ``H`` are built by
:mod:`hesslib.train.quadratics`. Four optimisers are compared at equal condition number
``κ = λ_max(H) / λ_min(H)``:

* GD with the optimal constant step ``η = 2 / (μ + L)``: the loss contracts asymptotically by
  ``((κ − 1)/(κ + 1))²`` per step;
* blockwise GD (BGD) with ``η_l = 2 / (μ_l + L_l)`` in block ``l``:
  ``max_l ((κ_l − 1)/(κ_l + 1))²``;
* Adam with ``β1 = 0``, ``ε = 0``, no bias correction, ``v_0 = g_0²`` and ``β2 = 1`` (frozen
  coordinate-wise steps, eq. (2) of the paper) or ``β2 < 1`` (eq. (3));
* the same Adam with *one* second moment per block, ``v_l = mean_{i ∈ l} g_i²`` — the idea behind
  Adam-mini (one learning rate per block): its state is ``B`` numbers instead of ``P``.

All runs are deterministic and return the relative loss gap ``L(w_t) / L(w_0)`` per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..core.blocks import BlockLayout
from ..core.checks import (
    check_callable,
    check_matrix,
    check_positive_int,
    check_real,
    check_type,
)
from ..core.device import make_generator, single_thread
from .quadratics import BlockQuadratic

__all__ = [
    "adam_flat",
    "adam_quadratic",
    "best_lr",
    "blockwise_gd",
    "compare_optimizers",
    "gd",
    "measured_rate",
    "optimizer_state_numel",
    "OptRun",
    "predicted_rate",
]


@dataclass(frozen=True, eq=False)
class OptRun:
    """Relative loss gap ``L(w_t)/L(w_0)`` for ``t = 0 … T`` and the step size used.

    Attributes:
        name: optimiser.
        gaps: ``(T + 1,)`` relative loss gaps (``inf`` after a divergence).
        lr: the (global) step size.
    """

    name: str
    gaps: torch.Tensor
    lr: float

    @property
    def final(self) -> float:
        return float(self.gaps[-1])


def _check_problem(problem: object) -> BlockQuadratic:
    """Raise ``TypeError`` unless ``problem`` is a :class:`BlockQuadratic`."""
    return check_type("problem", problem, BlockQuadratic, "a BlockQuadratic (block_quadratic)")


def _init_point(problem: BlockQuadratic, w0, seed: int) -> torch.Tensor:
    if w0 is not None:
        w = torch.as_tensor(w0, dtype=torch.float64).clone()
        if w.shape != (problem.dim,):
            raise ValueError(f"w0 must have shape ({problem.dim},), got {tuple(w.shape)}")
        return w
    return torch.randn(problem.dim, generator=make_generator(seed), dtype=torch.float64)


def _run(problem, w0, steps, update, k: int) -> torch.Tensor:
    """Iterate ``W ← update(W, G, t)`` on ``k`` copies of ``w0`` (one column per step size);
    return the relative loss gaps ``(steps + 1, k)``, ``inf`` from the first divergence on."""
    W = w0[:, None].repeat(1, k)  # (d, k)
    L0 = problem.loss(W)  # (k,)
    gaps = torch.empty(steps + 1, k, dtype=torch.float64)
    gaps[0] = 1.0
    with single_thread():
        for t in range(steps):
            W = update(W, problem.H @ W, t)
            gaps[t + 1] = problem.loss(W) / L0
    bad = ~torch.isfinite(gaps) | (gaps > 1e12)
    return gaps.masked_fill(bad.cummax(0).values, math.inf)


def gd(
    problem: BlockQuadratic, steps: int, *, lr: float | None = None, w0=None, seed: int = 0
) -> OptRun:
    """Gradient descent, by default with the optimal constant step ``2/(μ + L)``."""
    _check_problem(problem)
    steps = check_positive_int("steps", steps)
    lr = 2.0 / (problem.mu + problem.L) if lr is None else check_real("lr", lr, positive=True)
    gaps = _run(problem, _init_point(problem, w0, seed), steps, lambda W, G, t: W - lr * G, 1)
    return OptRun("GD", gaps[:, 0], lr)


def _per_coordinate(layout: BlockLayout, values: Sequence[float]) -> torch.Tensor:
    return torch.repeat_interleave(
        torch.tensor(values, dtype=torch.float64), torch.tensor(layout.sizes)
    )


def blockwise_gd(problem: BlockQuadratic, steps: int, *, w0=None, seed: int = 0) -> OptRun:
    """GD with the optimal step ``2/(μ_l + L_l)`` in each block (BGD, Theorem 1)."""
    _check_problem(problem)
    steps = check_positive_int("steps", steps)
    eta = _per_coordinate(problem.layout, [2.0 / float(e[0] + e[-1]) for e in problem.eigenvalues])
    gaps = _run(
        problem, _init_point(problem, w0, seed), steps, lambda W, G, t: W - eta[:, None] * G, 1
    )
    return OptRun("blockwise GD", gaps[:, 0], float("nan"))


def adam_quadratic(
    problem: BlockQuadratic,
    steps: int,
    *,
    lr,
    beta2: float = 1.0,
    per_block: bool = False,
    w0=None,
    seed: int = 0,
):
    r"""Adam with ``β1 = 0``, ``ε = 0``, no bias correction and ``v_0 = g_0²`` (eqs. (2)–(3)).

    ``w_{t+1} = w_t − η g_t / √v_t`` with ``v_t = β2 v_{t−1} + (1 − β2) g_t²``; ``β2 = 1``
    freezes the steps at ``η / |g_0|``. With ``per_block=True``, ``v`` holds one number per
    block, ``mean_{i∈l} g_i²`` (one learning rate per block, the Adam-mini idea).

    Args:
        problem: the quadratic.
        steps: iterations.
        lr: one step size, or a sequence of step sizes run side by side (a grid search).
        beta2: ``β2 ∈ [0, 1]``.
        per_block: one second moment per block instead of per coordinate.
        w0: start point (default standard Gaussian from ``seed``, as in the paper).
        seed: seed of the start point.

    Returns:
        An :class:`OptRun` for a scalar ``lr``, a list of them for a sequence.
    """
    _check_problem(problem)
    steps = check_positive_int("steps", steps)
    if not 0 <= beta2 <= 1:
        raise ValueError(f"beta2 must be in [0, 1], got {beta2}")
    scalar = isinstance(lr, (int, float))
    lrs = torch.tensor([lr] if scalar else list(lr), dtype=torch.float64)  # (k,)
    if lrs.numel() == 0 or not bool((lrs > 0).all()):
        raise ValueError("lr must be positive (a number or a non-empty sequence)")
    layout = problem.layout
    sizes = torch.tensor(layout.sizes)
    owner = torch.repeat_interleave(torch.arange(layout.num_blocks), sizes)  # (d,)

    def second(G):  # (d, k) -> (d, k) or (B, k)
        G2 = G * G
        if not per_block:
            return G2
        return (
            torch.zeros(layout.num_blocks, G.shape[1], dtype=torch.float64).index_add_(0, owner, G2)
            / sizes[:, None]
        )

    w0 = _init_point(problem, w0, seed)
    state = {"v": second(problem.grad(w0)[:, None].repeat(1, lrs.numel()))}

    def update(W, G, t):
        if t > 0 and beta2 < 1:
            state["v"] = beta2 * state["v"] + (1 - beta2) * second(G)
        v = state["v"][owner] if per_block else state["v"]
        step = torch.where(v > 0, G / v.clamp(min=1e-300).sqrt(), torch.zeros_like(G))
        return W - lrs * step

    gaps = _run(problem, w0, steps, update, lrs.numel())
    label = f"Adam{'-mini' if per_block else ''} (β2={beta2:g})"
    runs = [OptRun(label, gaps[:, i], float(lrs[i])) for i in range(lrs.numel())]
    return runs[0] if scalar else runs


def best_lr(runs: Sequence[OptRun]) -> OptRun:
    """Grid search: the run with the smallest final gap (ties: the smaller step)."""
    if len(runs) == 0:
        raise ValueError("runs must be non-empty")
    return min(runs, key=lambda r: (r.final, r.lr))


def compare_optimizers(
    problem: BlockQuadratic, steps: int, *, lrs: Sequence[float], seed: int = 0
) -> dict[str, OptRun]:
    """The five runs of chapter 06 from one start point: GD and blockwise GD with their optimal
    steps; Adam (β2 = 1 and 0.999) and one-v-per-block Adam (β2 = 1) with their best step in
    ``lrs`` (:func:`best_lr`)."""
    return {
        "GD": gd(problem, steps, seed=seed),
        "blockwise GD": blockwise_gd(problem, steps, seed=seed),
        "Adam, β2 = 1": best_lr(adam_quadratic(problem, steps, lr=lrs, beta2=1.0, seed=seed)),
        "Adam, β2 = 0.999": best_lr(adam_quadratic(problem, steps, lr=lrs, beta2=0.999, seed=seed)),
        "Adam-mini, β2 = 1": best_lr(
            adam_quadratic(problem, steps, lr=lrs, per_block=True, seed=seed)
        ),
    }


def measured_rate(gaps: torch.Tensor, *, floor: float = 1e-24, tail: float = 0.5) -> float:
    """Per-step contraction ``ρ`` of the loss gap: ``exp`` of the least-squares slope of
    ``log gap`` against ``t`` over the last ``tail`` fraction of the steps above ``floor``."""
    g = torch.as_tensor(gaps, dtype=torch.float64)
    ok = torch.isfinite(g) & (g > floor)
    n = int(ok.nonzero().max()) + 1 if bool(ok.any()) else 0
    if n < 3:
        raise ValueError("need at least 3 finite steps above the floor to fit a rate")
    t0 = int(n * (1 - tail))
    t = torch.arange(t0, n, dtype=torch.float64)
    y = g[t0:n].log()
    slope = float(((t - t.mean()) * (y - y.mean())).sum() / ((t - t.mean()) ** 2).sum())
    return math.exp(slope)


def predicted_rate(kappa: float) -> float:
    """Asymptotic loss contraction of GD with the optimal step: ``((κ − 1)/(κ + 1))²``."""
    check_real("kappa", kappa, minimum=1)
    return ((kappa - 1) / (kappa + 1)) ** 2


def adam_flat(
    loss: Callable[[torch.Tensor], torch.Tensor],
    theta0: torch.Tensor,
    *,
    lr: float,
    steps: int,
    layout: BlockLayout | torch.Tensor | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Full-batch Adam (bias-corrected) on a flat parameter vector, per coordinate or with one
    second moment per block (the Adam-mini idea): ``v_b = EMA of mean_{i∈b} g_i²``.

    Args:
        loss: scalar function of the flat parameters (e.g. from :func:`hesslib.flat_loss`).
        theta0: start ``(P,)``.
        lr: learning rate.
        steps: number of steps.
        layout: blocks sharing one second moment: a :class:`~hesslib.BlockLayout` (contiguous
            blocks), or a long tensor ``(P,)`` of block ids ``0 … B−1`` (any partition, e.g.
            :func:`hesslib.nets.adam_mini_blocks`); ``None``: per coordinate, i.e. Adam.
        betas: ``(β1, β2)``.
        eps: ``ε``.

    Returns:
        ``(losses (steps + 1,), theta, state_numel)``; ``state_numel`` counts the numbers the
        optimiser stores (``m`` and ``v``).
    """
    check_callable("loss", loss, "a function of the flat parameters")
    check_matrix("theta0", theta0, ndim=1, nonempty=True)
    check_real("lr", lr, positive=True)
    steps = check_positive_int("steps", steps)
    b1, b2 = betas
    theta = theta0.detach().clone()
    m = torch.zeros_like(theta)
    if layout is None:
        v = torch.zeros_like(theta)
        owner = None
    else:
        owner = _block_owner(layout, theta)
        num_blocks = int(owner.max()) + 1
        v = torch.zeros(num_blocks, dtype=theta.dtype, device=theta.device)
        sizes = torch.bincount(owner, minlength=num_blocks).to(theta.dtype)
        if bool((sizes == 0).any()):
            raise ValueError("block ids must use every id 0 … B−1")
    losses = torch.empty(steps + 1, dtype=torch.float64)
    grad_fn = torch.func.grad_and_value(loss)
    with single_thread():
        for t in range(1, steps + 1):
            g, val = grad_fn(theta)
            losses[t - 1] = float(val)
            m = b1 * m + (1 - b1) * g
            g2 = g * g if owner is None else torch.zeros_like(v).index_add_(0, owner, g * g) / sizes
            v = b2 * v + (1 - b2) * g2
            vhat = (v if owner is None else v[owner]) / (1 - b2**t)
            theta = theta - lr * (m / (1 - b1**t)) / (vhat.sqrt() + eps)
    losses[steps] = float(loss(theta))
    return losses, theta, m.numel() + v.numel()


def _block_owner(layout: BlockLayout | torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The block id of each coordinate of ``theta`` ``(P,)`` (see :func:`adam_flat`)."""
    if isinstance(layout, BlockLayout):
        if layout.num_params != theta.numel():
            raise ValueError(
                f"layout covers {layout.num_params} parameters, theta has {theta.numel()}"
            )
        owner = torch.repeat_interleave(torch.arange(layout.num_blocks), torch.tensor(layout.sizes))
    else:
        check_type("layout", layout, torch.Tensor, "a BlockLayout, a tensor of block ids or None")
        owner = layout.cpu()
        if owner.shape != theta.shape or owner.dtype != torch.long or int(owner.min()) < 0:
            raise ValueError(f"block ids must be a long tensor of shape {tuple(theta.shape)}")
    return owner.to(theta.device)


def optimizer_state_numel(layout, method: str) -> int:
    """Numbers an optimiser keeps for a parameter vector split into blocks.

    Args:
        layout: a :class:`~hesslib.BlockLayout`, or a ``(P, B)`` pair of counts.
        method: ``"sgd"`` 0, ``"momentum"`` ``P``, ``"adam"`` ``2P`` (``m`` and ``v``),
            ``"adam-mini"`` ``P + B`` (``m`` per coordinate, ``v`` per block).
    """
    if isinstance(layout, BlockLayout):
        P, B = layout.num_params, layout.num_blocks
    elif isinstance(layout, tuple | list) and len(layout) == 2:
        P, B = (check_positive_int("layout", x) for x in layout)
    else:
        raise TypeError(f"layout must be a BlockLayout or a (P, B) pair of counts, got {layout!r}")
    table = {"sgd": 0, "momentum": P, "adam": 2 * P, "adam-mini": P + B}
    if method not in table:
        raise ValueError(f"method must be one of {sorted(table)}, got {method!r}")
    return table[method]
