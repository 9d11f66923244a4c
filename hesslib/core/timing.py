"""Fair timings: one way to measure a speed that a chapter or a benchmark publishes.

A single wall-clock reading on a shared 2-core machine can move by 10× or more with the load,
so a published speed is measured here under fixed conditions: the same number of torch
threads for every contender, a warm-up call, several repeats interleaved between contenders,
and the minimum and median reported with the spread and the machine's load average beside
them. A result that still depends on the machine says so: :attr:`Timing.label` is the text a
chapter puts next to the number ("this machine, 2 threads, median of 5, load 1.3").
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from .checks import check_callable, check_positive_int, check_type

__all__ = ["Timing", "compare_timings", "time_call"]


@dataclass(frozen=True)
class Timing:
    """Repeated wall-clock measurements of one call.

    Attributes:
        seconds: every repeat, in the order measured (warm-up excluded).
        threads: torch's intra-op threads during the measurement.
        load: the 1-minute load average before the first repeat (``nan`` where unknown).
    """

    seconds: tuple[float, ...]
    threads: int
    load: float

    @property
    def min(self) -> float:
        """The fastest repeat: the least disturbed estimate of the call's cost."""
        return min(self.seconds)

    @property
    def median(self) -> float:
        """The median repeat."""
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """``max / min`` over the repeats (1 on a quiet machine)."""
        return max(self.seconds) / min(self.seconds)

    @property
    def label(self) -> str:
        """How the number was measured, for the page beside it."""
        return (
            f"this machine, {self.threads} thread(s), median of {len(self.seconds)} "
            f"(spread ×{self.spread:.2f}), load {self.load:.1f}"
        )


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return float("nan")


def compare_timings(
    calls: Mapping[str, Callable[[], object]],
    *,
    repeats: int = 5,
    threads: int | None = None,
    warmup: int = 1,
) -> dict[str, Timing]:
    """Time several contenders fairly: same threads, warm-up, repeats interleaved.

    Args:
        calls: ``name -> call`` (no arguments; the result is discarded). CUDA work is
            synchronised before each clock reading.
        repeats: timed calls per contender (≥ 1).
        threads: torch intra-op threads for all contenders (default: torch's current count);
            restored afterwards.
        warmup: untimed calls per contender before the first repeat.

    Returns:
        ``name -> Timing``.

    Raises:
        ValueError: no contenders, or ``repeats``/``threads`` not positive integers.
    """
    check_type("calls", calls, Mapping, "a mapping of names to calls")
    if not calls:
        raise ValueError("calls must name at least one contender")
    for name, call in calls.items():
        check_callable(f"calls[{name!r}]", call, "a callable taking no arguments")
    check_positive_int("repeats", repeats)
    if threads is not None:
        check_positive_int("threads", threads)
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    try:
        for call in calls.values():
            for _ in range(warmup):
                call()
        load = _load()
        seconds: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(repeats):  # interleaved, so a burst of load hits every contender
            for name, call in calls.items():
                sync()
                t0 = time.perf_counter()
                call()
                sync()
                seconds[name].append(time.perf_counter() - t0)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    return {name: Timing(tuple(s), used, load) for name, s in seconds.items()}


def time_call(
    call: Callable[[], object], *, repeats: int = 5, threads: int | None = None, warmup: int = 1
) -> Timing:
    """:func:`compare_timings` for a single call."""
    check_callable("call", call, "a callable taking no arguments")
    return compare_timings({"call": call}, repeats=repeats, threads=threads, warmup=warmup)["call"]
