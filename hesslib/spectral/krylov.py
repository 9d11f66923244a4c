r"""Lanczos tridiagonalisation batched over probe vectors, and over diagonal Hessian blocks.

Given a symmetric operator ``H`` (only through ``matvec``) and a unit start vector ``v``, ``s``
Lanczos steps build the Jacobi matrix ``T_s`` of the spectral measure
``μ_v = Σ_i (v·q_i)² δ_{λ_i}``. Its eigenvalues ``θ_j`` (nodes) and the squared first
components ``τ_j`` of its eigenvectors (weights) form the ``s``-point Gauss quadrature of
``μ_v``: ``Σ_j τ_j θ_j^k = vᵀ H^k v`` for ``k < 2s`` (Golub & Meurant 2009; the SLQ recipe of
"Why Transformers Need Adam", App. B.2). Averaged over random probes this estimates
``tr f(H) / d`` — stochastic Lanczos quadrature (:mod:`hesslib.spectral.density`).

Design: ``k`` probes advance together, so one call ``matvec(V)`` on a ``(dim, k)`` block serves
every probe at each step (a GEMM or a vmapped HVP instead of ``k`` separate products). Each
probe keeps its own Krylov basis; every new vector is re-orthogonalised (twice, classical
Gram–Schmidt) against all previous vectors *of the same probe*, in float64 by default. A probe
whose residual norm ``β`` falls below ``breakdown_tol`` times its running estimate of ``‖T‖``
has found an invariant subspace: its recursion stops, its tridiagonal is truncated and its
remaining columns leave the block, so results never contain NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..core.checks import check_dtype, check_matrix, check_positive_int, check_real
from ..core.hessian import check_memory

__all__ = [
    "block_lanczos_all",
    "lanczos",
    "LanczosResult",
]

Matvec = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, eq=False)
class LanczosResult:
    """Lanczos tridiagonals and their Gauss quadratures, one per probe (CPU tensors).

    Attributes:
        alphas: diagonals of ``T``, shape ``(k, s)``; zero beyond ``lengths[p]``.
        betas: off-diagonals, shape ``(k, s − 1)``; zero beyond ``lengths[p] − 1``.
        lengths: steps actually taken per probe, shape ``(k,)`` (``< s`` after a breakdown).
        nodes: eigenvalues ``θ`` of each ``T``, ascending, shape ``(k, s)``; padded entries
            repeat the probe's largest node.
        weights: squared first eigenvector components ``τ``, shape ``(k, s)``; each row sums
            to 1 and padded entries are 0, so sums over ``j`` are unaffected by padding.
        dim: dimension ``d`` of the operator.
    """

    alphas: torch.Tensor
    betas: torch.Tensor
    lengths: torch.Tensor
    nodes: torch.Tensor
    weights: torch.Tensor
    dim: int

    @property
    def num_probes(self) -> int:
        return int(self.alphas.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.alphas.shape[1])

    def tridiagonal(self, probe: int = 0) -> torch.Tensor:
        """The ``(L, L)`` Jacobi matrix of one probe (``L = lengths[probe]``)."""
        n = int(self.lengths[probe])
        a, b = self.alphas[probe, :n], self.betas[probe, : n - 1]
        return torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1)


def _rademacher(k: int, dim: int, generator, dtype, device) -> torch.Tensor:
    """``k`` normalised Rademacher rows, ``(k, dim)``; drawn on the generator's device."""
    gen_device = generator.device if generator is not None else "cpu"
    u = torch.randint(0, 2, (k, dim), generator=generator, device=gen_device)
    return (u.to(device=device, dtype=dtype) * 2 - 1) / math.sqrt(dim)


def _start_vectors(probes, dim: int, num_probes: int, seed, generator, dtype, device, name):
    """Unit start vectors as rows ``(k, dim)``: the given ``probes`` or Rademacher draws."""
    if probes is None:
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(check_positive_int("seed", seed, minimum=0))
        return _rademacher(num_probes, dim, generator, dtype, device)
    if not isinstance(probes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({dim}, k)")
    p = probes.reshape(-1, 1) if probes.ndim == 1 else probes
    if p.ndim != 2 or p.shape[0] != dim or p.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape ({dim},) or ({dim}, k), got {tuple(probes.shape)}"
        )
    check_matrix(name, p)  # float32/float64, finite
    p = p.to(device=device, dtype=dtype).T.contiguous()  # (k, dim)
    norms = p.norm(dim=1, keepdim=True)
    if not bool(torch.isfinite(p).all()) or bool((norms == 0).any()):
        raise ValueError(f"{name} must be finite with non-zero columns")
    return p / norms


