r"""Hessian-vector products and exact Hessians on several processes with ``torch.distributed``.

The loss is a mean over ``N`` samples. Cut the samples into ``W`` contiguous shards of sizes
``n_0 … n_{W−1}`` (they may differ by one when ``W`` does not divide ``N``); rank ``r`` owns shard
``r`` and the *weighted* shard loss

.. math:: f_r(\theta) = \frac{n_r}{N}\,\frac{1}{n_r}\sum_{n\in S_r}\ell_n(\theta),
    \qquad \sum_r f_r = f, \qquad \sum_r \nabla^2 f_r\, V = H V.

So one ``all_reduce`` (sum) of the ranks' ``(P, k)`` blocks of HVPs gives the full-data product
``H V`` on every rank — the *data-parallel* mode. The *probe-parallel* mode instead gives every
rank all the data and a share of the vectors (probes, or columns of ``H``); nothing is exchanged
until the results are gathered.

Everything runs on PyTorch's own runtime: ``torchrun`` starts the processes,
:func:`init_distributed` joins the process group (gloo on CPUs, NCCL on GPUs), and when no
process group exists every function here is the single-process computation (world size 1).
A collective that cannot complete — another rank crashed or stopped — raises
:class:`DistributedError` on the ranks left waiting, after the process-group timeout at the
latest, instead of hanging.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ..core.block_hvp import block_diagonal_hvp
from ..core.checks import check_positive_int, check_real
from ..core.device import default_device
from ..core.flat import FlatLoss, flat_loss
from ..core.hessian import hvp
from ..core.hvp_methods import in_passes
from .rendezvous import wait_for_ranks

__all__ = [
    "all_reduce_sum",
    "chunked_hvp",
    "rank_matvec",
    "DataParallelMatvec",
    "distributed_hvp",
    "DistributedError",
    "init_distributed",
    "rank_and_world_size",
    "shard_range",
    "sharded_loss",
    "shutdown_distributed",
]

MODES = ("data", "probe")
_DEFAULT_TIMEOUT = timedelta(minutes=30)
_RENDEZVOUS_TIMEOUT = timedelta(seconds=60)
_STATE: dict = {"timeout": None}


class DistributedError(RuntimeError):
    """A collective did not complete, or the ranks disagree (raised on the ranks that notice)."""


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ValueError(f"environment variable {name} is not set (launch with torchrun)")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def _seconds(name: str, value: timedelta | float | None, default: timedelta) -> timedelta:
    """A positive duration from a ``timedelta`` or seconds (``None``: ``default``)."""
    if value is None:
        return default
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    return timedelta(seconds=check_real(name, seconds, positive=True))


def init_distributed(
    *,
    backend: str | None = None,
    timeout: timedelta | float | None = None,
    rendezvous_timeout: timedelta | float | None = None,
) -> torch.device:
    """Join the process group that ``torchrun`` describes, or stay single-process.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. Without
    ``WORLD_SIZE`` (a plain ``python`` run) nothing is initialised and every function of this
    module behaves as world size 1. Calling it again returns the same device.

    Every rank first checks in at the rendezvous store and waits at most
    ``rendezvous_timeout`` for the others (:func:`~hesslib.distributed.rendezvous.wait_for_ranks`),
    so a rank that never started is reported in seconds, naming the ranks that arrived.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default NCCL when CUDA GPUs are present, else gloo.
        timeout: how long a collective may wait for the other ranks (``timedelta`` or seconds;
            default 30 min — set it above the time of one Hessian-vector product).
        rendezvous_timeout: how long to wait for every rank to start (default 60 s).

    Returns:
        The device this rank computes on: ``cuda:LOCAL_RANK`` with NCCL, else the CPU.

    Raises:
        ValueError: malformed ``WORLD_SIZE``/``RANK``, an unknown backend, a non-positive
            timeout, or more processes per node than GPUs with NCCL.
        DistributedError: a rank did not arrive within ``rendezvous_timeout``.
    """
    timeout = _seconds("timeout", timeout, _DEFAULT_TIMEOUT)
    rendezvous_timeout = _seconds("rendezvous_timeout", rendezvous_timeout, _RENDEZVOUS_TIMEOUT)
    if dist.is_available() and dist.is_initialized():
        return local_device()
    if "WORLD_SIZE" not in os.environ:
        return default_device()
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed support")
    world_size, rank = _env_int("WORLD_SIZE"), _env_int("RANK")
    if world_size < 1:
        raise ValueError(f"WORLD_SIZE must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK must lie in [0, {world_size}), got {rank}")
    local = _env_int("LOCAL_RANK", rank)
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    device = torch.device("cpu")
    if backend == "nccl":
        if local >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs on this node: "
                "use --nproc-per-node <= the number of GPUs"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    _STATE["timeout"] = timeout
    try:
        store = wait_for_ranks(rank, world_size, rendezvous_timeout)
    except (TimeoutError, ConnectionError) as exc:
        raise DistributedError(str(exc)) from exc
    store.set_timeout(timeout)
    kwargs = {"device_id": device} if backend == "nccl" else {}
    dist.init_process_group(
        backend, store=store, rank=rank, world_size=world_size, timeout=timeout, **kwargs
    )
    return device


def shutdown_distributed() -> None:
    """Leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device() -> torch.device:
    """This rank's device for collectives: ``cuda:<current>`` with NCCL, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def guard(what: str, fn: Callable, *args, **kwargs):
    """Run a collective; turn a backend failure (peer gone, timeout) into a clear error."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # gloo/NCCL raise RuntimeError or DistBackendError
        rank, size = rank_and_world_size()
        text = str(exc).strip().splitlines()
        cause = text[0][:300] if text else type(exc).__name__
        raise DistributedError(
            f"rank {rank} of {size}: {what} did not complete ({cause}). Another rank has most "
            "likely failed or stopped; its own traceback names the cause (process-group "
            f"timeout {_STATE['timeout'] or 'default'})."
        ) from exc


