r"""Products with the block-diagonal part of a Hessian, each block through only its own graph.

Blockwise spectra (chapter 06, "Why Transformers Need Adam" §2) read ``H_bb q`` for probes
``q`` supported on one block ``b`` at a time. A full HVP of such a probe does the whole
network's work and throws most of it away. :func:`block_diagonal_hvp` instead

* builds the gradient's graph once per point, with every parameter tensor its own leaf (a flat
  vector would make every activation depend on every parameter), and keeps it;
* for the blocks of one parameter tensor (or of the few tensors a block spans), runs one batched
  backward of the gradient's slice, differentiated with respect to those leaves only, so that
  autograd walks only the operations that depend on them: a block in the LM head touches the
  head, a block in the first layer the whole network;
* skips every (block, column) pair whose rows of the input are zero, so the ``B · k`` probe
  columns of a block-Lanczos step cost ``k`` directions per block, not ``B · k``.

Measured on chapter 06's models (``default``, float32, 3 probes per module block, one Lanczos
step, 9 interleaved repeats; ``benchmarks/bench_peers.py``): the GPT's 45 block probes at 200
per second, against 81 by full HVPs of the same columns and 105 by curvlinops with one
operator per block; the CNN's 21 at 374, against 199 and 229. Which route is faster depends
on the model (a network whose cost sits in its logits is better served by
:func:`hesslib.hvp`'s head structure), so the first call times both on its columns and the
architecture keeps the faster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch.func import functional_call

from .blocks import BlockLayout
from .checks import check_directions, check_matrix, check_type
from .flat import FlatLoss
from .hessian import hvp, work_per_direction
from .hvp_methods import signature
from .losses import loss_fn
from .workspace import memory_budget, plan_chunk

__all__ = ["block_diagonal_hvp"]

#: Route each architecture and block list measured faster, per process: "local" or "full".
_FASTER: dict[tuple, str] = {}


def _block_slices(blocks: object, P: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of every block: a :class:`BlockLayout` or a sequence of slices."""
    if isinstance(blocks, BlockLayout):
        off = blocks.offsets
        spans = [(int(off[i]), int(off[i + 1])) for i in range(len(off) - 1)]
    else:
        what = "a BlockLayout or a sequence of slice(start, stop) of the flat vector"
        check_type("blocks", blocks, Sequence, what)
        spans = []
        for s in blocks:
            if not isinstance(s, slice) or s.step not in (None, 1):
                raise TypeError(f"blocks must be {what}, got an item {s!r}")
            spans.append((int(s.start or 0), int(P if s.stop is None else s.stop)))
    if not spans:
        raise ValueError("blocks must hold at least one block")
    for (a, b), (c, _) in zip(spans, spans[1:] + [(P, P)]):
        if not 0 <= a < b <= c <= P:
            raise ValueError(
                f"blocks must be non-empty, increasing, non-overlapping slices of [0, {P}), "
                f"got {spans}"
            )
    return spans


def _pieces(Z: torch.Tensor, spans) -> list[tuple[int, int, int]]:
    """``(start, stop, column)`` of every block whose rows of a column of ``Z`` are not all zero."""
    return [(a, b, j) for a, b in spans for j in Z[a:b].ne(0).any(0).nonzero()[:, 0].tolist()]


