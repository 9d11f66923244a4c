r"""The static force (chapter 04): block ratios of ``H_vv`` and ``H_ww`` at random initialisation.

The sweep over class counts and the layer couplings ("three levels") are in
:mod:`hesslib.chapters.static_force`; the Gram identities and the second-moment formula used
here are those of :mod:`hesslib.core.gram`.

The layer Hessians of cases 1–4 (talk Part III) are sums over samples of rank-one terms,

.. math::
    H_{v_iv_j} = \tfrac1N \textstyle\sum_n \lambda^{ij}_n\, u_n u_n^\top, \qquad
    H_{w_kw_l} = \tfrac1N \textstyle\sum_n c^{kl}_n\, x_n x_n^\top,

with features ``u_n = x_n`` (linear model) or ``a_n = relu(W x_n)`` (one hidden layer), class
weights ``λ^{ij}_n = S_n[i, j]`` (``S_n = diag(p_n) − p_n p_nᵀ`` for CE, ``I`` for MSE) and neuron
weights ``c^{kl}_n = (Vᵀ S_n V)_{kl} D_{nk} D_{nl}``. Their squared Frobenius norms need no
Hessian: with the Gram matrix ``G = U Uᵀ`` (``N × N``),

.. math:: \|H_b\|_F^2 = \frac{1}{N^2}\, \lambda_b^\top (G \circ G)\, \lambda_b,

and sums over all class pairs reduce to ``N × N`` products of the softmax matrix ``P``:
``Σ_{i≠j} λ^{ij}_n λ^{ij}_{n'} = (p_n·p_{n'})² − Σ_i p_{ni}² p_{n'i}²``. The cost is
``O(N² (k + C))`` instead of the ``O(N C² k²)`` of the dense ``H_vv``.

The prediction replaces each block by the generalised Marchenko–Pastur second moment
(:func:`hesslib.core.gram.second_moment`), ``(1/d) ‖H‖_F² ≈ γ E[λ²] + (E λ)²`` with
``γ = d/N`` and λ drawn from the model at initialisation on inputs independent of ``X``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .checks import check_loss, check_matrix, check_positive_int
from .gram import (
    class_pair_grams,
    gram_block_sum,
    gram_moments,
    sample_second_moment,
    second_moment,
    squared_gram,
)
from .models import LinearNet, OneHiddenNet, linear_net, one_hidden_net

__all__ = [
    "CASES",
    "block_ratios_at_init",
    "BlockRatios",
    "case_model",
    "predicted_block_ratios",
]

#: The four cases of the talk: ``case -> (model kind, loss)``.
CASES: dict[int, tuple[str, str]] = {
    1: ("linear", "mse"),
    2: ("linear", "ce"),
    3: ("one_hidden", "mse"),
    4: ("one_hidden", "ce"),
}


@dataclass(frozen=True)
class BlockRatios:
    """RMS off-diagonal / diagonal block ratios of the two layer Hessians.

    Attributes:
        vv: ratio over the ``C`` class blocks of ``H_vv``.
        ww: ratio over the ``m`` neuron blocks of ``H_ww`` (``nan`` for the linear model,
            which has no hidden layer).
        vv_sq: ``(mean_{i≠j} ‖H_{v_iv_j}‖², mean_i ‖H_{v_iv_i}‖²)``.
        ww_sq: ``(m, m)`` matrix of ``‖H_{w_kw_l}‖_F²`` (``None`` for the linear model).
    """

    vv: float
    ww: float
    vv_sq: tuple[float, float]
    ww_sq: torch.Tensor | None


# ----------------------------------------------------------------------------- models
def case_model(
    case: int,
    d: int,
    num_classes: int,
    *,
    m: int = 8,
    init: str = "lecun",
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[nn.Module, str]:
    """The model and loss of case 1–4 (see :data:`CASES`), freshly initialised.

    Returns:
        ``(model, loss)``: a :class:`~hesslib.LinearNet` or :class:`~hesslib.OneHiddenNet` and
        ``"mse"`` or ``"ce"``.
    """
    if case not in CASES:
        raise ValueError(f"case must be one of {sorted(CASES)}, got {case!r}")
    kind, loss = CASES[case]
    kw = {"init": init, "seed": seed, "device": device, "dtype": dtype}
    if kind == "linear":
        return linear_net(d, num_classes, **kw), loss
    return one_hidden_net(d, m, num_classes, **kw), loss


def _forward_parts(model: nn.Module, X: torch.Tensor):
    """Features ``U`` (N, k), ReLU mask ``D`` (N, m) or ``None``, logits (N, C)."""
    if isinstance(model, LinearNet):
        V = model.V.detach()
        return X, None, X @ V.T
    if isinstance(model, OneHiddenNet):
        W, V = model.W.detach(), model.V.detach()
        Z = X @ W.T  # (N, m)
        D = (Z > 0).to(X.dtype)
        A = Z * D
        return A, D, A @ V.T
    raise TypeError(f"model must be a LinearNet or OneHiddenNet, got {type(model).__name__}")


def _check_model_input(model: nn.Module, X: torch.Tensor, loss: str, name: str = "X") -> None:
    check_matrix(name, X)
    check_loss(loss)
    if not isinstance(model, (LinearNet, OneHiddenNet)):
        raise TypeError(f"model must be a LinearNet or OneHiddenNet, got {type(model).__name__}")
    first = model.V if isinstance(model, LinearNet) else model.W
    if first.shape[1] != X.shape[1]:
        raise ValueError(
            f"{name} must have {first.shape[1]} columns to match the model, got {X.shape[1]}"
        )
    if first.dtype != X.dtype or first.device != X.device:
        raise TypeError(
            f"{name} must have the model's dtype/device ({first.dtype}, {first.device})"
        )


def _neuron_weights(D: torch.Tensor, V: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
    r"""``c_n^{kl} = (Vᵀ S_n V)_{kl} D_{nk} D_{nl}``, shape ``(N, m, m)``."""
    N, m = D.shape
    if p is None:  # MSE: S_n = I
        M = (V.T @ V).expand(N, m, m)
    else:  # CE: Vᵀ diag(p) V − (Vᵀp)(Vᵀp)ᵀ, as one (N, C) @ (C, m²) GEMM
        VV = (V[:, :, None] * V[:, None, :]).reshape(V.shape[0], m * m)  # (C, m²)
        u = p @ V  # (N, m)
        M = (p @ VV).view(N, m, m) - u[:, :, None] * u[:, None, :]  # (N, m, m)
    return M * D[:, :, None] * D[:, None, :]


# ----------------------------------------------------------------------------- measured
def _class_block_sq(K: torch.Tensor, p: torch.Tensor | None, C: int) -> tuple[float, float]:
    """``(mean_{i≠j} ‖H_ij‖², mean_i ‖H_ii‖²)`` of the class blocks from ``K = G ∘ G``."""
    if p is None:  # MSE: H_ii = UᵀU/N for all i, H_ij = 0
        return 0.0, float(K.sum()) / K.shape[0] ** 2
    diag, off = (gram_block_sum(K, Y) for Y in class_pair_grams([p])[:2])
    return off / (C * (C - 1)), diag / C


def _neuron_block_sq(KX: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``‖H_{w_kw_l}‖²`` for all pairs from ``KX = (X Xᵀ)∘(X Xᵀ)`` and weights ``c`` (N, m, m)."""
    N, m, _ = c.shape
    c2 = c.reshape(N, m * m)  # (N, m²)
    return ((KX @ c2) * c2).sum(0).view(m, m) / N**2


