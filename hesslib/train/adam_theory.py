r"""Assumption 1 and Theorem 2 of "Why Transformers Need Adam" (§3.3): Adam's factor ``r``.

On ``L(w) = ½ wᵀ H w`` with ``H = diag(H_1, …, H_L)``, Adam with ``β1 = 0``, ``β2 = 1``,
``ε = 0`` and no bias correction is ``w ← w − η D⁻¹ H w`` with the frozen diagonal
``D = diag(|g_0|)``, ``g_0 = H w_0`` (eq. (2)). Assumption 1 bounds the first gradient in
each block by the block's largest eigenvalue ``λ_{l,1}``:

.. math:: C_{l,1}\,\lambda_{l,1} \le |[g_0]_{l,i}| \le C_{l,2}\,\lambda_{l,1},

so the tightest constants are ``C_{l,1} = min_i |g_{l,i}| / λ_{l,1}`` and
``C_{l,2} = max_i |g_{l,i}| / λ_{l,1}``. Theorem 2 states the per-step contraction
``L(w_{t+1}) ≤ max_l (1 − 1/(r κ_l)) L(w_t)`` with ``r = max_l (C_{l,2}/C_{l,1})²``
(:attr:`AdamConstants.r`), for ``η = min_l C_{l,1}`` (so the proof's step (∗) holds).

With that single ``η``, the proof's inequality (19) bounds the ratio of cost-to-go to
improvement in block ``l`` by ``C_{l,2}² κ_l / min_k C_{k,1}²``; passing to ``r`` in (20)
replaces ``min_k C_{k,1}`` by ``C_{l,1}``, which is not implied when the blocks' constants
differ. What the argument delivers is the factor ``r' = (max_l C_{l,2} / min_l C_{l,1})² ≥ r``
(:attr:`AdamConstants.r_proof`). Both are computed here and the bounds checked numerically
(:func:`theorem2_check`).

:func:`preconditioned_kappas` gives the condition number of ``D_l⁻¹ H_l`` per block (the
paper reports 3.9 κ_1, 14.1 κ_2, 4.2 κ_3 for case 3, averaged over 1000 trials), and
:func:`r_trials` the distribution of ``r`` over random starts and rotations (the paper:
``r ≤ 100`` with probability ≥ 2/3 in case 3). :func:`quadratic_report` runs the
optimisers of :mod:`hesslib.train.optim` on one problem and gathers all of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..core.checks import check_callable, check_positive_int, check_type
from ..core.device import make_generator
from .optim import OptRun, compare_optimizers, measured_rate, predicted_rate
from .quadratics import BlockQuadratic

__all__ = [
    "AdamConstants",
    "QuadraticReport",
    "RTrials",
    "Theorem2Check",
    "adam_constants",
    "preconditioned_kappas",
    "quadratic_report",
    "r_trials",
    "theorem2_check",
]

_PROBLEM = "a BlockQuadratic (from block_quadratic or paper_quadratic)"


@dataclass(frozen=True)
class AdamConstants:
    """The constants of Assumption 1 for one start point.

    Attributes:
        C1: ``C_{l,1} = min_i |g_{l,i}| / λ_{l,1}`` per block, ``(L,)``.
        C2: ``C_{l,2} = max_i |g_{l,i}| / λ_{l,1}`` per block, ``(L,)``.
        kappas: block condition numbers ``κ_l``, ``(L,)``.
        kappa: condition number of ``H``.
    """

    C1: torch.Tensor
    C2: torch.Tensor
    kappas: torch.Tensor
    kappa: float

    @property
    def r(self) -> float:
        """The paper's ``r = max_l (C_{l,2}/C_{l,1})²``."""
        return float(((self.C2 / self.C1) ** 2).max())

    @property
    def r_proof(self) -> float:
        """``r' = (max_l C_{l,2} / min_l C_{l,1})²``: the factor the proof gives for one ``η``."""
        return float((self.C2.max() / self.C1.min()) ** 2)

    @property
    def step(self) -> float:
        """Theorem 2's step size ``η = min_l C_{l,1}``."""
        return float(self.C1.min())

    def complexity(self, *, proof: bool = False) -> float:
        """``r · max_l κ_l`` (or ``r' · max_l κ_l``): Adam beats GD's ``κ`` when it is smaller."""
        return (self.r_proof if proof else self.r) * float(self.kappas.max())

    def rate_bound(self, *, proof: bool = False) -> float:
        """Theorem 2's contraction ``1 − 1/(r max_l κ_l)`` (or with ``r'``)."""
        return 1.0 - 1.0 / self.complexity(proof=proof)


