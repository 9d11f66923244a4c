r"""How fast :func:`hesslib.train_adam` is: steps per second against the textbook loop.

The textbook way to run Adam on a module is a module forward, ``backward()`` and
``torch.optim.Adam`` (:func:`textbook_adam_speed`). :func:`train_adam` replaces all three for
the book's ReLU MLPs (a hand-written forward/backward in a transposed, cache-chunked layout and
Adam on one flat buffer); :func:`compare_adam_speed` times the two on the same problem,
interleaved, so that chapter 03 can state the speed-up it relies on.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from ..core.checks import check_dtype, check_positive_int, check_real, check_type
from ..core.losses import loss_fn
from .adam import train_adam

__all__ = [
    "compare_adam_speed",
    "textbook_adam_speed",
]


def textbook_adam_speed(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "ce",
    steps: int = 20,
    lr: float = 1e-3,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Steps per second of the textbook loop (module forward, ``backward()``, ``torch.optim.Adam``).

    The baseline :func:`train_adam` is compared with; runs on a copy of ``model`` in ``dtype``
    after one warm-up step.
    """
    check_type("model", model, nn.Module, "a torch.nn.Module")
    check_positive_int("steps", steps)
    check_real("lr", lr, positive=True)
    check_dtype("dtype", dtype)
    work = copy.deepcopy(model).to(dtype)
    Xt = X.to(dtype)
    lfn = loss_fn(loss)
    opt = torch.optim.Adam(work.parameters(), lr=lr)
    t0 = 0.0
    for t in range(steps + 1):
        if t == 1:
            t0 = time.perf_counter()
        opt.zero_grad()
        lfn(work(Xt), y).backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def compare_adam_speed(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "ce",
    steps: int = 30,
    repeats: int = 3,
) -> tuple[float, float]:
    """Best-of-``repeats`` steps/s of :func:`train_adam` and of the textbook loop, interleaved.

    On a shared machine a single timing mostly measures the neighbours; alternating the two
    loops and keeping each one's best run compares them under the same conditions.

    Returns:
        ``(train_adam steps/s, textbook steps/s)``, both in float32.
    """
    check_type("model", model, nn.Module, "a torch.nn.Module")
    check_positive_int("steps", steps)
    check_positive_int("repeats", repeats)
    fast, slow = 0.0, 0.0
    for _ in range(repeats):
        res = train_adam(model, X, y, steps=steps, loss=loss, progress=False)
        fast = max(fast, res.steps_per_s)
        slow = max(slow, textbook_adam_speed(model, X, y, loss=loss, steps=steps))
    return fast, slow
