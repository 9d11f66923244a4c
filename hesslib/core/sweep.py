"""Sweeps over class counts and seeds: one seed mixer and one driver for every chapter.

A sweep point ``(seed, index)`` (``index`` a class count ``C`` or a sample count ``N``) gets
its own base seed from :func:`point_seed` and may use the ``streams`` consecutive seeds
``base, base + 1, …`` for its data and weights; distinct points never share a seed, so the
points of a sweep are independent draws (and a slope fit's residuals are too).
:func:`sweep_classes` runs a function at every ``(C, seed)`` with that base seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = [
    "point_seed",
    "sweep_classes",
]

T = TypeVar("T")

#: A prime above every index of a sweep: ``seed · 1_000_003 + index`` is one-to-one.
_STRIDE = 1_000_003


def point_seed(seed: int, index: int, *, streams: int = 1) -> int:
    """Base seed of the sweep point ``(seed, index)``: ``streams · (seed · 1_000_003 + index)``.

    For ``0 <= index < 1_000_003`` the ranges ``[base, base + streams)`` of distinct points
    are disjoint, so each point may draw its ``streams`` generators from ``base + j``.
    """
    return streams * (int(seed) * _STRIDE + int(index))


def sweep_classes(
    C_values: Sequence[int],
    seeds: Sequence[int],
    fn: Callable[[int, int], T],
    *,
    streams: int = 1,
    progress: bool = False,
    desc: str = "C sweep",
) -> list[list[T]]:
    """``fn(C, base)`` for every class count and seed, ``base = point_seed(seed, C, streams=…)``.

    Args:
        C_values: class counts (validated by the caller).
        seeds: integer seeds.
        fn: the computation at one point; it draws everything from seeds ``base + j``,
            ``0 <= j < streams``.
        streams: seeds reserved per point.
        progress: show a tqdm bar; desc: its label.

    Returns:
        ``results[k][s]`` for ``C_values[k]`` and ``seeds[s]``.
    """
    from tqdm.auto import tqdm

    out = []
    with tqdm(total=len(C_values) * len(seeds), desc=desc, disable=not progress) as bar:
        for C in C_values:
            row = []
            for seed in seeds:
                row.append(fn(int(C), point_seed(seed, C, streams=streams)))
                bar.update()
            out.append(row)
    return out
