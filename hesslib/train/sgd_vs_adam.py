r"""SGD (with momentum) against Adam on a real network, each with its learning rate tuned.

The comparison behind "Why Transformers Need Adam" (§1, §2.3, App. D): train the same network
from the same initialisation on the same mini-batches with SGD with momentum (Algorithm 1 of
the paper, PyTorch's ``SGD(momentum=0.9)``) and with Adam(W) (Algorithm 2, PyTorch's
defaults), each at the best learning rate of a small grid, and compare the losses. Gradient
clipping (global norm) is optional and applies to both, as in the paper's language tasks
(its footnote 3: "SGD in NLP tasks essentially refers to clipped SGD").

* :func:`train_run` — one run: one optimiser, one learning rate, one seed (the seed fixes
  the initialisation *and* the sequence of mini-batches, so two optimisers with the same seed
  see exactly the same batches);
* :func:`lr_grid_search` — every optimiser over its grid, over several seeds; the learning
  rate is chosen by the median (over the tuning seeds) of the final evaluation loss;
* :func:`seed_spread` and :func:`verdict` — a difference is called only where it exceeds the
  spread over seeds (every seed of one side beats every seed of the other).

A run whose loss becomes non-finite stops and reports ``inf`` from then on — never NaN.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..core.checks import as_float64, check_callable, check_positive_int, check_type
from ..core.data import Dataset
from ..core.device import make_generator, single_thread
from ..core.losses import loss_fn

__all__ = [
    "GridSearch",
    "OPTIMIZERS",
    "Run",
    "SeedSpread",
    "lr_grid_search",
    "sample_batch",
    "seed_spread",
    "steps_to_reach",
    "train_run",
    "verdict",
]

#: The optimisers :func:`train_run` knows (PyTorch's implementations).
OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True, eq=False)
class Run:
    """One training run.

    Attributes:
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        lr: learning rate.
        seed: seed of the initialisation and of the mini-batch sequence.
        steps: the steps at which the model was evaluated, ``0`` first.
        losses: evaluation loss at those steps (``inf`` from a divergence on).
        accuracy: accuracy at the end on the test data (the evaluation data if there is no
            test set); 0 after a divergence.
        model: the trained model.
    """

    optimizer: str
    lr: float
    seed: int
    steps: tuple[int, ...]
    losses: tuple[float, ...]
    accuracy: float
    model: nn.Module | None = None

    @property
    def final(self) -> float:
        """The last evaluation loss."""
        return self.losses[-1]


def sample_batch(data: Dataset, batch_size: int, gen: torch.Generator):
    """``batch_size`` samples drawn uniformly with replacement (Algorithm 1, line 3).

    Token windows (``y`` of shape ``(N·T,)`` for ``X`` of shape ``(N, T)``) keep each
    window's targets together.
    """
    idx = torch.randint(0, data.N, (batch_size,), generator=gen).to(data.X.device)
    if data.y.shape[0] == data.N:
        return data.X[idx], data.y[idx]
    return data.X[idx], data.y.reshape(data.N, -1)[idx].reshape(-1)


def _check_task(make_model: object, train: object, evaluate: object) -> None:
    """Raise unless ``make_model`` is callable and ``train``, ``evaluate`` are Datasets."""
    check_callable("make_model", make_model, "a function seed -> model")
    check_type("train", train, Dataset, "a Dataset")
    check_type("evaluate", evaluate, Dataset, "a Dataset")


def _optimizer(name: str, params, lr: float, momentum: float, weight_decay: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def _evaluate(net: nn.Module, data: Dataset, lfn) -> tuple[float, float]:
    with torch.no_grad():
        logits = net(data.X)
        value = float(lfn(logits, data.y))
        acc = float((logits.argmax(-1) == data.y).to(torch.float64).mean())
    return (value, acc) if math.isfinite(value) else (math.inf, 0.0)


def train_run(
    make_model: Callable[[int], nn.Module],
    train: Dataset,
    evaluate: Dataset,
    *,
    optimizer: str,
    lr: float,
    steps: int,
    batch_size: int,
    seed: int = 0,
    test: Dataset | None = None,
    eval_every: int | None = None,
    clip: float | None = None,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    loss: str = "ce",
) -> Run:
    """Train ``make_model(seed)`` for ``steps`` mini-batch steps.

    Args:
        make_model: ``seed -> model``; called once, the model is not shared.
        train: the training data; batches by :func:`sample_batch` from a generator seeded
            with ``seed``, so every optimiser and learning rate sees the same batches.
        evaluate: data on which the loss (and accuracy) is measured at the checkpoints.
        optimizer: one of :data:`OPTIMIZERS`.
        lr: learning rate (> 0).
        steps: number of mini-batch steps.
        batch_size: samples per step.
        seed: seed of the model and of the batches.
        test: data on which the final accuracy is measured (default ``evaluate``).
        eval_every: evaluate every this many steps (default: only at 0 and ``steps``).
        clip: clip the gradient's global norm to this value before each step (``None``: no
            clipping).
        momentum: SGD's momentum ``β1`` (Algorithm 1; PyTorch's dampening 0).
        weight_decay: weight decay (coupled for SGD/Adam, decoupled for AdamW).
        loss: ``"ce"`` or ``"mse"``.
    """
    _check_task(make_model, train, evaluate)
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    every = steps if eval_every is None else check_positive_int("eval_every", eval_every)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    net = make_model(seed)
    opt = _optimizer(optimizer, net.parameters(), lr, momentum, weight_decay)
    lfn = loss_fn(loss)
    gen = make_generator(seed)
    marks, losses = [0], [_evaluate(net, evaluate, lfn)[0]]
    with single_thread(train.X.device):
        for t in range(1, steps + 1):
            X, y = sample_batch(train, batch_size, gen)
            value = lfn(net(X), y)
            if not torch.isfinite(value):
                break
            opt.zero_grad(set_to_none=True)
            value.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            if t % every == 0 or t == steps:
                val = _evaluate(net, evaluate, lfn)[0]
                marks.append(t)
                losses.append(val)
                if not math.isfinite(val):
                    break
    marks, losses = _pad_diverged(marks, losses, steps, every)
    acc = _evaluate(net, test if test is not None else evaluate, lfn)[1]
    acc = acc if math.isfinite(losses[-1]) else 0.0
    return Run(optimizer, float(lr), int(seed), tuple(marks), tuple(losses), acc, net)


def _pad_diverged(marks, losses, steps, every):
    """The checkpoints of a full run; after a divergence the missing losses are ``inf``."""
    want = list(range(0, steps + 1, every))
    if want[-1] != steps:
        want.append(steps)
    return want, losses + [math.inf] * (len(want) - len(losses))


@dataclass(frozen=True, eq=False)
class GridSearch:
    """All runs of :func:`lr_grid_search`.

    Attributes:
        runs: every run, in the order made.
        tune_seeds: the seeds on which the learning rates were compared.
        select: ``"loss"`` (smallest final loss) or ``"accuracy"`` (largest final accuracy).
    """

    runs: tuple[Run, ...]
    tune_seeds: tuple[int, ...]
    select: str = "loss"

    def grid(self, optimizer: str) -> list[float]:
        """The learning rates tried for ``optimizer``, ascending."""
        return sorted({r.lr for r in self.runs if r.optimizer == optimizer})

    def runs_at(self, optimizer: str, lr: float) -> list[Run]:
        """The runs of ``optimizer`` at ``lr``, by seed."""
        found = [r for r in self.runs if r.optimizer == optimizer and r.lr == lr]
        return sorted(found, key=lambda r: r.seed)

    def tuning_score(self, optimizer: str, lr: float) -> float:
        """Median over the tuning seeds of the final loss (or of minus the final accuracy):
        smaller is better; ``inf`` without runs."""
        runs = [r for r in self.runs_at(optimizer, lr) if r.seed in self.tune_seeds]
        vals = [r.final if self.select == "loss" else -r.accuracy for r in runs]
        return statistics.median(vals) if vals else math.inf

    def best_lr(self, optimizer: str) -> float:
        """The grid's learning rate with the smallest :meth:`tuning_score` (ties: smaller)."""
        grid = self.grid(optimizer)
        if not grid:
            raise ValueError(f"no runs of optimizer {optimizer!r}")
        return min(grid, key=lambda lr: (self.tuning_score(optimizer, lr), lr))

    def best(self, optimizer: str) -> list[Run]:
        """The runs at the best learning rate, one per seed."""
        return self.runs_at(optimizer, self.best_lr(optimizer))

    def finals(self, optimizer: str) -> list[float]:
        """Final losses at the best learning rate, one per seed."""
        return [r.final for r in self.best(optimizer)]

    def accuracies(self, optimizer: str) -> list[float]:
        """Final accuracies at the best learning rate, one per seed."""
        return [r.accuracy for r in self.best(optimizer)]


