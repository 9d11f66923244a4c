r"""Block-diagonal quadratics and the optimisers of "Why Transformers Need Adam", §3.

The problem is ``min_w L(w) = ½ wᵀ H w`` (``h = 0``, so ``L* = 0``) with
``H = diag(H_1, …, H_L)``, ``H_l = Q_l Λ_l Q_lᵀ`` and ``Q_l`` Haar-random orthogonal. Four
optimisers are compared at equal condition number ``κ = λ_max(H) / λ_min(H)``:

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

from ._checks import check_positive_int
from .blocks import BlockLayout
from .device import make_generator, single_thread

__all__ = [
    "BlockQuadratic",
    "block_quadratic",
    "paper_quadratic",
    "rescale_spectra",
    "spectrum_quantiles",
    "OptRun",
    "gd",
    "blockwise_gd",
    "adam_quadratic",
    "best_lr",
    "measured_rate",
    "predicted_rate",
    "adam_flat",
    "optimizer_state_numel",
    "compare_optimizers",
]


@dataclass(frozen=True, eq=False)
class BlockQuadratic:
    """``L(w) = ½ wᵀ H w`` with block-diagonal ``H``.

    Attributes:
        H: the dense ``(d, d)`` Hessian.
        eigenvalues: the eigenvalues of each block, ascending, one tensor per block.
        layout: block layout of ``w``.
        name: description for legends.
    """

    H: torch.Tensor
    eigenvalues: tuple[torch.Tensor, ...]
    layout: BlockLayout
    name: str = ""

    @property
    def dim(self) -> int:
        return int(self.H.shape[0])

    @property
    def mu(self) -> float:
        return min(float(e[0]) for e in self.eigenvalues)

    @property
    def L(self) -> float:  # noqa: N802 - the math's name
        return max(float(e[-1]) for e in self.eigenvalues)

    @property
    def kappa(self) -> float:
        """Condition number of ``H``."""
        return self.L / self.mu

    @property
    def block_kappas(self) -> list[float]:
        """Condition number ``κ_l`` of each block."""
        return [float(e[-1] / e[0]) for e in self.eigenvalues]

    def loss(self, w: torch.Tensor) -> torch.Tensor:
        """``½ wᵀ H w`` for ``w`` of shape ``(d,)`` or a batch ``(d, k)`` (→ ``(k,)``)."""
        return 0.5 * (w * (self.H @ w)).sum(0)

    def grad(self, w: torch.Tensor) -> torch.Tensor:
        return self.H @ w


def _haar(n: int, gen: torch.Generator) -> torch.Tensor:
    """A Haar-random ``(n, n)`` orthogonal matrix (QR of a Gaussian with the sign fix)."""
    Z = torch.randn(n, n, generator=gen, dtype=torch.float64)
    Q, R = torch.linalg.qr(Z)
    return Q * torch.sign(torch.diagonal(R))


def block_quadratic(
    eigenvalues: Sequence, *, names: Sequence[str] | None = None, seed: int = 0, name: str = ""
) -> BlockQuadratic:
    """``H = diag(Q_l Λ_l Q_lᵀ)`` from the eigenvalues of each block (Haar ``Q_l``).

    Args:
        eigenvalues: one 1-D sequence of positive eigenvalues per block.
        names: block names (default ``H_1 … H_L``).
        seed: seed of the rotations.
        name: description.

    Raises:
        ValueError: an empty block or a non-positive/non-finite eigenvalue (``H`` must be
            positive definite for the rates to make sense).
    """
    gen = make_generator(seed)
    eigs = []
    for i, e in enumerate(eigenvalues):
        e = torch.as_tensor(e, dtype=torch.float64).flatten().sort().values
        if e.numel() == 0 or not bool(torch.isfinite(e).all()) or float(e[0]) <= 0:
            raise ValueError(f"eigenvalues[{i}] must be non-empty, finite and positive")
        eigs.append(e)
    blocks = []
    for e in eigs:
        Q = _haar(e.numel(), gen)
        Hl = Q @ torch.diag(e) @ Q.T
        blocks.append(0.5 * (Hl + Hl.T))
    names = list(names) if names is not None else [f"H_{i + 1}" for i in range(len(eigs))]
    layout = BlockLayout.from_named_sizes(
        [(n, e.numel()) for n, e in zip(names, eigs, strict=True)]
    )
    return BlockQuadratic(torch.block_diag(*blocks), tuple(eigs), layout, name)


def paper_quadratic(case: int, *, seed: int = 0) -> BlockQuadratic:
    """Cases 3 and 4 of §3.2: three 3×3 blocks, the same nine eigenvalues, ``κ = 2000``.

    Case 3 (heterogeneous): ``{1,2,3}, {99,100,101}, {1998,1999,2000}``;
    case 4 (homogeneous): ``{1,99,1998}, {2,100,1999}, {3,101,2000}``.
    """
    if case == 3:
        eigs = [[1, 2, 3], [99, 100, 101], [1998, 1999, 2000]]
        return block_quadratic(eigs, seed=seed, name="case 3: heterogeneous (synthetic)")
    if case == 4:
        eigs = [[1, 99, 1998], [2, 100, 1999], [3, 101, 2000]]
        return block_quadratic(eigs, seed=seed, name="case 4: homogeneous (synthetic)")
    raise ValueError(f"case must be 3 or 4 (cases 1 and 2 come from measured spectra), got {case}")


def spectrum_quantiles(spectrum, n: int) -> torch.Tensor:
    """``n`` eigenvalues representing an SLQ density: its quantiles at ``(i − ½)/n``.

    Deterministic, unlike sampling; the quantiles of the blurred density follow its bulk and
    its outliers in proportion to their mass.

    Args:
        spectrum: a :class:`~hesslib.spectrum.Spectrum` (``grid`` and ``density``).
        n: number of values.

    Returns:
        ``(n,)`` ascending float64 tensor.
    """
    n = check_positive_int("n", n)
    g, p = spectrum.grid.to(torch.float64), spectrum.density.to(torch.float64).clamp(min=0)
    cdf = torch.cat(
        [torch.zeros(1, dtype=torch.float64), torch.cumsum((p[1:] + p[:-1]) / 2 * torch.diff(g), 0)]
    )
    if float(cdf[-1]) <= 0:
        raise ValueError("the spectrum's density is zero on its grid")
    cdf = cdf / cdf[-1]
    q = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    idx = torch.searchsorted(cdf, q).clamp(1, g.numel() - 1)
    c0, c1 = cdf[idx - 1], cdf[idx]
    t = torch.where(c1 > c0, (q - c0) / (c1 - c0), torch.zeros_like(q))
    return g[idx - 1] + t * (g[idx] - g[idx - 1])


def rescale_spectra(
    spectra: Sequence, *, lo: float = 1.0, hi: float = 2000.0
) -> list[torch.Tensor]:
    """One affine map ``λ ↦ a λ + b`` (``a > 0``) for all blocks, sending the smallest
    eigenvalue of all to ``lo`` and the largest to ``hi`` ("shifting and proportional scaling",
    §3.2): ``κ = hi / lo`` and the blocks keep their relative positions."""
    vals = [torch.as_tensor(s, dtype=torch.float64).flatten() for s in spectra]
    if not vals or any(v.numel() == 0 for v in vals):
        raise ValueError("spectra must be a non-empty list of non-empty tensors")
    if not (0 < lo < hi):
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")
    vmin = min(float(v.min()) for v in vals)
    vmax = max(float(v.max()) for v in vals)
    if not vmax > vmin:
        raise ValueError("all eigenvalues are equal; nothing to rescale")
    a = (hi - lo) / (vmax - vmin)
    return [lo + a * (v - vmin) for v in vals]


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
    steps = check_positive_int("steps", steps)
    lr = 2.0 / (problem.mu + problem.L) if lr is None else float(lr)
    gaps = _run(problem, _init_point(problem, w0, seed), steps, lambda W, G, t: W - lr * G, 1)
    return OptRun("GD", gaps[:, 0], lr)


def _per_coordinate(layout: BlockLayout, values: Sequence[float]) -> torch.Tensor:
    return torch.repeat_interleave(
        torch.tensor(values, dtype=torch.float64), torch.tensor(layout.sizes)
    )


def blockwise_gd(problem: BlockQuadratic, steps: int, *, w0=None, seed: int = 0) -> OptRun:
    """GD with the optimal step ``2/(μ_l + L_l)`` in each block (BGD, Theorem 1)."""
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
    if not kappa >= 1:
        raise ValueError(f"kappa must be >= 1, got {kappa}")
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
            :func:`hesslib.adam_mini_blocks`); ``None``: per coordinate, i.e. Adam.
        betas: ``(β1, β2)``.
        eps: ``ε``.

    Returns:
        ``(losses (steps + 1,), theta, state_numel)``; ``state_numel`` counts the numbers the
        optimiser stores (``m`` and ``v``).
    """
    steps = check_positive_int("steps", steps)
    b1, b2 = betas
    theta = theta0.detach().clone()
    m = torch.zeros_like(theta)
    if layout is None:
        v = torch.zeros_like(theta)
        owner = None
    else:
        if isinstance(layout, BlockLayout):
            if layout.num_params != theta.numel():
                raise ValueError(
                    f"layout covers {layout.num_params} parameters, theta has {theta.numel()}"
                )
            owner = torch.repeat_interleave(
                torch.arange(layout.num_blocks), torch.tensor(layout.sizes)
            )
        else:
            owner = torch.as_tensor(layout).cpu()
            if owner.shape != theta.shape or owner.dtype != torch.long or int(owner.min()) < 0:
                raise ValueError(f"block ids must be a long tensor of shape {tuple(theta.shape)}")
        owner = owner.to(theta.device)
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


def optimizer_state_numel(layout, method: str) -> int:
    """Numbers an optimiser keeps for a parameter vector split into blocks.

    Args:
        layout: a :class:`~hesslib.BlockLayout`, or a ``(P, B)`` pair of counts.
        method: ``"sgd"`` 0, ``"momentum"`` ``P``, ``"adam"`` ``2P`` (``m`` and ``v``),
            ``"adam-mini"`` ``P + B`` (``m`` per coordinate, ``v`` per block).
    """
    if isinstance(layout, BlockLayout):
        P, B = layout.num_params, layout.num_blocks
    else:
        P, B = (int(x) for x in layout)
    table = {"sgd": 0, "momentum": P, "adam": 2 * P, "adam-mini": P + B}
    if method not in table:
        raise ValueError(f"method must be one of {sorted(table)}, got {method!r}")
    return table[method]