def _gauss_quadrature(alphas, betas, lengths):
    """Nodes and weights of every probe's truncated Jacobi matrix (batched per length)."""
    k, s = alphas.shape
    nodes = torch.zeros(k, s, dtype=alphas.dtype)
    weights = torch.zeros(k, s, dtype=alphas.dtype)
    for n in torch.unique(lengths).tolist():
        idx = (lengths == n).nonzero().squeeze(1)
        T = torch.diag_embed(alphas[idx, :n])  # (b, n, n)
        if n > 1:
            b = betas[idx, : n - 1]
            T = T + torch.diag_embed(b, 1) + torch.diag_embed(b, -1)
        theta, U = torch.linalg.eigh(T)  # (b, n), (b, n, n)
        tau = U[:, 0, :] ** 2
        nodes[idx, :n] = theta
        nodes[idx, n:] = theta[:, -1:]
        weights[idx, :n] = tau / tau.sum(1, keepdim=True)
    return nodes, weights


class _Group:
    """Lanczos state of ``k`` probes of one operator of dimension ``dim``."""

    def __init__(self, start: torch.Tensor, num_steps: int, tol: float):
        k, dim = start.shape
        self.dim, self.k, self.tol = dim, k, tol
        self.s = min(num_steps, dim)  # the Krylov space cannot exceed dim
        self.Q = start.new_zeros(k, self.s, dim)  # (k, s, dim) Lanczos vectors per probe
        self.Q[:, 0] = start
        self.alphas = start.new_zeros(k, self.s)
        self.betas = start.new_zeros(k, max(self.s - 1, 0))
        self.lengths = torch.full((k,), self.s, dtype=torch.long)
        self.active = torch.ones(k, dtype=torch.bool, device=start.device)
        self.norm_est = start.new_zeros(k)

    def block(self, j: int) -> torch.Tensor | None:
        """The ``(dim, k_active)`` block to multiply at step ``j`` (``None`` when done)."""
        if j >= self.s or not bool(self.active.any()):
            return None
        return self.Q[self.active, j].T.contiguous()

    def advance(self, j: int, HV: torch.Tensor) -> None:
        """Consume ``H q_j`` for the active probes: ``α_j``, then ``β_j`` and ``q_{j+1}``."""
        act = self.active
        W = torch.zeros_like(self.Q[:, 0])  # (k, dim); rows of stopped probes stay 0
        W[act] = HV.T
        q = self.Q[:, j]
        alpha = (W * q).sum(1)
        self.alphas[:, j] = torch.where(act, alpha, 0.0)
        if j == self.s - 1:
            return
        beta_prev = self.betas[:, j - 1] if j > 0 else torch.zeros_like(alpha)
        W -= alpha[:, None] * q
        if j > 0:
            W -= beta_prev[:, None] * self.Q[:, j - 1]
        basis = self.Q[:, : j + 1]  # (k, j+1, dim)
        for _ in range(2):  # full re-orthogonalisation, "twice is enough"
            W -= torch.bmm(basis.transpose(1, 2), torch.bmm(basis, W[:, :, None])).squeeze(2)
        beta = W.norm(dim=1)
        self.norm_est = torch.maximum(self.norm_est, alpha.abs() + beta + beta_prev)
        stop = act & (beta <= self.tol * self.norm_est)
        self.lengths[stop.cpu()] = j + 1
        self.active = act & ~stop
        go = self.active
        self.betas[:, j] = torch.where(go, beta, 0.0)
        self.Q[go, j + 1] = W[go] / beta[go, None]

    def result(self) -> LanczosResult:
        alphas, betas = self.alphas.cpu(), self.betas.cpu()
        nodes, weights = _gauss_quadrature(alphas, betas, self.lengths)
        return LanczosResult(alphas, betas, self.lengths, nodes, weights, self.dim)


