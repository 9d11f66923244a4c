"""TODO docstring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..core.checks import check_num_classes, check_positive_int
from ..core.device import make_generator, portable_randn, single_thread

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
    r"""The four cases of chapter 04 against ``(1/k)‖H_b‖_F² ≈ γ E[λ²] + (E λ)²``.

    For each ``C`` and draw: data ``X`` (``N × d``), an independent copy for the decoupled
    blocks, ``4N`` independent inputs for the prediction, and fresh models of cases 1–4
    (:func:`hesslib.case_model`; cases 3 and 4 share their weights). Measured and decoupled
    values come from :func:`hesslib.block_ratios_at_init`, the prediction from
    :func:`hesslib.predicted_block_ratios` (chapter 04); all are averaged over ``num_draws``.
    Layers: ``vv`` (class blocks, size ``d`` or ``m``) for every case, ``ww`` (neuron blocks,
    size ``d``) for cases 3–4.
    """
    from ..core.block_ratios import block_ratios_at_init, case_model, predicted_block_ratios

    N, d, m = (check_positive_int(k, v) for k, v in (("N", N), ("d", d), ("m", m)))
    num_draws = check_positive_int("num_draws", num_draws)
    rows = []
    with single_thread(device):
        for C in Cs:
            C = check_num_classes(int(C))
            acc: dict[tuple[int, str], list] = {}
            for draw in range(num_draws):
                base = 2 * ((seed + draw) * 1_000_003 + C)  # data and weights: disjoint streams
                gen = make_generator(base)
                X, X_dec, X_pred = (
                    portable_randn(n, d, generator=gen, device=device) for n in (N, N, 4 * N)
                )
                for case in (1, 2, 3, 4):
                    model, loss = case_model(
                        case, d, C, m=m, init=init, seed=base + 1, device=device
                    )
                    res = (
                        block_ratios_at_init(model, X, loss=loss),
                        block_ratios_at_init(model, X, loss=loss, decouple_with=X_dec),
                        predicted_block_ratios(model, X_pred, N=N, loss=loss),
                    )
                    for layer in ("vv",) if case < 3 else ("vv", "ww"):
                        vals = [_layer_moments(r, layer) for r in res]  # 3 × (diag, off, ratio)
                        acc.setdefault((case, layer), []).append(torch.tensor(vals))
            for (case, layer), vals in acc.items():
                mean = torch.stack(vals).mean(0)  # (3 estimates, 3 quantities)
                size = d if layer == "ww" or case < 3 else m
                diag, off, ratio = (tuple(mean[:, q].tolist()) for q in range(3))
                rows.append(
                    MomentRow(
                        case,
                        layer,
                        C,
                        size,
                        tuple(v / size for v in diag),
                        tuple(v / size for v in off),
                        ratio,
                    )
                )
    return rows
