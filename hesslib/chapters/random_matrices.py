r"""Chapter 05's experiment driver: the second-moment law against chapter 04's four cases.

Chapter 05 shows that a Hessian block ``H = (1/N) Σ_n ω_n u_n u_nᵀ`` whose weights ``ω_n`` are
independent of the features has, for ``u_n ~ N(0, I_d)`` and ``γ = d/N``,

.. math:: \tfrac1d \|H\|_F^2 \approx \gamma\, \mathbb E[\omega^2] + (\mathbb E \omega)^2 ,

the second moment of the generalised Marchenko–Pastur law (:func:`hesslib.core.gram.second_moment`).
:func:`second_moment_cases` puts that prediction beside the measured and the *decoupled*
block norms (weights recomputed on an independent copy of the data) of cases 1–4 of chapter 04,
block by block and as RMS block ratios (:class:`MomentRow`). The laws, the samplers and the
decoupling experiments themselves are in :mod:`hesslib.rmt`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from ..core.block_ratios import block_ratios_at_init, case_model, predicted_block_ratios
from ..core.checks import check_num_classes, check_positive_int
from ..core.device import make_generator, portable_randn, single_thread
from ..core.sweep import sweep_classes

__all__ = [
    "MomentRow",
    "second_moment_cases",
]


@dataclass(frozen=True)
class MomentRow:
    """Block second moments of one layer of one case, measured against predicted.

    ``diag``/``off``: mean over diagonal / off-diagonal blocks of ``‖H_b‖_F² / k`` (``k`` the
    block size), as ``(measured, decoupled, predicted)``; ``ratio``: the RMS block ratios in the
    same order. "Decoupled" recomputes the weights on an independent copy of ``X``.
    """

    case: int
    layer: str
    C: int
    size: int
    diag: tuple[float, float, float]
    off: tuple[float, float, float]
    ratio: tuple[float, float, float]


def _layer_moments(r, layer: str) -> tuple[float, float, float]:
    """``(mean diag ‖H_b‖², mean off ‖H_b‖², ratio)`` of one layer of a ``BlockRatios``."""
    if layer == "vv":
        off, diag = r.vv_sq
        return diag, off, r.vv
    sq = r.ww_sq
    eye = torch.eye(sq.shape[0], dtype=torch.bool, device=sq.device)
    return float(sq[eye].mean()), float(sq[~eye].mean()), r.ww


def second_moment_cases(
    Cs: Sequence[int],
    *,
    N: int,
    d: int,
    m: int = 8,
    num_draws: int = 1,
    init: str = "lecun",
    seed: int = 0,
    device=None,
) -> list[MomentRow]:
    r"""The four cases of chapter 04 against ``(1/k)‖H_b‖_F² ≈ γ E[ω²] + (E ω)²``.

    For each ``C`` and draw: data ``X`` (``N × d``), an independent copy for the decoupled
    blocks, ``4N`` independent inputs for the prediction, and fresh models of cases 1–4
    (:func:`hesslib.case_model`; cases 3 and 4 share their weights). Measured and decoupled
    values come from :func:`hesslib.block_ratios_at_init`, the prediction from
    :func:`hesslib.predicted_block_ratios` (chapter 04); all are averaged over ``num_draws``.
    Layers: ``vv`` (class blocks, size ``d`` or ``m``) for every case, ``ww`` (neuron blocks,
    size ``d``) for cases 3–4. Draw ``j`` of class count ``C`` is the sweep point
    ``(seed + j, C)`` of :func:`hesslib.core.sweep.sweep_classes`.
    """
    N, d, m = (check_positive_int(k, v) for k, v in (("N", N), ("d", d), ("m", m)))
    num_draws = check_positive_int("num_draws", num_draws)
    Cs = [check_num_classes(int(C)) for C in Cs]
    point = partial(_draw_moments, N=N, d=d, m=m, init=init, device=device)
    with single_thread(device):
        grid = sweep_classes(Cs, [seed + j for j in range(num_draws)], point, streams=2)
    rows = []
    for C, draws in zip(Cs, grid, strict=True):
        for case, layer in draws[0]:
            mean = torch.stack([v[case, layer] for v in draws]).mean(0)  # (3 estimates, 3)
            size = d if layer == "ww" or case < 3 else m
            diag, off, ratio = (mean[:, q].tolist() for q in range(3))
            diag, off = (tuple(v / size for v in vals) for vals in (diag, off))
            rows.append(MomentRow(case, layer, C, size, diag, off, tuple(ratio)))
    return rows


def _draw_moments(C: int, base: int, *, N, d, m, init, device) -> dict[tuple[int, str], Tensor]:
    """``(case, layer) -> (3, 3)``: (measured, decoupled, predicted) × (diag, off, ratio).

    The table is float32 (``torch.tensor`` of Python floats), as the published numbers are.
    """
    gen = make_generator(base)  # data from seed base, weights from base + 1
    X, X_dec, X_pred = (portable_randn(n, d, generator=gen, device=device) for n in (N, N, 4 * N))
    out = {}
    for case in (1, 2, 3, 4):
        model, loss = case_model(case, d, C, m=m, init=init, seed=base + 1, device=device)
        res = (
            block_ratios_at_init(model, X, loss=loss),
            block_ratios_at_init(model, X, loss=loss, decouple_with=X_dec),
            predicted_block_ratios(model, X_pred, N=N, loss=loss),
        )
        for layer in ("vv",) if case < 3 else ("vv", "ww"):
            out[case, layer] = torch.tensor([_layer_moments(r, layer) for r in res])
    return out