def lr_grid_search(
    make_model: Callable[[int], nn.Module],
    train: Dataset,
    evaluate: Dataset,
    *,
    grids: Mapping[str, Sequence[float]],
    seeds: Sequence[int],
    tune_seeds: int | None = None,
    select: str = "loss",
    progress: Callable | None = None,
    **run_options,
) -> GridSearch:
    """Every optimiser of ``grids`` at every learning rate of its grid, then more seeds.

    The learning rates are compared on the first ``tune_seeds`` seeds (default: all); the
    remaining seeds are run at each optimiser's best learning rate only (to spend the budget
    on the spread rather than on the grid).

    Args:
        make_model, train, evaluate: as :func:`train_run`.
        grids: ``optimizer -> learning rates``.
        seeds: seeds of the runs (at least one).
        tune_seeds: how many of ``seeds`` compare the learning rates.
        select: ``"loss"`` — the best learning rate has the smallest median final loss;
            ``"accuracy"`` — the largest median final accuracy (the paper's MLP experiment).
        progress: optional wrapper of an iterable (e.g. ``tqdm``).
        **run_options: passed to :func:`train_run` (``steps``, ``batch_size``, ``clip`` …).
    """
    _check_task(make_model, train, evaluate)
    seeds = [int(s) for s in seeds]
    if select not in ("loss", "accuracy"):
        raise ValueError(f"select must be 'loss' or 'accuracy', got {select!r}")
    if not seeds or not grids:
        raise ValueError("seeds and grids must be non-empty")
    n_tune = len(seeds) if tune_seeds is None else check_positive_int("tune_seeds", tune_seeds)
    tune, rest = seeds[:n_tune], seeds[n_tune:]
    wrap = progress or (lambda it, **kw: it)
    jobs = [(o, float(lr), s) for o, grid in grids.items() for lr in grid for s in tune]
    runs = [
        train_run(make_model, train, evaluate, optimizer=o, lr=lr, seed=s, **run_options)
        for o, lr, s in wrap(jobs, desc="grid")
    ]
    partial = GridSearch(tuple(runs), tuple(tune), select)
    extra = [(o, partial.best_lr(o), s) for o in grids for s in rest]
    runs += [
        train_run(make_model, train, evaluate, optimizer=o, lr=lr, seed=s, **run_options)
        for o, lr, s in wrap(extra, desc="seeds")
    ]
    return GridSearch(tuple(runs), tuple(tune), select)


