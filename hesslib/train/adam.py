r"""Deterministic full-batch Adam for the book's ReLU networks, with checkpoints.

Chapter 03 trains the one-hidden-layer net of the talk's Gaussian setting (N = 5000,
d = C = 500, m = 8) for thousands of full-batch steps and looks at the exact Hessian at a few
checkpoints. The training itself is cheap in FLOPs (five thin GEMMs of ``N × d × m``
multiply-adds each), so its cost is set by how well those GEMMs run. For the ReLU MLPs of the
book (:class:`~hesslib.LinearNet`, :class:`~hesslib.OneHiddenNet`, :class:`~hesslib.nets.DeepNet`)
:func:`train_adam` uses a hand-written forward/backward in a *transposed* layout — activations
are kept as ``(width, N)`` matrices, so every GEMM has a long contiguous inner dimension (on a
CPU with MKL, ``W @ Xᵀ`` ran several times faster than ``X @ Wᵀ`` for ``m = 8`` in our
measurements) — with the samples processed in cache-sized chunks (``X`` is read once per step
and the ``(N, C)`` logits stay in cache), the softmax fused in one kernel, the ``1/N`` folded
into the small gradient matrices, Adam applied to one flat parameter buffer, and no host
synchronisation between steps. Small problems run single-threaded (see ``threads``). Any other
module falls back to ``torch.func.grad_and_value``.

Adam follows ``torch.optim.Adam`` exactly (bias-corrected moments,
``θ ← θ − lr_t/(1−β₁ᵗ) · m_t / (√(v_t/(1−β₂ᵗ)) + ε)``); the tests check the two trajectories
agree. Training runs in ``dtype`` (float32 by default); checkpoints are float64 copies of the
model, on which the exact Hessian is then computed. How much faster this is than the textbook
loop is measured by :mod:`hesslib.train.speed`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core import checks
from ..core.losses import loss_fn
from .mlp_grad import flat_gradient, gradient_path

__all__ = [
    "SCHEDULES",
    "Checkpoint",
    "checkpoint_steps",
    "lr_schedule",
    "train_adam",
    "TrainResult",
]

SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Checkpoint:
    """The model after ``step`` Adam steps.

    Attributes:
        step: number of updates done (0 = initialisation).
        loss: training loss of ``model`` on the full batch, evaluated in float64.
        model: a float64 copy of the model (on the training device).
        record: what the ``callback`` of :func:`train_adam` returned (``None`` without one).
    """

    step: int
    loss: float
    model: nn.Module
    record: Any = None


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train_adam`.

    Attributes:
        losses: ``(steps + 1,)`` float64 CPU tensor; ``losses[t]`` is the loss after ``t``
            updates, computed in the training dtype (``losses[steps]`` by one extra forward).
        lrs: ``(steps,)`` learning rate used at each update.
        checkpoints: one :class:`Checkpoint` per requested step, in increasing order.
        seconds: wall time of the update loop (checkpoint copies and callbacks excluded).
        steps_per_s: updates per second, the first (warm-up) step excluded.
        method: ``"mlp"`` (hand-written forward/backward) or ``"autograd"``.
    """

    losses: torch.Tensor
    lrs: torch.Tensor
    checkpoints: tuple[Checkpoint, ...]
    seconds: float
    steps_per_s: float
    method: str
    extra: dict = field(default_factory=dict)

    def at(self, step: int) -> Checkpoint:
        """The checkpoint taken after ``step`` updates."""
        for ck in self.checkpoints:
            if ck.step == step:
                return ck
        raise ValueError(f"no checkpoint at step {step}; have {[c.step for c in self.checkpoints]}")