def _ratio(off: float, diag: float) -> float:
    if diag <= 0:
        raise ValueError("all diagonal blocks are zero: the ratio is undefined")
    return math.sqrt(max(off, 0.0) / diag)


def _ratio_from_matrix(sq: torch.Tensor) -> tuple[float, float]:
    m = sq.shape[0]
    eye = torch.eye(m, dtype=torch.bool, device=sq.device)
    return float(sq[~eye].mean()), float(sq[eye].mean())


def block_ratios_at_init(
    model: nn.Module,
    X: torch.Tensor,
    *,
    loss: str = "ce",
    decouple_with: torch.Tensor | None = None,
) -> BlockRatios:
    r"""RMS block ratios of ``H_vv`` and ``H_ww`` without forming the Hessian.

    Uses ``‖(1/N) Σ_n λ_n u_n u_nᵀ‖_F² = λᵀ (G∘G) λ / N²`` (``G = U Uᵀ``), summed over block
    pairs in closed form (module docstring). ``H_vv`` and ``H_ww`` do not depend on the labels,
    so none are needed. The formula holds at any weights; the chapter uses it at initialisation.

    Cost: ``O(N² (d + 3C) + N C m²)`` multiply-adds and ``O(N²)`` memory, against
    ``O(N C² m²)`` time and ``O(C² m²)`` memory for the dense ``H_vv``.

    Args:
        model: a :class:`~hesslib.LinearNet` (cases 1–2) or :class:`~hesslib.OneHiddenNet`
            (cases 3–4).
        X: inputs ``(N, d)`` with the model's dtype and device.
        loss: ``"ce"`` or ``"mse"``.
        decouple_with: optional inputs ``(N, d)`` independent of ``X``. When given, the
            weights ``λ_n`` and ``c_n`` (softmax, ReLU masks) are computed on them while the
            features stay those of ``X``: the *decoupled* Hessian ``H̃`` of chapter 05, whose
            second moment is what :func:`predicted_block_ratios` predicts.

    Returns:
        :class:`BlockRatios` (``ww`` is ``nan`` for the linear model). Under MSE, ``vv == 0``
        exactly (case 1, and ``H_vv`` of case 3).
    """
    _check_model_input(model, X, loss)
    U, D, F = _forward_parts(model, X)
    if decouple_with is not None:
        _check_model_input(model, decouple_with, loss, "decouple_with")
        if decouple_with.shape != X.shape:
            raise ValueError(
                f"decouple_with must have X's shape {tuple(X.shape)}, "
                f"got {tuple(decouple_with.shape)}"
            )
        _, D, F = _forward_parts(model, decouple_with)
    C = F.shape[1]
    p = torch.softmax(F, dim=1) if loss == "ce" else None
    KX = squared_gram(X)
    K = KX if D is None else squared_gram(U)
    vv_sq = _class_block_sq(K, p, C)
    if D is None:
        return BlockRatios(_ratio(*vv_sq), float("nan"), vv_sq, None)
    ww_sq = _neuron_block_sq(KX, _neuron_weights(D, model.V.detach(), p))
    return BlockRatios(_ratio(*vv_sq), _ratio(*_ratio_from_matrix(ww_sq)), vv_sq, ww_sq)


