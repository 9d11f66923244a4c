r"""Block heterogeneity measured above its noise, and the full spectrum beside the blocks.

How far apart are two SLQ estimates of the *same* spectrum? The noise floor of JS distances.

An SLQ density is an estimate from a few random probes and a few Lanczos steps, so two
independent runs on the same matrix give two different curves, and the Jensen–Shannon distance
between them is not zero. That distance is the floor below which a JS distance between two
*different* blocks says nothing: a model whose blocks all had the same spectrum would show a
``JS⁰`` of about this size. :func:`js_noise_floor` measures it block by block from two
independent probe sets; :func:`pooled_spectrum` merges two probe sets into one estimate;
:func:`scaled_spectrum` puts a spectrum on a dimensionless axis (eigenvalues divided by their
RMS ``√(tr H²/d)``) so that spectra of different scales can be compared by shape (§2.2 of "Why
Transformers Need Adam": the full spectra of CNNs and transformers look alike).
:func:`js_estimate` gives a model's ``JS⁰`` with its floor, :func:`full_spectrum` the SLQ
density of the whole Hessian.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..core.checks import check_real, check_type
from ..core.flat import flat_loss
from .blockwise import BlockwiseSpectra, hvp_matvec
from .density import Spectrum, slq, slq_density
from .js import js_zero, pairwise_js, union_grid

__all__ = [
    "JSEstimate",
    "full_spectrum",
    "js_estimate",
    "js_noise_floor",
    "pooled_spectrum",
    "scaled_spectrum",
    "split_probes",
    "spectrum_distance",
    "tail_masses",
]


def _check_spectra(**spectra: object) -> None:
    for name, s in spectra.items():
        check_type(name, s, Spectrum, "a Spectrum (from hl.slq_density)")


def spectrum_distance(a: Spectrum, b: Spectrum) -> float:
    """Standard JS distance (base 2) between two spectra on the union of their grids."""
    _check_spectra(a=a, b=b)
    return float(pairwise_js([a, b], grid=union_grid([a, b]))[0, 1])


def js_noise_floor(a: Sequence[Spectrum], b: Sequence[Spectrum]) -> torch.Tensor:
    """JS distance between two independent estimates of each block, ``(B,)``.

    Args:
        a, b: the same blocks' spectra from two independent probe sets (same Lanczos steps).

    Raises:
        ValueError: the two lists differ in length or are empty.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"a and b must list the same blocks, got {len(a)} and {len(b)}")
    return torch.tensor([spectrum_distance(x, y) for x, y in zip(a, b)], dtype=torch.float64)


def split_probes(s: Spectrum, *, sigma_rel: float = 0.02) -> tuple[Spectrum, Spectrum]:
    """Two independent estimates from one: the first and the second half of the probes.

    Raises:
        ValueError: fewer than 2 probes.
    """
    _check_spectra(s=s)
    k = s.num_probes
    if k < 2:
        raise ValueError(f"need at least 2 probes to split, got {k}")
    h = k // 2
    halves = ((s.nodes[:h], s.weights[:h]), (s.nodes[h : 2 * h], s.weights[h : 2 * h]))
    return tuple(slq_density(q, sigma_rel=sigma_rel, num_grid=s.grid.numel()) for q in halves)


def pooled_spectrum(a: Spectrum, b: Spectrum, *, sigma_rel: float = 0.02) -> Spectrum:
    """One estimate from both probe sets: the quadratures of ``a`` and ``b`` side by side."""
    _check_spectra(a=a, b=b)
    nodes = torch.cat([a.nodes, b.nodes], 0)
    weights = torch.cat([a.weights, b.weights], 0)
    return slq_density((nodes, weights), sigma_rel=sigma_rel, num_grid=a.grid.numel())