def _run(groups: list[_Group], apply, progress: bool = False) -> list[LanczosResult]:
    """Advance all groups together: one ``apply`` (hence one matvec) per Lanczos step."""
    from tqdm.auto import tqdm

    for j in tqdm(range(max(g.s for g in groups)), desc="Lanczos", disable=not progress):
        blocks = [g.block(j) for g in groups]
        if all(b is None for b in blocks):
            break
        outs = apply(blocks, j)
        for g, b, out in zip(groups, blocks, outs, strict=True):
            if b is not None:
                g.advance(j, out)
    return [g.result() for g in groups]


def _checked(out, shape, dtype, j: int, name: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(shape):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} must map a {tuple(shape)} block to {tuple(shape)}, got {got}")
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} returned non-finite values at Lanczos step {j}")
    return out.to(dtype)


def _check_options(dim, num_steps, num_probes, generator, dtype, breakdown_tol):
    """The shared options of :func:`lanczos` and :func:`block_lanczos_all`, checked."""
    check_dtype("dtype", dtype)
    check_real("breakdown_tol", breakdown_tol, minimum=0.0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {generator!r}")
    return (
        check_positive_int("dim", dim),
        check_positive_int("num_steps", num_steps),
        check_positive_int("num_probes", num_probes),
    )


def _check_basis_memory(dims: list[int], num_steps: int, num_probes: int, dtype, device) -> None:
    """The memory guard for the Lanczos vectors kept for re-orthogonalisation."""
    entries = sum(num_probes * min(num_steps, d) * d for d in dims)
    itemsize = torch.empty((), dtype=dtype).element_size()
    what = f"the Lanczos basis of {num_probes} probe(s) x {num_steps} steps"
    check_memory(entries * itemsize, what=what, device=device)


def lanczos(
    matvec: Matvec,
    dim: int,
    *,
    num_steps: int,
    num_probes: int = 1,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    probes: torch.Tensor | None = None,
    breakdown_tol: float = 1e-10,
    progress: bool = False,
) -> LanczosResult:
    r"""Lanczos with full re-orthogonalisation, all probes through one matvec per step.

    Recurrence per probe: ``w = H q_j − α_j q_j − β_{j−1} q_{j−1}``, ``α_j = q_jᵀ H q_j``,
    ``w`` re-orthogonalised against ``q_0 … q_j``, ``β_j = ‖w‖``, ``q_{j+1} = w / β_j``.
    Memory: the ``k · s · dim`` Lanczos vectors kept for re-orthogonalisation.

    Args:
        matvec: ``V ↦ H V`` for a block ``V`` of shape ``(dim, k')`` with ``k' ≤ k`` (probes
            that broke down are dropped from the block).
        dim: dimension ``d`` of ``H``.
        num_steps: Lanczos steps ``s`` (capped at ``dim``).
        num_probes: probes ``k`` when ``probes`` is not given.
        seed: seed for the probes (ignored when ``generator`` or ``probes`` is given).
        generator: torch generator for the probes.
        dtype: working dtype (float64 by default).
        device: where the vectors live (default: ``probes``' device, else CPU).
        probes: explicit start vectors ``(dim, k)`` (normalised here); default normalised
            Rademacher vectors ``u/√d``, ``u_i = ±1``.
        breakdown_tol: stop a probe when ``β_j ≤ breakdown_tol · ‖T‖_est``.
        progress: show a tqdm bar over the steps.

    Returns:
        :class:`LanczosResult` with ``k`` rows.

    Raises:
        ValueError: bad ``dim``/``num_steps``/``probes``, or a ``matvec`` returning the wrong
            shape or non-finite values.
    """
    dim, num_steps, num_probes = _check_options(
        dim, num_steps, num_probes, generator, dtype, breakdown_tol
    )
    if not callable(matvec):
        raise TypeError("matvec must be callable: (dim, k) tensor -> (dim, k) tensor")
    if device is None:
        device = probes.device if isinstance(probes, torch.Tensor) else "cpu"
    _check_basis_memory([dim], num_steps, num_probes, dtype, device)
    start = _start_vectors(probes, dim, num_probes, seed, generator, dtype, device, "probes")
    group = _Group(start, num_steps, breakdown_tol)

    def apply(blocks, j):
        return [_checked(matvec(blocks[0]), blocks[0].shape, dtype, j, "matvec")]

    return _run([group], apply, progress)[0]


def _as_slices(block_slices, dim: int) -> list[slice]:
    """Slices from a :class:`~hesslib.BlockLayout`, slices or ``(start, stop)`` pairs."""
    if hasattr(block_slices, "offsets") and hasattr(block_slices, "sizes"):
        off = block_slices.offsets
        block_slices = [slice(off[i], off[i + 1]) for i in range(len(off) - 1)]
    if not isinstance(block_slices, Sequence) or len(block_slices) == 0:
        raise ValueError("block_slices must be a non-empty sequence of slices or (start, stop)")
    out = []
    for b in block_slices:
        sl = b if isinstance(b, slice) else slice(*b) if isinstance(b, Sequence) else None
        if sl is None or sl.step not in (None, 1) or sl.start is None or sl.stop is None:
            raise ValueError(f"block_slices entries must be contiguous slices, got {b!r}")
        if not 0 <= sl.start < sl.stop <= dim:
            raise ValueError(f"block_slices entry {b!r} is empty or outside [0, {dim})")
        out.append(slice(int(sl.start), int(sl.stop)))
    return out


def block_lanczos_all(
    matvec_full: Matvec,
    block_slices,
    dim: int,
    *,
    num_steps: int,
    num_probes: int = 1,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    probes: Sequence[torch.Tensor] | None = None,
    breakdown_tol: float = 1e-10,
    progress: bool = False,
) -> list[LanczosResult]:
    r"""Lanczos on every diagonal block ``H_bb`` at once, from products with the full ``H``.

    Each probe of block ``b`` is supported on ``b``'s coordinates only, so
    ``(H [0; q; 0])_b = H_bb q``: one full matvec on a ``(dim, k · B)`` block per step (one
    batched HVP for a network) advances all ``B`` blocks' ``k`` probes, and block ``b`` reads
    only its slice of the result. ``num_steps`` matvecs replace ``B · k · num_steps`` single
    ones — the blockwise spectra of "Why Transformers Need Adam" from shared passes.

    Args:
        matvec_full: ``V ↦ H V`` for ``V`` of shape ``(dim, K)`` (``K`` ≤ ``k · B``).
        block_slices: a :class:`~hesslib.BlockLayout`, or slices / ``(start, stop)``
            pairs into ``[0, dim)``.
        dim: dimension ``P`` of the full operator.
        num_steps, num_probes, seed, generator, dtype, device, breakdown_tol, progress: as in
            :func:`lanczos` (``num_steps`` is capped at each block's size).
        probes: optional list of start blocks, ``probes[b]`` of shape ``(d_b, k)``. Default:
            Rademacher probes drawn block after block from one generator.

    Returns:
        One :class:`LanczosResult` per block, in order.
    """
    dim, num_steps, num_probes = _check_options(
        dim, num_steps, num_probes, generator, dtype, breakdown_tol
    )
    if not callable(matvec_full):
        raise TypeError("matvec_full must be callable: (dim, K) tensor -> (dim, K) tensor")
    slices = _as_slices(block_slices, dim)
    if probes is not None and len(probes) != len(slices):
        raise ValueError(
            f"probes must hold one tensor per block ({len(slices)}), got {len(probes)}"
        )
    if device is None:
        device = probes[0].device if probes is not None else "cpu"
    _check_basis_memory([sl.stop - sl.start for sl in slices], num_steps, num_probes, dtype, device)
    if probes is None and generator is None and seed is not None:
        generator = torch.Generator().manual_seed(check_positive_int("seed", seed, minimum=0))
    groups = []
    for b, sl in enumerate(slices):
        pb = None if probes is None else probes[b]
        d_b = sl.stop - sl.start
        start = _start_vectors(pb, d_b, num_probes, None, generator, dtype, device, f"probes[{b}]")
        groups.append(_Group(start, num_steps, breakdown_tol))

    def apply(blocks, j):
        widths = [0 if v is None else v.shape[1] for v in blocks]
        Z = torch.zeros(dim, sum(widths), dtype=dtype, device=device)  # (P, K)
        col = 0
        for sl, v, w in zip(slices, blocks, widths, strict=True):
            if w:
                Z[sl, col : col + w] = v
            col += w
        HZ = _checked(matvec_full(Z), Z.shape, dtype, j, "matvec_full")
        outs, col = [], 0
        for sl, w in zip(slices, widths, strict=True):
            outs.append(HZ[sl, col : col + w] if w else None)
            col += w
        return outs

    return _run(groups, apply, progress)