def lr_schedule(
    lr: float, steps: int, *, schedule: str = "constant", warmup: int = 0, min_lr: float = 0.0
) -> torch.Tensor:
    r"""Learning rate of each of ``steps`` updates.

    ``cosine``: :math:`\eta_t = \eta_{\min} + \tfrac12(\eta-\eta_{\min})(1+\cos(\pi t/T))` after a
    linear warm-up of ``warmup`` steps (``T = steps − warmup``).

    Returns:
        ``(steps,)`` float64 tensor.
    """
    checks.check_positive_int("steps", steps)
    checks.check_real("lr", lr, positive=True)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not 0 <= warmup < steps:
        raise ValueError(f"warmup must be in [0, steps), got {warmup}")
    t = torch.arange(steps, dtype=torch.float64)
    if schedule == "constant":
        lrs = torch.full((steps,), float(lr), dtype=torch.float64)
    else:
        frac = (t - warmup).clamp(min=0) / max(1, steps - warmup)
        lrs = min_lr + 0.5 * (lr - min_lr) * (1 + torch.cos(math.pi * frac))
    if warmup:
        lrs[:warmup] = lr * (t[:warmup] + 1) / warmup
    return lrs


def checkpoint_steps(
    steps: int, fractions: Sequence[float] = (0.0, 0.01, 0.25, 0.5, 1.0), *, extra_log: int = 0
) -> list[int]:
    """Checkpoint steps at fractions of the run, plus ``extra_log`` log-spaced ones.

    Args:
        steps: length of the run.
        fractions: fractions of ``steps`` (rounded, at least 1 for a positive fraction).
        extra_log: number of additional steps spaced logarithmically in ``[1, steps]``
            (training changes fastest at the start).

    Returns:
        Sorted distinct steps in ``[0, steps]``.
    """
    checks.check_positive_int("steps", steps)
    fr = checks.as_finite_float64("fractions", fractions)
    if fr.ndim != 1 or bool(((fr < 0) | (fr > 1)).any()):
        raise ValueError(f"fractions must be a sequence of numbers in [0, 1], got {fractions!r}")
    out = {max(1, round(f * steps)) if f > 0 else 0 for f in fractions}
    if extra_log:
        out |= {int(round(s)) for s in torch.logspace(0, math.log10(steps), extra_log).tolist()}
    return sorted(out)