# ----------------------------------------------------------------------------- predicted
def _class_moments(p: torch.Tensor | None, C: int):
    """Block-averaged ``(E λ², (E λ)²)`` for off-diagonal and diagonal class weights.

    For ``C > N'`` the ``(N', N')`` sums of :func:`~hesslib.core.gram.gram_moments`; else the
    same moments from ``(C, C)`` class sums (``‖PᵀP‖_F = ‖P Pᵀ‖_F``), the smaller matrix.
    """
    if p is None:
        return (0.0, 0.0), (1.0, 1.0)
    Nt = p.shape[0]
    if C > Nt:
        diag, off = (gram_moments(Y) for Y in class_pair_grams([p])[:2])
    else:
        p2 = p * p
        s2 = p2.sum(1)
        S = p.T @ p / Nt  # (C, C) mean of p pᵀ
        m2_off = float((S * S).sum()) - float((p2.mean(0) ** 2).sum())
        off = float((s2 * s2 - (p2 * p2).sum(1)).mean()), m2_off
        T = p - p2
        diag = float((T * T).sum(1).mean()), float((T.mean(0) ** 2).sum())
    return tuple(v / (C * (C - 1)) for v in off), tuple(v / C for v in diag)


def predicted_block_ratios(
    model: nn.Module,
    X_indep: torch.Tensor,
    *,
    N: int,
    loss: str = "ce",
) -> BlockRatios:
    r"""Random-matrix prediction of :func:`block_ratios_at_init` from the second moment.

    Each block ``(1/N) Σ_n λ_n u_n u_nᵀ`` is replaced by the limit of its squared Frobenius norm
    for λ independent of the features (generalised MP law, chapter 05):

    .. math:: \|H\|_F^2 \approx \|\Sigma_u\|_F^2\,\big(\gamma\,\mathbb E[\lambda^2]
        + (\mathbb E\lambda)^2\big),

    which for ``u = x ~ N(0, I_d)`` is ``d (γ E[λ²] + (E λ)²)``, ``γ = d/N``
    (:func:`hesslib.core.gram.second_moment`, as :func:`hesslib.rmt.second_moment_prediction`).
    The expectations are over λ computed from the same model on inputs ``X_indep`` drawn
    independently of the data (the "decoupled" Hessian of chapter 05). For the ReLU features
    ``a = relu(W x)`` of the output layer (a fixed, small ``m``; not isotropic) the same
    computation with ``Σ_a = E[a aᵀ]`` and ``γ_eff = E‖a‖⁴ / (N ‖Σ_a‖_F²)`` gives the exact
    mean of ``‖H‖_F²`` for independent λ (for ``u = x`` it gives ``γ_eff = (d + 2)/N ≈ γ``).

    Args:
        model: the model whose Hessian is predicted.
        X_indep: inputs ``(N', d)`` independent of the data (``N'`` need not equal ``N``).
        N: the number of samples of the Hessian being predicted (sets ``γ = d/N``).
        loss: ``"ce"`` or ``"mse"``.

    Returns:
        :class:`BlockRatios` with the predicted ratios and squared norms.
    """
    _check_model_input(model, X_indep, loss, "X_indep")
    check_positive_int("N", N)
    U, D, F = _forward_parts(model, X_indep)
    C = F.shape[1]
    d = X_indep.shape[1]
    p = torch.softmax(F, dim=1) if loss == "ce" else None
    if D is None:  # features x: ‖Σ‖² = d, γ = d/N
        scale, gamma = float(d), d / N
    else:  # features a: Σ_a = E[a aᵀ], γ_eff = E‖a‖⁴ / (N ‖Σ_a‖²)
        Sigma = U.T @ U / U.shape[0]
        scale = float((Sigma * Sigma).sum())
        gamma = float((U * U).sum(1).pow(2).mean()) / (N * scale)
    vv_sq = tuple(scale * second_moment(e2, m2, gamma=gamma) for e2, m2 in _class_moments(p, C))
    if D is None:
        return BlockRatios(_ratio(*vv_sq), float("nan"), vv_sq, None)
    c = _neuron_weights(D, model.V.detach(), p)  # (N', m, m)
    ww_sq = d * sample_second_moment(c, gamma=d / N)  # (m, m): λ = c^{kl}_n, features x
    return BlockRatios(_ratio(*vv_sq), _ratio(*_ratio_from_matrix(ww_sq)), vv_sq, ww_sq)
