r"""Block layouts of a Hessian and statistics of its blocks.

A layout cuts the parameter vector into consecutive blocks (neurons, classes, modules) grouped
into layers. The statistic quoted throughout the book is the RMS block ratio of one group,

.. math::
    r = \frac{\sqrt{\operatorname{mean}_{i\neq j}\|H_{ij}\|_F^2}}
             {\sqrt{\operatorname{mean}_{i}\|H_{ii}\|_F^2}},

which the second-moment formula of chapter 05 predicts directly.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from .checks import check_matrix, check_positive_int
from .hessian import check_memory

__all__ = [
    "block_norms",
    "block_ratio",
    "block_stats",
    "BlockLayout",
    "BlockStats",
    "diag_mass_fraction",
    "pool_abs",
    "stats_from_norms",
]


@dataclass(frozen=True)
class BlockLayout:
    """Consecutive parameter blocks, grouped (e.g. ``W`` = neuron blocks, ``V`` = class blocks).

    Attributes:
        sizes: the size of each block, in parameter order.
        names: one label per block (``"W[3]"``, ``"V[0]"``, ``"attn.q"`` …).
        groups: ``(group_name, first_block, stop_block)`` triples covering all blocks in order.
    """

    sizes: tuple[int, ...]
    names: tuple[str, ...]
    groups: tuple[tuple[str, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.names):
            raise ValueError(f"sizes has {len(self.sizes)} entries but names has {len(self.names)}")
        if not self.sizes:
            raise ValueError("sizes must hold at least one block")
        if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in self.sizes):
            raise TypeError(f"sizes must be integers, got {self.sizes}")
        if any(int(s) <= 0 for s in self.sizes):
            raise ValueError(f"block sizes must be positive, got {self.sizes}")
        expected = 0
        for name, start, stop in self.groups:
            if start != expected or stop <= start:
                raise ValueError(f"groups must tile the blocks in order; group {name!r} is wrong")
            expected = stop
        if expected != len(self.sizes):
            raise ValueError(f"groups cover {expected} blocks, layout has {len(self.sizes)}")

    @classmethod
    def uniform(cls, groups: list[tuple[str, int, int]]) -> BlockLayout:
        """Build from ``(group_name, num_blocks, block_size)`` triples."""
        sizes: list[int] = []
        names: list[str] = []
        triples = []
        for gname, count, size in groups:
            triples.append((gname, len(sizes), len(sizes) + count))
            sizes += [size] * count
            names += [f"{gname}[{i}]" for i in range(count)]
        return cls(tuple(sizes), tuple(names), tuple(triples))

    @classmethod
    def from_named_sizes(cls, named: list[tuple[str, int]], group: str = "all") -> BlockLayout:
        """One block per ``(name, size)`` pair, all in one group (e.g. modules of a network)."""
        return cls(
            tuple(s for _, s in named), tuple(n for n, _ in named), ((group, 0, len(named)),)
        )

    @property
    def num_params(self) -> int:
        return int(sum(self.sizes))

    @property
    def num_blocks(self) -> int:
        return len(self.sizes)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start of every block and the end of the last: ``len = num_blocks + 1``."""
        out = [0]
        for s in self.sizes:
            out.append(out[-1] + int(s))
        return tuple(out)

    def group(self, name: str) -> tuple[int, int]:
        """Block index range ``(start, stop)`` of group ``name``."""
        for gname, start, stop in self.groups:
            if gname == name:
                return start, stop
        valid = [g for g, _, _ in self.groups]
        raise ValueError(f"group must be one of {valid}, got {name!r}")

    def param_slice(self, name: str) -> slice:
        """Slice of the parameter vector covered by group ``name``."""
        start, stop = self.group(name)
        off = self.offsets
        return slice(off[start], off[stop])

    def subset(self, name: str) -> BlockLayout:
        """The layout of group ``name`` alone (for the sub-matrix ``H[s, s]``)."""
        start, stop = self.group(name)
        return BlockLayout(
            self.sizes[start:stop], self.names[start:stop], ((name, 0, stop - start),)
        )


@dataclass(frozen=True)
class BlockStats:
    """Off-diagonal versus diagonal block statistics of one group of blocks.

    Attributes:
        rms_ratio: ``sqrt(mean_{i≠j} ||H_ij||²) / sqrt(mean_i ||H_ii||²)``.
        median_ratio: median off-diagonal norm over median diagonal norm.
        max_ratio: largest off-diagonal norm over smallest diagonal norm.
        diag_mass: fraction of ``||H||_F²`` (of the group) carried by the diagonal blocks.
    """

    rms_ratio: float
    median_ratio: float
    max_ratio: float
    diag_mass: float


