r"""Hessian-vector products and exact Hessians of any model and loss.

The general path builds :math:`H` column block by column block: a block of unit vectors goes
through one vectorised Hessian-vector product (``torch.func.vmap`` over forward-over-reverse
``jvp(grad(f))``), so each chunk is a few large GEMMs instead of a Python loop over columns.
Memory stays bounded by ``chunk_size``; a Hessian that would not fit is refused before any work.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, hessian, jvp, vmap

from .checks import check_matrix, check_positive_int
from .losses import loss_fn

__all__ = [
    "available_memory",
    "check_memory",
    "flat_loss",
    "full_hessian",
    "hessian_loop",
    "hessian_reference",
    "hvp",
    "model_hessian",
]

ScalarFn = Callable[[torch.Tensor], torch.Tensor]


def flat_loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss: str = "ce"):
    """The loss as a function of one flat parameter vector.

    Args:
        model: any module; its parameters are flattened in ``named_parameters`` order
            (for the book's models: rows of ``W``, then rows of ``V``).
        X: inputs ``(N, d)``.
        y: labels ``(N,)``.
        loss: ``"ce"`` or ``"mse"``.

    Returns:
        ``(f, theta)``: ``f(theta) -> scalar`` and the current flat parameters ``(P,)``.
    """
    lfn = loss_fn(loss)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    numels = [p.numel() for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])

    def f(t: torch.Tensor) -> torch.Tensor:
        parts = torch.split(t, numels)
        params = {n: q.reshape(s) for n, q, s in zip(names, parts, shapes, strict=True)}
        return lfn(functional_call(model, params, (X,)), y)

    return f, theta


def hvp(f: ScalarFn, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""Hessian-vector product(s) :math:`H v` of a scalar function at ``theta``.

    Args:
        f: scalar function of a flat parameter vector.
        theta: point, shape ``(P,)``.
        v: one vector ``(P,)`` or a block of vectors ``(P, k)`` (columns), done in one pass.

    Returns:
        ``H v`` with the shape of ``v``.
    """
    check_matrix("theta", theta, ndim=1)
    if v.ndim not in (1, 2) or v.shape[0] != theta.shape[0]:
        raise ValueError(
            f"v must have shape ({theta.shape[0]},) or ({theta.shape[0]}, k), got {tuple(v.shape)}"
        )

    def single(u: torch.Tensor) -> torch.Tensor:
        return jvp(grad(f), (theta,), (u,))[1]

    if v.ndim == 1:
        return single(v)
    return vmap(single, in_dims=1, out_dims=1)(v)


def available_memory(device: torch.device | str) -> int:
    """Bytes that can be allocated on ``device`` right now (free GPU memory / available RAM)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_memory(
    num_bytes: int, *, what: str, device: torch.device | str = "cpu", max_bytes: int | None = None
) -> None:
    """Refuse an allocation that would not fit.

    Args:
        num_bytes: size of the allocation.
        what: what is being allocated (used in the message).
        device: where it would live.
        max_bytes: explicit budget; default 80 % of :func:`available_memory`.

    Raises:
        MemoryError: naming the bytes needed and the budget, with what to use instead.
    """
    budget = max_bytes if max_bytes is not None else int(0.8 * available_memory(device))
    if num_bytes > budget:
        raise MemoryError(
            f"{what} needs {num_bytes:,} bytes ({num_bytes / 2**30:.2f} GiB) but the budget on "
            f"{device} is {budget:,} bytes ({budget / 2**30:.2f} GiB); use blockwise quantities "
            "(hesslib.block_norms_gram, hesslib.hvp, hesslib.slq) instead of the dense Hessian, "
            "float32, or raise max_bytes"
        )


def full_hessian(
    f: ScalarFn,
    theta: torch.Tensor,
    *,
    chunk_size: int | None = None,
    max_bytes: int | None = None,
    symmetrize: bool = False,
) -> torch.Tensor:
    """Exact Hessian of ``f`` at ``theta`` by batched Hessian-vector products.

    Args:
        f: scalar function of a flat parameter vector.
        theta: point ``(P,)`` (its dtype/device are those of the result).
        chunk_size: number of columns per vectorised HVP (default: as many as keep the
            per-chunk work around 256 MB of output, at least 1).
        max_bytes: memory budget for the ``(P, P)`` result (default 80 % of what is free).
        symmetrize: return ``(H + Hᵀ)/2`` (removes round-off asymmetry).

    Returns:
        ``H`` of shape ``(P, P)``.

    Raises:
        MemoryError: if the result would not fit, with the bytes it needs.
    """
    check_matrix("theta", theta, ndim=1)
    P = theta.shape[0]
    check_memory(
        P * P * theta.element_size(),
        what=f"a dense {P}x{P} Hessian",
        device=theta.device,
        max_bytes=max_bytes,
    )
    if chunk_size is None:
        chunk_size = max(1, min(P, (256 * 2**20) // max(1, P * theta.element_size())))
    check_positive_int("chunk_size", chunk_size)
    H = torch.empty(P, P, dtype=theta.dtype, device=theta.device)
    for c0 in range(0, P, chunk_size):
        c1 = min(P, c0 + chunk_size)
        E = torch.zeros(P, c1 - c0, dtype=theta.dtype, device=theta.device)  # (P, k) unit vectors
        E[torch.arange(c0, c1), torch.arange(c1 - c0)] = 1
        H[:, c0:c1] = hvp(f, theta, E)
    if symmetrize:
        H = 0.5 * (H + H.T)
    return H


def hessian_reference(f: ScalarFn, theta: torch.Tensor) -> torch.Tensor:
    """``torch.func.hessian`` — the reference every closed form is tested against."""
    return hessian(f)(theta)


def hessian_loop(f: ScalarFn, theta: torch.Tensor, columns: range | None = None) -> torch.Tensor:
    """The naive method: one autograd HVP per column (double backward), in a Python loop.

    Kept as the baseline of ``benchmarks/bench_hessian.py``.

    Args:
        f: scalar function.
        theta: point ``(P,)``.
        columns: which columns to compute (default all).

    Returns:
        ``H[:, columns]`` of shape ``(P, len(columns))``.
    """
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
    """Exact Hessian of ``loss(model(X), y)`` w.r.t. all parameters (general batched-HVP path).

    Keyword arguments go to :func:`full_hessian`.
    """
    f, theta = flat_loss(model, X, y, loss)
    return full_hessian(f, theta, **kwargs)