class _LocalBlocks:
    """The gradient's graph with one leaf per parameter tensor, and the block groups."""

    def __init__(self, f: FlatLoss, theta: torch.Tensor, spans: list[tuple[int, int]]):
        sizes = [s.numel() for s in f.shapes]
        self.offsets = [0]
        for n in sizes:
            self.offsets.append(self.offsets[-1] + n)
        parts = zip(torch.split(theta, sizes), f.shapes, strict=True)
        self.leaves = [q.detach().reshape(s).requires_grad_(True) for q, s in parts]
        with torch.enable_grad():
            out = functional_call(f.model, dict(zip(f.names, self.leaves, strict=True)), (f.X,))
            loss = loss_fn(f.loss)(out, f.y)
            g = torch.autograd.grad(
                loss, self.leaves, create_graph=True, allow_unused=True, materialize_grads=True
            )  # unused: zero, no graph
        self.grads = g
        # blocks grouped by the parameter tensors they overlap (usually one)
        self.groups: dict[tuple[int, ...], list[tuple[int, int]]] = {}
        for a, b in spans:
            touched = tuple(i for i in range(len(sizes))
                            if self.offsets[i] < b and a < self.offsets[i + 1])  # fmt: skip
            self.groups.setdefault(touched, []).append((a, b))
        self.per_direction = work_per_direction(f, theta, structured=False)

    def __call__(self, Z: torch.Tensor, budget: int) -> torch.Tensor:
        out = torch.zeros_like(Z)
        for params, spans in self.groups.items():
            lo, hi = self.offsets[params[0]], self.offsets[params[-1] + 1]
            pairs = _pieces(Z, spans)
            if not pairs or not any(self.grads[i].requires_grad for i in params):
                continue  # nothing to do, or the gradient does not depend on these parameters
            k = plan_chunk(len(pairs), per_item=self.per_direction, budget=budget,
                           what="a block-diagonal HVP", device=Z.device, max_chunk=64)  # fmt: skip
            for c0 in range(0, len(pairs), k):
                self._group(Z, out, params, lo, hi, pairs[c0 : c0 + k])
        return out

    def _group(self, Z, out, params, lo, hi, pairs) -> None:
        G = torch.zeros(len(pairs), hi - lo, dtype=Z.dtype, device=Z.device)
        for r, (a, b, j) in enumerate(pairs):
            G[r, a - lo : b - lo] = Z[a:b, j]
        used = [i for i in params if self.grads[i].requires_grad]
        cuts = torch.split(G, [self.offsets[i + 1] - self.offsets[i] for i in params], dim=1)
        gouts = [c.reshape(len(pairs), *self.leaves[i].shape) for i, c in zip(params, cuts)
                 if i in used]  # fmt: skip
        outs, inputs = [self.grads[i] for i in used], [self.leaves[i] for i in params]
        if len(pairs) == 1:  # one direction: no batching
            HG = torch.autograd.grad(outs, inputs, [g[0] for g in gouts], retain_graph=True,
                                     allow_unused=True, materialize_grads=True)  # fmt: skip
            HG = [h[None] for h in HG]
        else:
            HG = torch.autograd.grad(outs, inputs, gouts, retain_graph=True,
                                     is_grads_batched=True, allow_unused=True,
                                     materialize_grads=True)  # fmt: skip
        H = torch.cat([h.reshape(len(pairs), -1) for h in HG], dim=1)  # (n, hi - lo)
        for r, (a, b, j) in enumerate(pairs):
            out[a:b, j] = H[r, a - lo : b - lo]


def _through_full_hvp(f, theta, spans, Z: torch.Tensor, max_bytes) -> torch.Tensor:
    """The same product by full HVPs of the block-supported pieces of ``Z``'s columns."""
    pieces = _pieces(Z, spans)
    out = torch.zeros_like(Z)
    if not pieces:
        return out
    E = torch.zeros(Z.shape[0], len(pieces), dtype=Z.dtype, device=Z.device)
    for r, (a, b, j) in enumerate(pieces):
        E[a:b, r] = Z[a:b, j]
    HE = hvp(f, theta, E, max_bytes=max_bytes)
    for r, (a, b, j) in enumerate(pieces):
        out[a:b, j] = HE[a:b, r]
    return out


def block_diagonal_hvp(
    f: FlatLoss, theta: torch.Tensor, blocks, *, max_bytes: int | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""``Z ↦ D Z`` for ``D`` the diagonal blocks ``H_bb`` of the Hessian of ``f`` at ``theta``.

    Rows outside every block are zero. The graph is built on the first call and kept (and
    built again if ``theta`` has changed in place since).

    Args:
        f: a flat loss from :func:`hesslib.flat_loss`.
        theta: the point, ``(P,)``.
        blocks: a :class:`~hesslib.BlockLayout` or increasing, non-overlapping ``slice``\ s of
            the flat vector.
        max_bytes: memory budget for the work of one batched pass (default 80 % of what is
            free).

    Returns:
        ``matvec(Z)`` for ``Z`` of shape ``(P, K)`` (or ``(P,)``) in ``theta``'s dtype.
    """
    check_type("f", f, FlatLoss, "a flat loss from hesslib.flat_loss")
    check_matrix("theta", theta, ndim=1)
    f.params(theta)  # raises ValueError on a wrong length
    P = theta.shape[0]
    spans = _block_slices(blocks, P)
    budget = memory_budget(theta.device, max_bytes)
    state: dict = {}
    key = (*signature(f, theta), tuple(spans))

    def local(Z):
        if state.get("version") != theta._version:  # first call, or theta changed in place
            state.update(local=_LocalBlocks(f, theta, spans), version=theta._version)
        return state["local"](Z, budget)

    def full(Z):
        return _through_full_hvp(f, theta, spans, Z, max_bytes)

    def matvec(Z: torch.Tensor) -> torch.Tensor:
        M = check_directions("Z", Z, theta)
        if key in _FASTER:
            return (local if _FASTER[key] == "local" else full)(M).reshape(Z.shape)
        local(M[:, :1])  # the graph built and first-use costs paid before timing; the full
        full(M)  # route's HVP tuned on these very columns
        results, seconds = {}, {}
        for name, run in (("local", local), ("full", full)):
            t0 = time.perf_counter()
            results[name] = run(M)
            seconds[name] = time.perf_counter() - t0
        _FASTER[key] = min(seconds, key=seconds.get)
        return results[_FASTER[key]].reshape(Z.shape)

    return matvec