def all_reduce_sum(t: torch.Tensor, *, what: str = "all_reduce") -> torch.Tensor:
    """Sum ``t`` over all ranks in place and return it (identity on one process)."""
    if rank_and_world_size()[1] > 1:
        guard(what, dist.all_reduce, t, op=dist.ReduceOp.SUM)
    return t


def agree(error: BaseException | None, what: str) -> None:
    """Every rank learns whether any rank failed a local check; all raise together."""
    if rank_and_world_size()[1] == 1:
        if error is not None:
            raise error
        return
    msgs: list = [None] * rank_and_world_size()[1]
    guard(what, dist.all_gather_object, msgs, None if error is None else str(error))
    if error is not None:
        raise error
    bad = [(r, m) for r, m in enumerate(msgs) if m is not None]
    if bad:
        r, m = bad[0]
        raise DistributedError(f"rank {r} failed {what}: {m}")


def check_same(what: str, values: tuple[int, ...]) -> None:
    """Raise ``ValueError`` on every rank unless all ranks pass the same integers."""
    rank, size = rank_and_world_size()
    if size == 1:
        return
    mine = torch.tensor(values, dtype=torch.int64, device=local_device())
    everyone = [torch.empty_like(mine) for _ in range(size)]
    guard(f"the consistency check of {what}", dist.all_gather, everyone, mine)
    if any(not torch.equal(e, everyone[0]) for e in everyone):
        seen = ", ".join(f"rank {r}: {tuple(e.tolist())}" for r, e in enumerate(everyone))
        raise ValueError(
            f"{what} differs across ranks ({seen}); every rank must build the same "
            "model (same seed) and call the same function with the same settings"
        )


def check_params(theta: torch.Tensor) -> None:
    """All ranks hold the same parameters (compared through three float64 fingerprints)."""
    check_same("the number of parameters", (theta.numel(),))
    if rank_and_world_size()[1] == 1:
        return
    t = theta.detach().to(torch.float64)
    ramp = torch.linspace(-1.0, 1.0, t.numel(), dtype=torch.float64, device=t.device)
    fp = torch.stack([t.sum(), (t * t).sum(), (t * ramp).sum()]).to(local_device())
    everyone = [torch.empty_like(fp) for _ in range(rank_and_world_size()[1])]
    guard("the parameter check", dist.all_gather, everyone, fp)
    scale = float(everyone[0].abs().max()) + 1e-300
    if any(float((e - everyone[0]).abs().max()) > 1e-12 * scale for e in everyone):
        raise ValueError(
            "the model parameters differ across ranks; build the model with the "
            "same seed on every rank"
        )


