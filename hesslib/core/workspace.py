r"""Memory budgets for exact Hessians: what is free, what a computation needs, how to chunk it.

A dense Hessian costs its result, :math:`P^2` numbers, *and* the work that produces it: every
batched Hessian-vector product over ``k`` directions holds a tangent (and a cotangent) of each
intermediate of the forward pass, ``k`` times. For the talk's Gaussian setting
(N = 5000, C = 500) one logits tangent alone is :math:`N C` = 2.5 M numbers per direction, so a
chunk sized from the result only (the old default: ``k`` = 4194 columns) asked for ~84 GB.

The work is estimated from the model before anything large is allocated:
:func:`forward_bytes` runs one forward pass under a ``TorchFunctionMode`` and adds up the bytes
of every intermediate it creates (:math:`A`); a batched HVP then needs about
:data:`HVP_BYTES_PER_FORWARD` × :math:`A` per direction. That factor is measured, not guessed:
the peak resident memory of ``vmap(jvp(grad(f)))`` grows by 5.7 A (one-hidden-layer net, CE),
3.1 A (deep ReLU MLP), 4.2 A (small CNN) and 3.3 A (GPT) per direction on the book's models;
8 leaves a margin for allocator fragmentation and for intermediates a fused kernel hides.
:func:`plan_chunk` turns a per-item cost and a budget into a chunk size, or refuses with the
bytes of the result and of the work.
"""

from __future__ import annotations

import os

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .checks import check_positive_int

# available_memory and check_memory live here but are exported by hesslib.core.hessian, their
# historical home (closed forms, nets and distributed import them from there).
__all__ = ["HVP_BYTES_PER_FORWARD", "forward_bytes", "memory_budget", "plan_chunk"]

#: Bytes of work per direction of a batched HVP, in units of the forward pass's intermediates.
HVP_BYTES_PER_FORWARD = 8

#: What to use instead of a dense Hessian that does not fit (every name exists in ``hesslib``).
_ALTERNATIVES = (
    "use blockwise quantities instead of the dense Hessian (hesslib.output_block_norms_gram for "
    "block norms, hesslib.hvp with hesslib.slq or hesslib.blockwise_spectra for spectra, "
    "hesslib.spectral.top_eigenpairs for the outliers), float32, or a larger max_bytes"
)


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


def memory_budget(device: torch.device | str, max_bytes: int | None = None) -> int:
    """``max_bytes`` if given (validated), else 80 % of :func:`available_memory`."""
    if max_bytes is not None:
        return check_positive_int("max_bytes", max_bytes)
    return int(0.8 * available_memory(device))


def _gib(n: int) -> str:
    return f"{n:,} bytes ({n / 2**30:.2f} GiB)"


def check_memory(
    num_bytes: int,
    *,
    what: str,
    device: torch.device | str = "cpu",
    max_bytes: int | None = None,
    work_bytes: int = 0,
) -> None:
    """Refuse an allocation that would not fit, before anything is allocated.

    Args:
        num_bytes: size of the result.
        what: what is being computed (used in the message).
        device: where it would live.
        max_bytes: explicit budget for result and work; default 80 % of
            :func:`available_memory`.
        work_bytes: the least working memory the computation needs beside its result
            (intermediates of the smallest chunk).

    Raises:
        MemoryError: naming the bytes of the result and of the work, the budget, and what
            to use instead.
    """
    budget = memory_budget(device, max_bytes)
    total = num_bytes + work_bytes
    if total > budget:
        work = f" plus {_gib(work_bytes)} of work" if work_bytes else ""
        raise MemoryError(
            f"{what} needs {_gib(num_bytes)} for the result{work} but the budget on {device} "
            f"is {_gib(budget)}; {_ALTERNATIVES}"
        )


class _ForwardBytes(TorchFunctionMode):
    """Adds up the bytes of every tensor an operation returns (views included)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.total += t.numel() * t.element_size()
        return out


def forward_bytes(fn, *args) -> int:
    """Bytes of the intermediates of one call ``fn(*args)`` (its result included).

    Operations a fused kernel performs internally are not seen; the factor
    :data:`HVP_BYTES_PER_FORWARD` is calibrated with that in mind.
    """
    mode = _ForwardBytes()
    with torch.no_grad(), mode:
        fn(*args)
    return mode.total


def plan_chunk(
    total: int,
    *,
    per_item: int,
    budget: int,
    fixed: int = 0,
    result: int = 0,
    what: str,
    device: torch.device | str = "cpu",
    chunk_size: int | None = None,
    max_chunk: int | None = None,
) -> int:
    """The largest chunk of ``total`` items whose work fits beside the result.

    Args:
        total: number of items (columns, directions) to process.
        per_item: bytes of work per item of a chunk.
        budget: bytes available for result and work together.
        fixed: bytes of work that do not grow with the chunk.
        result: bytes of the result (held for the whole computation).
        what: what is being computed (for the refusal).
        device: where the work lives (for the refusal).
        chunk_size: at most this many items per chunk (a smaller chunk is taken where the
            work of this one would not fit).
        max_chunk: cap of the automatic choice (larger chunks stop paying off).

    Returns:
        The chunk size, between 1 and ``total``.

    Raises:
        MemoryError: if even a chunk of one item does not fit, naming the bytes of the result
            and of the work.
    """
    check_positive_int("total", total)
    cap = total
    if chunk_size is not None:
        cap = min(cap, check_positive_int("chunk_size", chunk_size))
    elif max_chunk is not None:
        cap = min(cap, max_chunk)
    k = max(1, min(cap, (budget - result - fixed) // max(1, per_item)))
    check_memory(
        result, what=what, device=device, max_bytes=budget, work_bytes=fixed + k * per_item
    )
    return k