def adam_constants(problem: BlockQuadratic, w0: torch.Tensor) -> AdamConstants:
    """The tightest constants of Assumption 1 at the start point ``w0`` ``(d,)``."""
    check_type("problem", problem, BlockQuadratic, _PROBLEM)
    w0 = torch.as_tensor(w0, dtype=torch.float64)
    if w0.shape != (problem.dim,):
        raise ValueError(f"w0 must have shape ({problem.dim},), got {tuple(w0.shape)}")
    g = problem.grad(w0).abs()
    C1, C2 = [], []
    for b, e in enumerate(problem.eigenvalues):
        gl = g[problem.layout.offsets[b] : problem.layout.offsets[b + 1]]
        top = float(e[-1])
        C1.append(float(gl.min()) / top)
        C2.append(float(gl.max()) / top)
    if min(C1) <= 0:
        raise ValueError("a coordinate of the first gradient is 0: Assumption 1 fails (C_l1 = 0)")
    kappas = torch.tensor(problem.block_kappas, dtype=torch.float64)
    return AdamConstants(
        torch.tensor(C1, dtype=torch.float64),
        torch.tensor(C2, dtype=torch.float64),
        kappas,
        problem.kappa,
    )


def preconditioned_kappas(problem: BlockQuadratic, w0: torch.Tensor) -> torch.Tensor:
    """``κ(D_l⁻¹ H_l)`` per block, ``(L,)``, with ``D = diag(|H w0|)``.

    ``D_l⁻¹ H_l`` is similar to the symmetric ``D_l^{-1/2} H_l D_l^{-1/2}``, whose extreme
    eigenvalues give the condition number.
    """
    check_type("problem", problem, BlockQuadratic, _PROBLEM)
    w0 = torch.as_tensor(w0, dtype=torch.float64)
    g = problem.grad(w0).abs()
    out = []
    for b in range(problem.layout.num_blocks):
        sl = slice(problem.layout.offsets[b], problem.layout.offsets[b + 1])
        s = g[sl].rsqrt()
        e = torch.linalg.eigvalsh(s[:, None] * problem.H[sl, sl] * s[None, :])
        out.append(float(e[-1] / e[0]))
    return torch.tensor(out, dtype=torch.float64)


@dataclass(frozen=True)
class Theorem2Check:
    """Adam (β2 = 1) at Theorem 2's step, against the theorem's per-step bound.

    Attributes:
        constants: the :class:`AdamConstants` of the start point.
        gaps: relative loss gaps ``L(w_t)/L(w_0)``, ``(T + 1,)``.
        worst_ratio: the largest per-step ratio ``L(w_{t+1})/L(w_t)`` observed.
    """

    constants: AdamConstants
    gaps: torch.Tensor
    worst_ratio: float

    @property
    def holds(self) -> bool:
        """Every step contracts at least as fast as ``1 − 1/(r max κ_l)`` (paper's ``r``)."""
        return self.worst_ratio <= self.constants.rate_bound() + 1e-12

    @property
    def holds_proof(self) -> bool:
        """The same with the proof's ``r'``."""
        return self.worst_ratio <= self.constants.rate_bound(proof=True) + 1e-12