def shard_range(
    n: int, *, rank: int | None = None, world_size: int | None = None, what: str = "samples"
) -> range:
    """Contiguous share of ``n`` items for ``rank``: the first ``n mod W`` ranks get one more.

    Args:
        n: number of items (samples, probes, Hessian columns).
        rank, world_size: default :func:`rank_and_world_size`.
        what: the items' name, for the error message.

    Returns:
        ``range(start, stop)`` with ``stop − start`` equal to ``⌊n/W⌋`` or ``⌈n/W⌉``.

    Raises:
        ValueError: ``world_size < 1``, ``rank`` outside ``[0, W)``, or ``W > n`` (a rank with
            nothing to do would break the exact weighting).
    """
    n = check_positive_int(what, n)
    if rank is None or world_size is None:
        rank, world_size = rank_and_world_size()
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"need world_size >= 1 and 0 <= rank < world_size, got {rank}/{world_size}"
        )
    if world_size > n:
        raise ValueError(
            f"world size {world_size} exceeds the {n} {what}: every rank needs at "
            f"least one; launch at most {n} processes (torchrun --nproc-per-node)"
        )
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def sharded_loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss: str = "ce"):
    r"""This rank's weighted shard loss :math:`f_r = (n_r/N)\,\mathrm{mean}_{S_r}\ell`.

    Args:
        model: the network (identical on every rank).
        X: all inputs, ``(N, …)`` (every rank passes the full data; only its rows are used).
        y: labels ``(N,)``, or ``(N·T,)`` per-position targets (e.g. next-token targets of
            :func:`hesslib.nets.token_windows`, grouped by sample).
        loss: ``"ce"`` or ``"mse"``.

    Returns:
        ``(f_r, theta)`` as :func:`hesslib.flat_loss`; ``Σ_r f_r`` is the full-data loss —
        provided the loss is a mean of per-sample terms. A model that mixes samples (batch
        statistics, as BatchNorm in training mode) breaks this: use the probe mode for it.
    """
    N = X.shape[0]
    rows = shard_range(N, what="samples")
    sl = slice(rows.start, rows.stop)
    if y.shape[0] == N:
        y_r = y[sl]
    elif y.ndim == 1 and y.shape[0] % N == 0:
        y_r = y.reshape(N, -1)[sl].reshape(-1)  # (n_r·T,)
    else:
        raise ValueError(f"y must have N={N} entries or a multiple of N, got {tuple(y.shape)}")
    f_r, theta = flat_loss(model, X[sl], y_r, loss)
    if len(rows) == N:
        return f_r, theta
    weight = len(rows) / N

    def f(t: torch.Tensor) -> torch.Tensor:
        return f_r(t) * weight

    f.flat, f.weight = f_r, weight  # for the block-diagonal product (rank_matvec)
    return f, theta


class DataParallelMatvec:
    """``V ↦ Σ_r ∇²f_r V``: a local batched HVP, then one ``all_reduce`` of the block.

    Plugs into :func:`hesslib.lanczos` / :func:`hesslib.slq` as ``matvec``. The HVP runs in
    the parameters' dtype, ``chunk_size`` columns at a time (all of them by default; smaller
    chunks bound the memory of the vectorised HVP); the result is returned in ``V``'s dtype.

    Attributes:
        calls: number of products so far.
        bytes_reduced: bytes this rank passed to ``all_reduce`` (``P · k · itemsize`` a call).
    """

    def __init__(
        self,
        f: Callable,
        theta: torch.Tensor,
        *,
        chunk_size: int | None = None,
        check_shapes: bool = True,
        blocks=None,
    ):
        self.f, self.theta, self.check_shapes = f, theta, check_shapes
        self.chunk_size = (
            None if chunk_size is None else check_positive_int("chunk_size", chunk_size)
        )
        self.calls, self.bytes_reduced = 0, 0
        self.product = rank_matvec(f, theta, chunk_size=self.chunk_size, blocks=blocks)

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        B = V[:, None] if V.ndim == 1 else V  # (P, k)
        if self.check_shapes:
            check_same(
                "the HVP block shape (P, k, itemsize)",
                (B.shape[0], B.shape[-1], self.theta.element_size()),
            )
        HV = self.product(B.to(self.theta.dtype))  # (P, k)
        all_reduce_sum(HV, what=f"the all_reduce of a {tuple(HV.shape)} HVP block")
        self.calls += 1
        if rank_and_world_size()[1] > 1:
            self.bytes_reduced += HV.numel() * HV.element_size()
        HV = HV.to(V.dtype)
        return HV[:, 0] if V.ndim == 1 else HV


def rank_matvec(f: Callable, theta: torch.Tensor, *, chunk_size: int | None = None, blocks=None):
    """``V (P, k) ↦`` this rank's ``H V`` in ``chunk_size``-column passes; with ``blocks``
    (slices of the flat vector, for block Lanczos, which reads only each block's rows), the
    product with the diagonal blocks alone (:func:`hesslib.block_diagonal_hvp`, graph built
    once) where ``f`` is a flat loss or a shard's from :func:`sharded_loss`."""
    flat, weight = getattr(f, "flat", f), getattr(f, "weight", 1.0)
    if blocks is None or not isinstance(flat, FlatLoss):
        return lambda V: chunked_hvp(f, theta, V, chunk_size)
    D = block_diagonal_hvp(flat, theta, blocks)
    return lambda V: (in_passes(D, V, chunk_size or V.shape[1]) * weight).contiguous()


def chunked_hvp(
    f: Callable,
    theta: torch.Tensor,
    V: torch.Tensor,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """:func:`hesslib.hvp` on ``(P, k)`` blocks, ``chunk_size`` columns per vectorised pass."""
    return in_passes(lambda B: hvp(f, theta, B), V, chunk_size or V.shape[1]).contiguous()


def distributed_hvp(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    loss: str = "ce",
) -> torch.Tensor:
    """Full-data ``H v`` (``v``: ``(P,)`` or ``(P, k)``) from data shards, on every rank."""
    f, theta = sharded_loss(model, X, y, loss)
    check_params(theta)
    return DataParallelMatvec(f, theta)(v)