def train_adam(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float = 1e-3,
    loss: str = "ce",
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    schedule: str = "constant",
    warmup: int = 0,
    min_lr: float = 0.0,
    checkpoints: Sequence[int] = (),
    callback: Callable[[int, nn.Module], Any] | None = None,
    dtype: torch.dtype = torch.float32,
    method: str = "auto",
    progress: bool = True,
    desc: str | None = None,
    log_every: int | None = None,
    threads: int | None = None,
) -> TrainResult:
    """Full-batch Adam on ``loss(model(X), y)``, deterministic, with float64 checkpoints.

    The model itself is left untouched; the trajectory lives in a flat buffer of ``dtype`` on
    ``X``'s device. Full-batch Adam has no randomness: the same inputs give the same
    trajectory (bit for bit on a given device and thread count).

    Args:
        model: a :class:`~hesslib.LinearNet`, :class:`~hesslib.OneHiddenNet` or
            :class:`~hesslib.nets.DeepNet` (fast path), or any module (autograd path).
        X: inputs ``(N, d)`` on the training device.
        y: labels ``(N,)``.
        steps: number of Adam updates.
        lr: peak learning rate.
        loss: ``"ce"`` or ``"mse"``.
        betas: Adam's ``(β₁, β₂)``.
        eps: Adam's ε.
        schedule: ``"constant"`` or ``"cosine"`` (see :func:`lr_schedule`).
        warmup: linear warm-up steps.
        min_lr: final learning rate of the cosine schedule.
        checkpoints: steps in ``[0, steps]`` after which to copy the model.
        callback: ``callback(step, model64)`` at every checkpoint; its result is stored in
            :attr:`Checkpoint.record` (e.g. a Hessian summary).
        dtype: training dtype (float32 is ~5–10× faster on a CPU than float64).
        method: ``"auto"`` (hand-written MLP path when possible), ``"mlp"`` or ``"autograd"``.
        progress: show a ``tqdm.auto`` bar.
        desc: its label.
        log_every: refresh the bar (one host sync) every this many steps (default ~1 %).
        threads: CPU threads during the run (restored afterwards). Default: one thread when
            ``N · P < 2²⁵`` — every operation is then small, and waking a second thread costs
            more than it saves (on a loaded machine, milliseconds per operation) — otherwise
            the current setting.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: bad steps, learning rate, schedule, checkpoint steps, method or threads.
        TypeError: a wrong type (``model``, ``steps``, ``lr``, ``threads``, ``dtype``).
        FloatingPointError: the loss became non-finite.
    """
    lrs = lr_schedule(lr, steps, schedule=schedule, warmup=warmup, min_lr=min_lr)  # checks steps
    ck_steps, names = _check_run(
        model, X, y, steps=steps, loss=loss, checkpoints=checkpoints, betas=betas, method=method
    )
    checks.check_dtype("dtype", dtype)
    grad_fn, theta = flat_gradient(model, X, y, loss=loss, dtype=dtype, names=names)
    adam = _AdamRun(lrs=lrs.tolist(), betas=betas, eps=eps, checkpoints=ck_steps)
    take = _Checkpointer(model, X, y, loss=loss, callback=callback)
    losses = torch.empty(steps + 1, dtype=dtype, device=X.device)
    log_every = log_every or max(1, steps // 100)
    from tqdm.auto import tqdm

    with (
        _cpu_threads(threads, X=X, numel=theta.numel()),
        tqdm(total=steps, desc=desc or "Adam", disable=not progress, mininterval=0.5) as bar,
        torch.no_grad(),
    ):
        seconds, first = _adam_loop(
            grad_fn, theta, losses, adam, take=take, bar=bar, log_every=log_every
        )
    losses64 = losses.to(torch.float64).cpu()
    if not bool(torch.isfinite(losses64).all()):
        raise FloatingPointError("training diverged (non-finite loss); lower lr")
    rate = (steps - 1) / max(seconds - first, 1e-12) if steps > 1 else 1 / max(seconds, 1e-12)
    used = "autograd" if names is None else "mlp"
    return TrainResult(losses64, lrs, tuple(take.taken), seconds, rate, used)


def _check_run(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    loss: str,
    checkpoints: Sequence[int],
    betas: tuple[float, float],
    method: str,
) -> tuple[list[int], list[str] | None]:
    """Validate the arguments of :func:`train_adam` (see there).

    Returns:
        ``(ck_steps, names)``: the checkpoint steps, sorted and distinct, and the
        :func:`~hesslib.train.mlp_grad.gradient_path` (``None``: autograd).

    Raises:
        ValueError: a bad argument, or ``method="mlp"`` for a model without the fast path.
    """
    checks.check_loss(loss)
    checks.check_type("model", model, nn.Module, "a torch.nn.Module")
    checks.check_matrix("X", X)
    if not list(model.parameters()):
        raise ValueError("model has no parameters to train")
    C = getattr(model, "num_classes", None)
    checks.check_labels(y, X.shape[0], C if isinstance(C, int) else int(y.max()) + 1)
    ck_steps = sorted(set(int(s) for s in checkpoints))
    if ck_steps and (ck_steps[0] < 0 or ck_steps[-1] > steps):
        raise ValueError(f"checkpoints must lie in [0, {steps}], got {list(checkpoints)}")
    if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
        raise ValueError(f"betas must lie in [0, 1), got {betas}")
    return ck_steps, gradient_path(model, method=method)


@contextlib.contextmanager
def _cpu_threads(threads: int | None, *, X: torch.Tensor, numel: int) -> Iterator[None]:
    """Run the block on ``threads`` CPU threads (``None``: 1 for a small problem on a CPU,
    ``N · numel < 2²⁵``, else unchanged), then restore the previous setting.

    Raises:
        ValueError: ``threads`` is not a positive integer.
    """
    prev_threads = torch.get_num_threads()
    if threads is None:
        small = X.shape[0] * numel < 2**25
        threads = 1 if X.device.type == "cpu" and small else prev_threads
    checks.check_positive_int("threads", threads)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)


