"""Curves against the class count: measured block ratios with seed bands and their predictions.

:func:`sweep` draws one statistic of a class-count sweep
(:func:`hesslib.chapters.static_force.class_sweep`) as a median line with its band over seeds;
:func:`ratio_vs_c` draws any ratio against ``C`` on log-log axes (chapters 04 and 05).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

from ..core.checks import as_finite_float64, check_real, check_record, check_shape

if TYPE_CHECKING:  # the figure reads the result; it needs no chapter code to run
    from ..chapters.static_force import ClassSweep

__all__ = [
    "ratio_vs_c",
    "sweep",
]


def sweep(result: ClassSweep, key: str, *, ax, label: str, color: str, compensate: float = 0.0):
    r"""Measured ratios (mean over seeds, min–max band) and the prediction (dashed) against C.

    Args:
        result: a :class:`~hesslib.chapters.static_force.ClassSweep`.
        key: one of its statistics (``result.measured``'s keys, e.g. ``"case2_vv"``).
        ax: matplotlib axes (log-log).
        label: curve label.
        color: curve colour.
        compensate: plot ``r · C^compensate`` (e.g. 1 for class blocks, ½ for neuron blocks)
            so that the predicted power law is a flat line.
    """
    check_record("result", result, ("Cs", "measured", "predicted"), "a ClassSweep")
    check_real("compensate", compensate)
    if key not in result.measured:
        raise ValueError(f"key must be one of {sorted(result.measured)}, got {key!r}")
    Cs = result.Cs.astype(float)
    scale = Cs[:, None] ** compensate
    M, P = result.measured[key] * scale, result.predicted[key] * scale
    ax.plot(Cs, M.mean(1), "o-", color=color, ms=4, label=f"{label}, measured")
    ax.fill_between(Cs, M.min(1), M.max(1), color=color, alpha=0.2, lw=0)
    ax.plot(Cs, P.mean(1), "x--", color=color, ms=5, label=f"{label}, second-moment prediction")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of classes C")
    return ax


def ratio_vs_c(
    Cs, ratios, *, ax: plt.Axes | None = None, label: str, band=None, marker: str = "o", **kw
) -> plt.Axes:
    """Log-log plot of a block ratio against the number of classes, with an optional band.

    Args:
        Cs: class counts ``(K,)``.
        ratios: mean ratio per C ``(K,)``.
        ax: axes.
        label: legend label.
        band: ``(low, high)`` arrays drawn as a shaded band (e.g. min/max over seeds).
        marker: marker style.
    """
    c = as_finite_float64("Cs", Cs)
    check_shape("Cs", c, ("K",))
    check_shape("ratios", as_finite_float64("ratios", ratios), (c.numel(),), "to match Cs")
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    (line,) = ax.plot(Cs, ratios, marker=marker, label=label, **kw)
    if band is not None:
        ax.fill_between(Cs, band[0], band[1], color=line.get_color(), alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of classes C")
    ax.set_ylabel("off-diagonal / diagonal block ratio")
    return ax