def block_norms(H: torch.Tensor, layout: BlockLayout, *, chunk_rows: int = 2048) -> torch.Tensor:
    """Frobenius norm of every block ``H_ij`` under ``layout``.

    Works on Hessians of tens of thousands of rows: rows are processed in chunks, so the extra
    memory is ``chunk_rows × P`` entries.

    Args:
        H: square matrix of shape ``(P, P)`` with ``P = layout.num_params``.
        layout: the block layout.
        chunk_rows: rows squared at a time.

    Returns:
        Tensor of shape ``(B, B)`` (float64) with ``B = layout.num_blocks``.
    """
    _check_square(H, layout)
    chunk_rows = check_positive_int("chunk_rows", chunk_rows)
    r = min(chunk_rows, H.shape[0])
    check_memory(3 * r * (H.shape[0] + 1) * 8, what=f"{r} squared rows of H", device=H.device)
    off = torch.tensor(layout.offsets, device=H.device)
    B = layout.num_blocks
    sq = torch.zeros(B, B, dtype=torch.float64, device=H.device)
    owner = torch.repeat_interleave(
        torch.arange(B, device=H.device), torch.tensor(layout.sizes, device=H.device)
    )  # (P,)
    for r0 in range(0, H.shape[0], chunk_rows):
        rows = H[r0 : r0 + chunk_rows].to(torch.float64).pow(2)  # (r, P)
        cs = torch.nn.functional.pad(rows.cumsum(dim=1), (1, 0))  # (r, P + 1)
        per_block = cs[:, off[1:]] - cs[:, off[:-1]]  # (r, B)
        sq.index_add_(0, owner[r0 : r0 + chunk_rows], per_block)
    return sq.sqrt()


def block_stats(H: torch.Tensor, layout: BlockLayout, *, group: str | None = None) -> BlockStats:
    """Ratio statistics of the blocks of one group (default: the whole layout).

    Args:
        H: Hessian ``(P, P)``.
        layout: its block layout.
        group: restrict to the square sub-matrix of this group (e.g. ``"V"`` for ``H_vv``).

    Returns:
        A :class:`BlockStats`.
    """
    norms = block_norms(H, layout)
    if group is not None:
        start, stop = layout.group(group)
        norms = norms[start:stop, start:stop]
    return stats_from_norms(norms)


def stats_from_norms(norms: torch.Tensor) -> BlockStats:
    """:class:`BlockStats` from a ``(B, B)`` matrix of block Frobenius norms."""
    B = norms.shape[0]
    if B < 2:
        raise ValueError("a block ratio needs at least two blocks in the group")
    eye = torch.eye(B, dtype=torch.bool, device=norms.device)
    diag, offd = norms[eye], norms[~eye]
    if float(diag.pow(2).sum()) == 0.0:
        raise ValueError("all diagonal blocks are zero: the ratio is undefined")
    rms = float(offd.pow(2).mean().sqrt() / diag.pow(2).mean().sqrt())
    med_d = float(diag.median())
    median = float(offd.median()) / med_d if med_d > 0 else float("inf")
    max_ratio = float(offd.max() / diag.min()) if float(diag.min()) > 0 else float("inf")
    mass = float(diag.pow(2).sum() / norms.pow(2).sum())
    return BlockStats(rms, median, max_ratio, mass)


def block_ratio(H: torch.Tensor, layout: BlockLayout, *, group: str | None = None) -> float:
    """The RMS off-diagonal / diagonal block ratio of one group."""
    return block_stats(H, layout, group=group).rms_ratio


def diag_mass_fraction(H: torch.Tensor, layout: BlockLayout) -> float:
    """Fraction of ``||H||_F²`` carried by the diagonal blocks of ``layout``."""
    norms = block_norms(H, layout)
    total = norms.pow(2).sum()
    if float(total) == 0.0:
        raise ValueError("H is zero: the diagonal mass fraction is undefined")
    return float(norms.diagonal().pow(2).sum() / total)


def _check_square(H: torch.Tensor, layout: BlockLayout) -> None:
    if not isinstance(layout, BlockLayout):
        raise TypeError(f"layout must be a BlockLayout, got {type(layout).__name__}")
    check_matrix("H", H)
    P = layout.num_params
    if H.shape != (P, P):
        raise ValueError(f"H must have shape ({P}, {P}) to match the layout, got {tuple(H.shape)}")


def pool_abs(
    H: torch.Tensor, *, max_pixels: int = 800, mode: str = "max"
) -> tuple[np.ndarray, int]:
    """``|H|`` pooled to at most ``max_pixels`` per side (max- or mean-abs pooling).

    A 25 000² Hessian cannot be drawn pixel per entry; pooling keeps isolated large entries
    visible (``max``) or shows local mass (``mean``).

    Returns:
        ``(image, factor)``: the pooled array and the pooling factor (1 = no pooling).
    """
    if mode not in ("max", "mean"):
        raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
    P = H.shape[0]
    factor = max(1, math.ceil(P / max_pixels))
    if factor == 1:
        return H.detach().abs().to(torch.float64).cpu().numpy(), 1
    pool = torch.nn.functional.max_pool2d if mode == "max" else torch.nn.functional.avg_pool2d
    rows = factor * max(1, (64 * 2**20) // (4 * P * factor))  # row panels of ~64 MB, whole tiles
    panels = []
    for r0 in range(0, P, rows):
        panel = H[r0 : r0 + rows].detach().abs().to(torch.float32)  # (rows, P)
        panels.append(pool(panel[None, None], factor, ceil_mode=True)[0, 0])
    img = torch.cat(panels, dim=0)  # (ceil(P / factor), ceil(P / factor))
    return img.to(torch.float64).cpu().numpy(), factor