class _Checkpointer:
    """``take(step, theta)``: appends the float64 :class:`Checkpoint` at ``theta`` to ``taken``."""

    def __init__(self, model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, loss, callback):
        self.model, self.X, self.y, self.loss, self.callback = model, X, y, loss, callback
        self.taken: list[Checkpoint] = []

    def __call__(self, step: int, theta: torch.Tensor) -> None:
        """Copy the model at the flat parameters ``theta`` ``(P,)``, reached after ``step``."""
        m64 = copy.deepcopy(self.model).to(torch.float64)
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(theta.to(torch.float64), m64.parameters())
        f64 = float(loss_fn(self.loss)(m64(self.X.to(torch.float64)), self.y))
        record = self.callback(step, m64) if self.callback is not None else None
        self.taken.append(Checkpoint(step, f64, m64, record))


@dataclass(frozen=True)
class _AdamRun:
    """Adam's settings for one run.

    Attributes:
        lrs: learning rate of each update (``steps`` floats).
        betas: ``(β₁, β₂)``.
        eps: ε.
        checkpoints: sorted distinct steps in ``[0, steps]`` at which to take a checkpoint.
    """

    lrs: list[float]
    betas: tuple[float, float]
    eps: float
    checkpoints: list[int]

    def update(self, theta, g, m1, m2, *, t: int) -> None:
        """Update ``t + 1`` of ``theta`` in place, as ``torch.optim.Adam`` (foreach=False) does it.

        Args:
            theta, g, m1, m2: ``(P,)`` parameters, their gradient, Adam's two moments.
            t: number of updates done before this one.
        """
        b1, b2 = self.betas
        k = t + 1
        m1.lerp_(g, 1 - b1)
        m2.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (m2.sqrt() / math.sqrt(1 - b2**k)).add_(self.eps)
        theta.addcdiv_(m1, denom, value=-self.lrs[t] / (1 - b1**k))


def _adam_loop(
    grad_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    losses: torch.Tensor,
    adam: _AdamRun,
    *,
    take: Callable[[int, torch.Tensor], None],
    bar,
    log_every: int,
) -> tuple[float, float]:
    """The timed update loop of :func:`train_adam` (checkpoints are not timed).

    Args:
        grad_fn: ``grad_fn(theta, grad)`` writes ∇ℓ(θ) ``(P,)`` into ``grad``, returns ℓ(θ).
        theta: ``(P,)`` parameters, updated in place.
        losses: ``(steps + 1,)`` buffer; ``losses[t]`` receives the loss after ``t`` updates.
        adam: learning rates, Adam's constants and the checkpoint steps.
        take: ``take(step, theta)`` at every checkpoint step.
        bar: a ``tqdm`` bar, advanced every ``log_every`` steps (each time a host sync).
        log_every: steps between bar refreshes.

    Returns:
        ``(seconds, seconds of the first step)``.
    """
    g, m1, m2 = (torch.zeros_like(theta) for _ in range(3))  # gradient, Adam's moments
    steps = len(adam.lrs)
    seconds, first = 0.0, 0.0
    ck_iter = iter(adam.checkpoints)
    next_ck = next(ck_iter, None)
    t0 = time.perf_counter()
    for t in range(steps + 1):
        if t == next_ck:
            _sync(theta.device)
            seconds += time.perf_counter() - t0
            take(t, theta)
            next_ck = next(ck_iter, None)
            t0 = time.perf_counter()
        losses[t] = grad_fn(theta, g)
        if t == steps:
            break
        adam.update(theta, g, m1, m2, t=t)
        if t == 0:  # the first step pays one-time costs (thread pools, kernels): not timed
            _sync(theta.device)
            first = seconds + time.perf_counter() - t0
        if (t + 1) % log_every == 0 or t + 1 == steps:
            bar.update(t + 1 - bar.n)
            bar.set_postfix(loss=f"{float(losses[t]):.4f}", refresh=False)
    _sync(theta.device)
    seconds += time.perf_counter() - t0
    return seconds, first


def _sync(device: torch.device) -> None:
    """Wait for ``device`` to finish (honest timings on an accelerator)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