def theorem2_check(problem: BlockQuadratic, w0: torch.Tensor, steps: int) -> Theorem2Check:
    """Run ``w ← w − η D⁻¹ H w`` with ``η = min_l C_{l,1}`` and compare each step with the bound.

    Steps whose loss has fallen below ``1e-200`` of the start are not compared (the ratio of
    two underflowing numbers means nothing).
    """
    check_type("problem", problem, BlockQuadratic, _PROBLEM)
    steps = check_positive_int("steps", steps)
    const = adam_constants(problem, w0)
    w = torch.as_tensor(w0, dtype=torch.float64).clone()
    D = problem.grad(w).abs()
    L0 = float(problem.loss(w))
    gaps = [1.0]
    for _ in range(steps):
        w = w - const.step * problem.grad(w) / D
        gaps.append(float(problem.loss(w)) / L0)
    g = torch.tensor(gaps, dtype=torch.float64)
    ok = g[:-1] > 1e-200
    ratios = g[1:][ok] / g[:-1][ok]
    return Theorem2Check(const, g, float(ratios.max()) if ratios.numel() else 0.0)


@dataclass(frozen=True)
class RTrials:
    """``r`` and ``κ(D_l⁻¹H_l)/κ_l`` over random trials.

    Attributes:
        r: the paper's ``r`` per trial, ``(n,)``.
        r_proof: ``r'`` per trial, ``(n,)``.
        kappa_factor: ``κ(D_l⁻¹ H_l) / κ_l`` per trial and block, ``(n, L)``.
    """

    r: torch.Tensor
    r_proof: torch.Tensor
    kappa_factor: torch.Tensor

    def fraction_below(self, bound: float, *, proof: bool = False) -> float:
        """Fraction of trials with ``r ≤ bound`` (or ``r' ≤ bound``)."""
        vals = self.r_proof if proof else self.r
        return float((vals <= bound).to(torch.float64).mean())


def r_trials(
    make_problem: Callable[[int], BlockQuadratic], trials: int, *, seed: int = 0
) -> RTrials:
    """Draw ``trials`` problems (``make_problem(seed_k)``, e.g. new rotations) and standard
    Gaussian start points, and collect ``r``, ``r'`` and the preconditioned condition numbers.
    """
    check_callable("make_problem", make_problem, "a function seed -> BlockQuadratic")
    trials = check_positive_int("trials", trials)
    gen = make_generator(seed)
    r, rp, kf = [], [], []
    for k in range(trials):
        problem = make_problem(seed * 100003 + k)
        check_type("make_problem", problem, BlockQuadratic, f"a function returning {_PROBLEM}")
        w0 = torch.randn(problem.dim, generator=gen, dtype=torch.float64)
        c = adam_constants(problem, w0)
        r.append(c.r)
        rp.append(c.r_proof)
        kf.append(preconditioned_kappas(problem, w0) / c.kappas)
    return RTrials(
        torch.tensor(r, dtype=torch.float64),
        torch.tensor(rp, dtype=torch.float64),
        torch.stack(kf),
    )


@dataclass(frozen=True, eq=False)
class QuadraticReport:
    """The five optimisers of :func:`hesslib.train.compare_optimizers` on one quadratic, their
    measured rates, the predicted rates of GD (``κ``) and blockwise GD (``max κ_l``), and the
    constants of Assumption 1 at the common start point with Theorem 2's check."""

    problem: BlockQuadratic
    runs: dict[str, OptRun]
    rate: dict[str, float]
    predicted: tuple[float, float]
    constants: AdamConstants
    check: Theorem2Check

    def speedup(self, name: str) -> float:
        """E-folds of the loss gap per step, relative to GD's: ``ln ρ / ln ρ_GD``."""
        return math.log(self.rate[name]) / math.log(self.rate["GD"])


def quadratic_report(
    problem: BlockQuadratic, steps: int, *, lrs: Sequence[float], seed: int = 0
) -> QuadraticReport:
    """Run and measure one quadratic from the standard Gaussian start point of ``seed``."""
    check_type("problem", problem, BlockQuadratic, _PROBLEM)
    runs = compare_optimizers(problem, steps, lrs=lrs, seed=seed)
    w0 = torch.randn(problem.dim, generator=make_generator(seed), dtype=torch.float64)
    pred = (
        predicted_rate(problem.kappa),
        max(predicted_rate(k) for k in problem.block_kappas),
    )
    return QuadraticReport(
        problem,
        runs,
        {name: measured_rate(r.gaps) for name, r in runs.items()},
        pred,
        adam_constants(problem, w0),
        theorem2_check(problem, w0, steps),
    )