def scaled_spectrum(s: Spectrum, *, sigma_rel: float = 0.02) -> Spectrum:
    r"""The spectrum of ``H / λ_rms`` with ``λ_rms = √(tr H² / d)`` (the SLQ second moment):
    a dimensionless shape, blurred again with ``sigma_rel`` of its range."""
    _check_spectra(s=s)
    rms = math.sqrt(max(s.moment(2), 0.0))
    if not rms > 0:
        raise ValueError("the spectrum has no second moment (all nodes are 0)")
    return slq_density((s.nodes / rms, s.weights), sigma_rel=sigma_rel, num_grid=s.grid.numel())


def tail_masses(s: Spectrum, *, rel: float = 0.05) -> tuple[float, float]:
    """Mass of the quadrature below ``−rel·max|λ|`` and above ``+rel·max|λ|`` (mean over probes).

    The many eigenvalues near 0 are left out, so the two numbers compare the negative and the
    positive *tails*: about equal for a spectrum symmetric around 0.
    """
    _check_spectra(s=s)
    rel = check_real("rel", rel, positive=True)
    w = s.weights / s.weights.sum(1, keepdim=True)
    tau = rel * float(s.nodes[s.weights > 0].abs().max())
    neg = float((w * (s.nodes < -tau)).sum(1).mean())
    pos = float((w * (s.nodes > tau)).sum(1).mean())
    return neg, pos


@dataclass(frozen=True, eq=False)
class JSEstimate:
    """``JS⁰`` of a set of blocks with the estimator's own noise.

    Attributes:
        names: the blocks.
        js: ``(B, B)`` JS distances of the first probe set.
        js0: their mean off-diagonal entry.
        js0_other: ``JS⁰`` of the second, independent probe set.
        floor: JS distance between the two estimates of each block, ``(B,)``.
    """

    names: tuple[str, ...]
    js: torch.Tensor
    js0: float
    js0_other: float
    floor: torch.Tensor

    @property
    def floor_mean(self) -> float:
        """The noise floor: mean JS distance between two estimates of the same block."""
        return float(self.floor.mean())


def js_estimate(
    first: BlockwiseSpectra, second: BlockwiseSpectra | None = None, *, drop: Sequence[str] = ()
) -> JSEstimate:
    """``JS⁰`` and its noise floor from two independent probe sets of the same blocks.

    ``second`` is a second SLQ run with another seed; without it the probes of ``first`` are
    split in halves (then ``js`` and ``JS⁰`` are of the first half). Blocks named in ``drop``
    are left out (e.g. the input and output layers).
    """
    what = "a BlockwiseSpectra (from hl.blockwise_spectra)"
    check_type("first", first, BlockwiseSpectra, what)
    if second is not None:
        check_type("second", second, BlockwiseSpectra, what)
    keep = [i for i, n in enumerate(first.names) if n not in drop]
    if second is None:
        A, B = zip(*(split_probes(first.spectra[i]) for i in keep))
    else:
        if second.names != first.names:
            raise ValueError("second must hold the same blocks as first")
        A, B = [first.spectra[i] for i in keep], [second.spectra[i] for i in keep]
    DA = pairwise_js(list(A), grid=union_grid(A))
    DB = pairwise_js(list(B), grid=union_grid(B))
    names = tuple(first.names[i] for i in keep)
    return JSEstimate(names, DA, js_zero(DA), js_zero(DB), js_noise_floor(A, B))


def full_spectrum(
    net: nn.Module, X, y, *, num_steps: int, num_probes: int, seed: int = 0, chunk=None
) -> Spectrum:
    """SLQ of the *whole* Hessian of the mean CE loss (probes over all parameters, §2.2)."""
    check_type("net", net, nn.Module, "a torch.nn.Module")
    f, theta = flat_loss(net, X, y, "ce")  # checks the batch (one forward pass)
    return slq(
        hvp_matvec(f, theta, chunk=chunk),
        theta.numel(),
        num_steps=num_steps,
        num_probes=num_probes,
        seed=seed,
        device=theta.device,
    )
