r"""Exact Hessians, Lanczos and stochastic Lanczos quadrature (SLQ) on several processes.

Built on the data-parallel HVP of :mod:`hesslib.distributed`. Two ways to share the work (the
``mode`` argument):

* ``"data"`` — every rank holds a shard of the samples and runs the *same* Lanczos recursion
  (same seed, same probes); at each step the ranks' ``(P, k)`` blocks of HVPs are summed by one
  ``all_reduce`` (:class:`~hesslib.distributed.DataParallelMatvec`), so the recursion sees the
  full-data ``H`` and stays bitwise identical on every rank (checked at the end). Traffic:
  ``P · k · itemsize`` bytes per step and rank. Best when the data dominate the cost.
* ``"probe"`` — every rank holds all the data and runs its share of the probes; the
  tridiagonals are gathered once at the end. No traffic per step; best when the data fit on
  one device and there are at least as many probes as ranks.

Both reproduce the single-process :func:`hesslib.slq` / :func:`hesslib.block_slq` (same seed,
same probes). For the exact Hessian, ``"probe"`` splits its columns across ranks.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from ..core.checks import check_positive_int
from ..core.flat import flat_loss
from ..core.hessian import check_memory, hvp
from ..spectral.density import Spectrum, slq_density
from ..spectral.krylov import LanczosResult, block_lanczos_all, lanczos
from .comm import (
    MODES,
    DataParallelMatvec,
    DistributedError,
    agree,
    check_params,
    check_same,
    guard,
    local_device,
    rank_and_world_size,
    rank_matvec,
    shard_range,
    sharded_loss,
)

__all__ = [
    "distributed_full_hessian",
    "distributed_lanczos",
    "distributed_slq",
]


def _slices(layout) -> list[slice] | None:
    """Contiguous slices from a BlockLayout, slices or (start, stop) pairs (None: no blocks)."""
    if layout is None:
        return None
    if hasattr(layout, "offsets"):
        off = layout.offsets
        return [slice(off[i], off[i + 1]) for i in range(len(off) - 1)]
    return [b if isinstance(b, slice) else slice(*b) for b in layout]


def _pack(results: list[LanczosResult]) -> torch.Tensor:
    """``(k, Σ_b 4 s_b)`` float64 rows: alphas | betas | length | nodes | weights per block."""
    cols = []
    for r in results:
        cols += [r.alphas, r.betas, r.lengths[:, None], r.nodes, r.weights]
    return torch.cat([c.to(torch.float64) for c in cols], dim=1)


def _unpack(rows: torch.Tensor, templates: list[LanczosResult]) -> list[LanczosResult]:
    out, c = [], 0
    for t in templates:
        s = t.num_steps
        a, b = rows[:, c : c + s], rows[:, c + s : c + 2 * s - 1]
        n = rows[:, c + 2 * s - 1].round().long()
        nodes, w = rows[:, c + 2 * s : c + 3 * s], rows[:, c + 3 * s : c + 4 * s]
        dt = t.alphas.dtype
        out.append(LanczosResult(a.to(dt), b.to(dt), n, nodes.to(dt), w.to(dt), t.dim))
        c += 4 * s
    return out


def _gather_probes(results: list[LanczosResult], num_probes: int, stats: dict) -> list:
    """Concatenate every rank's probes, in rank order (= the single-process probe order)."""
    rank, size = rank_and_world_size()
    if size == 1:
        return results
    mine = _pack(results)  # (k_r, width)
    kmax = -(-num_probes // size)
    check_same("the packed Lanczos width", (mine.shape[1],))
    buf = torch.zeros(kmax, mine.shape[1], dtype=torch.float64, device=local_device())
    buf[: mine.shape[0]] = mine
    everyone = [torch.empty_like(buf) for _ in range(size)]
    guard("the all_gather of the Lanczos tridiagonals", dist.all_gather, everyone, buf)
    stats["bytes_gathered"] = stats.get("bytes_gathered", 0) + buf.numel() * 8
    rows = torch.cat(
        [
            e[: len(shard_range(num_probes, rank=r, world_size=size))].cpu()
            for r, e in enumerate(everyone)
        ]
    )
    return _unpack(rows, results)


def _check_identical(results: list[LanczosResult]) -> None:
    """Data mode: every rank must have run the very same recursion."""
    size = rank_and_world_size()[1]
    if size == 1:
        return
    mine = _pack(results).to(local_device())
    everyone = [torch.empty_like(mine) for _ in range(size)]
    guard("the final consistency check", dist.all_gather, everyone, mine)
    if any(not torch.equal(e, everyone[0]) for e in everyone):
        gap = max(float((e - everyone[0]).abs().max()) for e in everyone)
        raise DistributedError(
            f"the Lanczos recursions differ across ranks (max gap {gap:.3g}); "
            "the all-reduced HVPs were not identical on every rank"
        )


class _counted:
    """A matvec that counts its calls and advances a progress bar."""

    def __init__(self, inner, bar):
        self.inner, self.bar, self.calls = inner, bar, 0

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        """``inner(V)``."""
        out = self.inner(V)
        self.calls += 1
        self.bar.update()
        return out


class _LocalMatvec:
    """``V ↦ H V`` (``(P, k)`` or ``(P,)``) on this rank's data alone: no traffic."""

    bytes_reduced = 0

    def __init__(self, f, theta: torch.Tensor, *, chunk_size: int | None, blocks=None):
        self.theta, self.mv = theta, rank_matvec(f, theta, chunk_size=chunk_size, blocks=blocks)

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        """The HVP in the parameters' dtype, returned in ``V``'s."""
        return self.mv(V.to(self.theta.dtype)).to(V.dtype)


def _bar(total: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc="Lanczos steps", disable=not progress or rank_and_world_size()[0] != 0
    )


def _rademacher_rows(gen: torch.Generator, k: int, dim: int, rows: range, dtype, device):
    """The rows ``rows`` of the ``(k, dim)`` normalised Rademacher draw of hesslib.lanczos."""
    u = torch.randint(0, 2, (k, dim), generator=gen)[rows.start : rows.stop]  # (k_r, dim)
    return ((u.to(dtype) * 2 - 1) / math.sqrt(dim)).T.to(device)  # (dim, k_r)


def _probe_share(num_probes: int, seed: int, slices, P: int, *, dtype, device):
    """This rank's columns of the probes that :func:`hesslib.lanczos` (``slices=None``: one
    ``(P, k_r)`` block) or :func:`hesslib.spectral.block_lanczos_all` (one ``(B, k_r)`` per block of
    size ``B``) draw from ``seed``: every rank draws them all, in the same order.
    """
    mine = shard_range(num_probes, what="probes")
    gen = torch.Generator().manual_seed(seed)
    if slices is None:
        return _rademacher_rows(gen, num_probes, P, mine, dtype, device)
    return [
        _rademacher_rows(gen, num_probes, s.stop - s.start, mine, dtype, device) for s in slices
    ]


def distributed_lanczos(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss: str = "ce",
    *,
    mode: str = "data",
    layout=None,
    num_steps: int,
    num_probes: int,
    seed: int,
    dtype: torch.dtype = torch.float64,
    breakdown_tol: float = 1e-10,
    chunk_size: int | None = None,
    progress: bool = False,
    stats: dict | None = None,
) -> LanczosResult | list[LanczosResult]:
    """Lanczos on the full-data Hessian (``layout=None``) or on all its diagonal blocks at once.

    Args:
        model, X, y, loss: the problem; every rank passes the same model and the full data.
        mode: ``"data"`` (samples split, one ``all_reduce`` per step) or ``"probe"`` (probes
            split, one gather at the end).
        layout: a :class:`~hesslib.BlockLayout` (or slices / ``(start, stop)`` pairs) for the
            blockwise recursion of :func:`hesslib.spectral.block_lanczos_all`; ``None`` for ``H``.
        num_steps, num_probes, dtype, breakdown_tol: as :func:`hesslib.lanczos`.
        seed: probe seed (required: every rank must draw the same probes).
        chunk_size: columns per vectorised HVP (default all; bounds memory at large ``k·B``).
        progress: a progress bar of the Lanczos steps on rank 0.
        stats: optional dict filled with ``matvec_calls``, ``bytes_reduced`` (per rank),
            ``bytes_gathered``, ``mode`` and ``world_size``.

    Returns:
        One :class:`~hesslib.spectral.LanczosResult` (``layout=None``) or one per block, with all
        ``num_probes`` probes, identical on every rank.

    Raises:
        ValueError: bad mode, a world size above the number of samples (data) or probes
            (probe), or models/settings that differ across ranks.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    seed = check_positive_int("seed", seed, minimum=0)
    num_probes = check_positive_int("num_probes", num_probes)
    num_steps = check_positive_int("num_steps", num_steps)
    stats = {} if stats is None else stats
    slices = _slices(layout)
    check_same(
        "(num_steps, num_probes, seed, number of blocks)",
        (num_steps, num_probes, seed, 0 if slices is None else len(slices)),
    )
    f, theta = (sharded_loss if mode == "data" else flat_loss)(model, X, y, loss)
    check_params(theta)
    P, device = theta.numel(), theta.device
    bar = _bar(
        num_steps if slices is None else max(min(num_steps, s.stop - s.start) for s in slices),
        progress,
    )
    if mode == "data":  # every rank runs every probe on its shard
        mv = _counted(DataParallelMatvec(f, theta, chunk_size=chunk_size, blocks=slices), bar)
        draw = dict(num_probes=num_probes, seed=seed)
    else:  # every rank runs its share of the probes on all the data
        mv = _counted(_LocalMatvec(f, theta, chunk_size=chunk_size, blocks=slices), bar)
        draw = dict(probes=_probe_share(num_probes, seed, slices, P, dtype=dtype, device=device))
    kw = dict(num_steps=num_steps, dtype=dtype, device=device, breakdown_tol=breakdown_tol, **draw)
    res = [lanczos(mv, P, **kw)] if slices is None else block_lanczos_all(mv, slices, P, **kw)
    if mode == "data":
        _check_identical(res)
    else:
        res = _gather_probes(res, num_probes, stats)
    stats.update(matvec_calls=mv.calls, bytes_reduced=mv.inner.bytes_reduced)
    bar.close()
    stats.update(mode=mode, world_size=rank_and_world_size()[1])
    return res[0] if slices is None else res


def distributed_slq(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss: str = "ce",
    *,
    num_grid: int = 512,
    sigma_rel: float = 0.02,
    **kwargs,
) -> Spectrum | list[Spectrum]:
    """SLQ densities from :func:`distributed_lanczos` (keyword arguments go there).

    Returns:
        A :class:`~hesslib.Spectrum` (``layout=None``) or one per block, on every rank.
    """
    res = distributed_lanczos(model, X, y, loss, **kwargs)
    dens = dict(num_grid=num_grid, sigma_rel=sigma_rel)
    if isinstance(res, list):
        return [slq_density(r, **dens) for r in res]
    return slq_density(res, **dens)


def _unit_columns(P: int, c0: int, c1: int, like: torch.Tensor) -> torch.Tensor:
    E = torch.zeros(P, c1 - c0, dtype=like.dtype, device=like.device)  # (P, k)
    E[torch.arange(c0, c1), torch.arange(c1 - c0)] = 1
    return E


def distributed_full_hessian(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    loss: str = "ce",
    *,
    mode: str = "probe",
    dst: int = 0,
    chunk_size: int | None = None,
    max_bytes: int | None = None,
) -> torch.Tensor | None:
    """Exact Hessian of the full-data loss, assembled on rank ``dst``.

    ``mode="probe"``: the ``P`` columns are split across ranks, each rank computes its columns
    with all the data and sends them to ``dst``. ``mode="data"``: each rank computes every
    column on its data shard and the column chunks are summed onto ``dst`` (``reduce``) — for
    data too large for one device. Only ``dst`` ever holds ``P × P`` entries.

    Args:
        model, X, y, loss: as :func:`sharded_loss` (every rank passes the same full data).
        mode: ``"probe"`` (columns split) or ``"data"`` (samples split).
        dst: the rank that receives ``H``.
        chunk_size: columns per batched HVP (default: about 256 MB of output per chunk).
        max_bytes: memory budget per rank (default 80 % of free memory), checked on every
            rank before any work; a refusal on one rank is raised on all.

    Returns:
        ``H`` of shape ``(P, P)`` on ``dst`` (with ``mode="probe"`` a transposed view of the
        row-major buffer: ``H[:, c] = H e_c``), ``None`` on the other ranks.

    Raises:
        MemoryError: the rank's share would not fit (other ranks raise DistributedError).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    rank, size = rank_and_world_size()
    if not 0 <= dst < size:
        raise ValueError(f"dst must be a rank in [0, {size}), got {dst}")
    f, theta = (flat_loss if mode == "probe" else sharded_loss)(model, X, y, loss)
    P, es = theta.numel(), theta.element_size()
    check_params(theta)
    cols = shard_range(P, what="Hessian columns") if mode == "probe" else range(P)
    if chunk_size is None:
        chunk_size = max(1, min(P, (256 * 2**20) // (P * es)))
    check_positive_int("chunk_size", chunk_size)
    share = P if rank == dst else (len(cols) if mode == "probe" else chunk_size)
    _check_share(share * P * es, P=P, device=theta.device, max_bytes=max_bytes)
    if mode == "data":
        return _hessian_by_data(f, theta, dst=dst, chunk_size=chunk_size)
    return _hessian_by_probe(f, theta, cols, dst=dst, chunk_size=chunk_size)


def _check_share(need: int, *, P: int, device: torch.device, max_bytes: int | None) -> None:
    """Every rank checks that its ``need`` bytes fit; a refusal on one rank is raised on all.

    Raises:
        MemoryError: this rank's share does not fit.
        DistributedError: another rank's share does not fit.
    """
    what = f"rank {rank_and_world_size()[0]}'s share of the {P}x{P} Hessian"
    error = None
    try:
        check_memory(need, what=what, device=device, max_bytes=max_bytes)
    except MemoryError as exc:
        error = exc
    agree(error, "the memory check")


def _hessian_by_data(f, theta: torch.Tensor, *, dst: int, chunk_size: int) -> torch.Tensor | None:
    """Data mode of :func:`distributed_full_hessian`: each ``chunk_size`` columns of ``H`` on
    this rank's shard loss ``f`` at ``theta`` ``(P,)``, summed onto ``dst`` (``reduce``).

    Returns:
        ``H`` ``(P, P)`` on ``dst``, ``None`` elsewhere.
    """
    rank, size = rank_and_world_size()
    P = theta.numel()
    H = torch.empty(P, P, dtype=theta.dtype, device=theta.device) if rank == dst else None
    for c0 in range(0, P, chunk_size):
        c1 = min(P, c0 + chunk_size)
        HE = hvp(f, theta, _unit_columns(P, c0, c1, theta)).contiguous()  # (P, k)
        if size > 1:
            guard(f"the reduce of Hessian columns {c0}:{c1}", dist.reduce, HE, dst)
        if rank == dst:
            H[:, c0:c1] = HE
    return H


def _hessian_by_probe(f, theta, cols: range, *, dst: int, chunk_size: int) -> torch.Tensor | None:
    """Probe mode of :func:`distributed_full_hessian`: this rank's columns ``cols`` of ``H``
    from the full-data loss ``f`` at ``theta`` ``(P,)``, ``chunk_size`` at a time, sent to
    ``dst``. Rows of ``Hᵀ`` (= columns of ``H``) are contiguous: they travel without copies.

    Returns:
        ``H`` ``(P, P)`` on ``dst`` (a transposed view of the row-major buffer), ``None``
        elsewhere.
    """
    rank, size = rank_and_world_size()
    P = theta.numel()
    HT = torch.empty(P if rank == dst else len(cols), P, dtype=theta.dtype, device=theta.device)
    off = cols.start if rank == dst else 0
    for c0 in range(cols.start, cols.stop, chunk_size):
        c1 = min(cols.stop, c0 + chunk_size)
        HT[c0 - cols.start + off : c1 - cols.start + off] = hvp(
            f, theta, _unit_columns(P, c0, c1, theta)
        ).T
    if rank != dst:
        guard(f"sending Hessian columns {cols.start}:{cols.stop} to rank {dst}", dist.send, HT, dst)
        return None
    for r in range(size):
        if r != dst:
            rc = shard_range(P, rank=r, world_size=size)
            guard(
                f"receiving Hessian columns {rc.start}:{rc.stop} from rank {r}",
                dist.recv,
                HT[rc.start : rc.stop],
                r,
            )
    return HT.T
