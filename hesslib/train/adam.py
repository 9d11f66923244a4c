r"""Deterministic full-batch Adam for the book's ReLU networks, with checkpoints.

Chapter 03 trains the one-hidden-layer net of the talk's Gaussian setting (N = 5000,
d = C = 500, m = 8) for thousands of full-batch steps and looks at the exact Hessian at a few
checkpoints. The training itself is cheap in FLOPs (five thin GEMMs of ``N × d × m``
multiply-adds each), so its cost is set by how well those GEMMs run. For the ReLU MLPs of the
book (:class:`~hesslib.LinearNet`, :class:`~hesslib.OneHiddenNet`, :class:`~hesslib.DeepNet`)
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
loop is measured by :mod:`hesslib.adam_speed`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.checks import check_labels, check_loss, check_matrix, check_positive_int
from ..core.losses import loss_fn
from .mlp_grad import MLPGrad, autograd_grad, mlp_names

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
    check_positive_int("steps", steps)
    if not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive finite number, got {lr}")
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
    check_positive_int("steps", steps)
    out = {max(1, round(f * steps)) if f > 0 else 0 for f in fractions}
    if any(not 0 <= f <= 1 for f in fractions):
        raise ValueError(f"fractions must lie in [0, 1], got {list(fractions)}")
    if extra_log:
        out |= {int(round(s)) for s in torch.logspace(0, math.log10(steps), extra_log).tolist()}
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# Hand-written forward/backward of a bias-free ReLU MLP, f(x) = W_L relu(… relu(W_1 x)).


def _float64_copy(model: nn.Module, theta: torch.Tensor) -> nn.Module:
    out = copy.deepcopy(model).to(torch.float64)
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(theta.to(torch.float64), out.parameters())
    return out


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
            :class:`~hesslib.DeepNet` (fast path), or any module (autograd path).
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
        ValueError: bad steps, learning rate, schedule, checkpoint steps or method.
    """
    check_positive_int("steps", steps)
    check_loss(loss)
    check_matrix("X", X)
    params = list(model.parameters())
    if not params:
        raise ValueError("model has no parameters to train")
    C = getattr(model, "num_classes", None)
    check_labels(y, X.shape[0], C if isinstance(C, int) else int(y.max()) + 1)
    ck_steps = sorted(set(int(s) for s in checkpoints))
    if ck_steps and (ck_steps[0] < 0 or ck_steps[-1] > steps):
        raise ValueError(f"checkpoints must lie in [0, {steps}], got {list(checkpoints)}")
    if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
        raise ValueError(f"betas must lie in [0, 1), got {betas}")
    if method not in ("auto", "mlp", "autograd"):
        raise ValueError(f"method must be 'auto', 'mlp' or 'autograd', got {method!r}")
    names = mlp_names(model)
    if method == "mlp" and names is None:
        raise ValueError(
            f"method='mlp' needs a LinearNet, OneHiddenNet or DeepNet, got {type(model).__name__}"
        )
    use_mlp = names is not None and method != "autograd"
    lrs = lr_schedule(lr, steps, schedule=schedule, warmup=warmup, min_lr=min_lr)

    device = X.device
    Xt = X.to(dtype)
    work = copy.deepcopy(model).to(device=device, dtype=dtype)
    if use_mlp:
        pdict = dict(work.named_parameters())
        theta = torch.cat([pdict[n].detach().reshape(-1) for n in names])
        order = [n for n, _ in model.named_parameters()]
        if order != names:  # MLPGrad needs forward order = named_parameters order
            raise ValueError(f"parameter order {order} differs from the forward order {names}")
        grad_fn = MLPGrad([pdict[n].shape for n in names], Xt, y, loss)
    else:
        theta = torch.nn.utils.parameters_to_vector(work.parameters()).detach()
        grad_fn = autograd_grad(work, Xt, y, loss)
    theta = theta.clone()
    g = torch.zeros_like(theta)
    m1 = torch.zeros_like(theta)
    m2 = torch.zeros_like(theta)
    losses = torch.empty(steps + 1, dtype=dtype, device=device)
    b1, b2 = betas
    lr_list = lrs.tolist()
    log_every = log_every or max(1, steps // 100)

    from tqdm.auto import tqdm

    taken: list[Checkpoint] = []

    def take(step: int, value: float | None = None) -> None:
        m64 = _float64_copy(model, theta)
        f64 = float(loss_fn(loss)(m64(X.to(torch.float64)), y)) if value is None else value
        record = callback(step, m64) if callback is not None else None
        taken.append(Checkpoint(step, f64, m64, record))

    prev_threads = torch.get_num_threads()
    if threads is None:
        small = X.shape[0] * theta.numel() < 2**25
        threads = 1 if device.type == "cpu" and small else prev_threads
    check_positive_int("threads", threads)
    bar = tqdm(total=steps, desc=desc or "Adam", disable=not progress, mininterval=0.5)
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            seconds, first = _adam_loop(
                grad_fn,
                theta,
                (g, m1, m2),
                losses,
                lr_list,
                (b1, b2),
                eps,
                ck_steps,
                take,
                bar,
                log_every,
                device,
            )
    finally:
        torch.set_num_threads(prev_threads)
        bar.close()
    losses64 = losses.to(torch.float64).cpu()
    if not bool(torch.isfinite(losses64).all()):
        raise FloatingPointError("training diverged (non-finite loss); lower lr")
    return TrainResult(
        losses64,
        lrs,
        tuple(taken),
        seconds,
        (steps - 1) / max(seconds - first, 1e-12) if steps > 1 else 1 / max(seconds, 1e-12),
        "mlp" if use_mlp else "autograd",
    )


def _adam_loop(
    grad_fn, theta, buffers, losses, lr_list, betas, eps, ck_steps, take, bar, log_every, device
) -> tuple[float, float]:
    """The update loop of :func:`train_adam`; returns ``(seconds, seconds of the first step)``."""
    g, m1, m2 = buffers
    b1, b2 = betas
    steps = len(lr_list)
    seconds, first = 0.0, 0.0

    def sync() -> None:  # honest timings on an accelerator
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    ck_iter = iter(ck_steps)
    next_ck = next(ck_iter, None)
    t0 = time.perf_counter()
    for t in range(steps + 1):
        if t == next_ck:
            sync()
            seconds += time.perf_counter() - t0
            take(t)
            next_ck = next(ck_iter, None)
            t0 = time.perf_counter()
        losses[t] = grad_fn(theta, g)
        if t == steps:
            break
        # Adam, as torch.optim.Adam (foreach=False) computes it
        k = t + 1
        m1.lerp_(g, 1 - b1)
        m2.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (m2.sqrt() / math.sqrt(1 - b2**k)).add_(eps)
        theta.addcdiv_(m1, denom, value=-lr_list[t] / (1 - b1**k))
        if t == 0:  # the first step pays one-time costs (thread pools, kernels): not timed
            sync()
            first = seconds + time.perf_counter() - t0
        if k % log_every == 0 or k == steps:
            bar.update(k - bar.n)
            bar.set_postfix(loss=f"{float(losses[t]):.4f}", refresh=False)
    sync()
    seconds += time.perf_counter() - t0
    return seconds, first