def steps_to_reach(run: Run, target: float) -> float:
    """The first checkpoint step at which ``run``'s loss is at most ``target`` (``inf`` if
    never): how long the run takes to reach a given loss, e.g. another optimiser's final one."""
    for t, value in zip(run.steps, run.losses):
        if value <= target:
            return float(t)
    return math.inf


@dataclass(frozen=True)
class SeedSpread:
    """Values over seeds: their median and range.

    Attributes:
        values: one value per seed.
    """

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def lo(self) -> float:
        return min(self.values)

    @property
    def hi(self) -> float:
        return max(self.values)

    @property
    def rel_spread(self) -> float:
        """``(hi − lo) / |median|``: the range relative to the median (0 for one seed)."""
        return (self.hi - self.lo) / abs(self.median) if self.median else math.inf


def seed_spread(values: Sequence[float]) -> SeedSpread:
    """:class:`SeedSpread` of one value per seed (at least one, none NaN)."""
    t = as_float64("values", values)
    if t.ndim != 1 or t.numel() == 0 or bool(t.isnan().any()):
        raise ValueError(f"values must be a non-empty sequence without NaN, got {values!r}")
    return SeedSpread(tuple(t.tolist()))


def verdict(
    a: Sequence[float],
    b: Sequence[float],
    *,
    names: tuple[str, str] = ("a", "b"),
    higher_is_better: bool = False,
) -> str:
    """Which side is better, called only beyond the spread over seeds.

    Returns ``"<a> better"`` when every value of ``a`` is better than every value of ``b``
    (lower, or higher with ``higher_is_better``), ``"<b> better"`` in the opposite case, and
    ``"no gap beyond the seed spread"`` when the ranges overlap. (With 3 seeds a side,
    separated ranges arise by chance with probability 1/10 when both sides come from one
    distribution.)
    """
    A, B = seed_spread(a), seed_spread(b)
    if higher_is_better:
        A, B = seed_spread([-x for x in A.values]), seed_spread([-x for x in B.values])
    if A.hi < B.lo:
        return f"{names[0]} better"
    if B.hi < A.lo:
        return f"{names[1]} better"
    return "no gap beyond the seed spread"
