r"""Block norms of the output-layer (LM-head) Hessian under CE from Gram matrices, for any C.

For a linear output layer ``f(a) = V a`` on features ``a_n ∈ R^d`` and mean cross-entropy,
the class block ``(c, c')`` of the Hessian is

.. math:: H_{cc'} = \frac1N \sum_n S_n[c, c']\, a_n a_n^\top, \qquad
   S_n = \operatorname{diag}(p_n) - p_n p_n^\top .

For any ``M = (1/N) Σ_n s_n a_n a_nᵀ``, ``‖M‖_F² = sᵀ (G∘G) s / N²`` with ``G = A Aᵀ``
(``(N, N)``): no ``d × d`` block and no ``Cd × Cd`` Hessian is ever formed. Summing over all
pairs collapses the class sums into ``(N, N)`` matrices built by GEMMs over the classes,

.. math:: \sum_c \|H_{cc}\|_F^2 = \frac{1}{N^2}\sum_{n,m} K_{nm} (\Lambda\Lambda^\top)_{nm},
   \quad \sum_{c \ne c'} \|H_{cc'}\|_F^2 = \frac{1}{N^2}\sum_{n,m} K_{nm}
   \big[(p_n\!\cdot p_m)^2 - (P^{\circ 2} P^{\circ 2\top})_{nm}\big],

with ``K = G∘G``, ``Λ_{nc} = p_{nc}(1 − p_{nc})``: cost ``O(N² (C + d))``, memory ``O(N²)`` plus
one chunk of classes. Replacing ``K`` by ``d·11ᵀ + d²·I`` — to leading order its mean under
``a_n ~ N(0, I_d)`` independent of ``p`` — gives, block by block, exactly the second-moment
formula ``d (γ E[λ²] + (E λ)²)`` of chapter 05, with the moments read off the same ``(N, N)``
sums (:func:`gram_moments`).

This module is the one home of the Gram identity (:func:`squared_gram`,
:func:`gram_block_sum`, :func:`class_pair_grams`; chapter 04's
:func:`hesslib.block_ratios_at_init` uses them too) and of the second-moment formula
(:func:`second_moment`, :func:`sample_second_moment`; :func:`hesslib.rmt.second_moment_prediction`
and :func:`hesslib.predicted_block_ratios` call it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .checks import (
    check_device,
    check_dtype,
    check_matrix,
    check_num_classes,
    check_positive_int,
)
from .device import default_device, make_generator
from .hessian import check_memory

__all__ = [
    "class_pair_grams",
    "gram_block_sum",
    "gram_moments",
    "lm_head_block_stats",
    "output_block_norms_gram",
    "output_block_stats_gram",
    "OutputBlockStats",
    "sample_second_moment",
    "second_moment",
    "squared_gram",
]


# ----------------------------------------------------------------------------- the identities
def squared_gram(U: torch.Tensor) -> torch.Tensor:
    """``K = G ∘ G`` with ``G = U Uᵀ``: ``K_nm = (u_n · u_m)²``, shape ``(N, N)``."""
    G = U @ U.T
    return G * G


def gram_block_sum(K: torch.Tensor, Y: torch.Tensor) -> float:
    r"""``Σ_b ‖(1/N) Σ_n λ_{bn} u_n u_nᵀ‖_F² = Σ_{nm} K_{nm} Y_{nm} / N²`` for ``Y = Σ_b λ_b λ_bᵀ``.

    The Gram identity: ``‖(1/N) Σ_n λ_n u_n u_nᵀ‖_F² = λᵀ (G∘G) λ / N²``, summed over blocks.
    """
    return float((K * Y).sum()) / K.shape[0] ** 2


def class_pair_grams(prob_chunks) -> tuple[torch.Tensor, torch.Tensor, int]:
    r"""``Y = Σ_b λ_b λ_bᵀ`` (``(N, N)``) over the diagonal and the off-diagonal class blocks.

    Class block ``(c, c')`` of ``S_n = diag(p_n) − p_n p_nᵀ`` has the weights
    ``λ_n = p_{nc}(1 − p_{nc})`` (``c = c'``) or ``−p_{nc} p_{nc'}``, so
    ``Y_diag = Λ Λᵀ`` and ``Y_off = (P Pᵀ)^{∘2} − P^{∘2} P^{∘2 ⊤}`` (module docstring).

    Args:
        prob_chunks: iterable of ``(N, c)`` column chunks of the probabilities ``P``, in the
            dtype of the sums (all on one device).

    Returns:
        ``(Y_diag, Y_off, C)``.
    """
    PP = P2P2 = LL = None
    C = 0
    for p in prob_chunks:
        if PP is None:
            PP, P2P2, LL = (p.new_zeros(p.shape[0], p.shape[0]) for _ in range(3))
        C += p.shape[1]
        p2 = p * p
        lam = p - p2
        PP.addmm_(p, p.T)
        P2P2.addmm_(p2, p2.T)
        LL.addmm_(lam, lam.T)
    if PP is None:
        raise ValueError("prob_chunks must hold at least one chunk of classes")
    return LL, PP * PP - P2P2, C  # Σ_{c≠c'} p_nc p_nc' p_mc p_mc' = (p_n·p_m)² − Σ_c p²p²


def gram_moments(Y: torch.Tensor) -> tuple[float, float]:
    """``(Σ_b E[λ_b²], Σ_b (E λ_b)²)`` from ``Y = Σ_b λ_b λ_bᵀ``: ``(tr Y / N, 1ᵀY1 / N²)``."""
    N = Y.shape[0]
    return float(Y.diagonal().sum()) / N, float(Y.sum()) / N**2


# ----------------------------------------------------------------------------- second moment
def second_moment(mean_sq, sq_mean, *, gamma: float):
    r"""The second moment of the generalised MP law: ``γ E[λ²] + (E λ)²``.

    The limit of ``(1/d) ‖H‖_F²`` for ``H = (1/N) Σ_n λ_n x_n x_nᵀ``, ``x_n ~ N(0, I_d)``
    independent of λ, ``γ = d/N`` (talk Part III; chapter 05). The one implementation of
    the formula: :func:`hesslib.rmt.second_moment_prediction`,
    :func:`hesslib.predicted_block_ratios` and :class:`OutputBlockStats` call it.

    Args:
        mean_sq: ``E[λ²]``; sq_mean: ``(E λ)²`` (floats or tensors of one shape).
        gamma: ``γ``.
    """
    return gamma * mean_sq + sq_mean


def sample_second_moment(lam: torch.Tensor, *, gamma: float) -> torch.Tensor:
    """:func:`second_moment` of a λ sample (samples on axis 0), for every trailing index at once.

    Returns:
        CPU float64 tensor of shape ``lam.shape[1:]``.
    """
    lam = lam.to(torch.float64)
    return second_moment((lam * lam).mean(0), lam.mean(0) ** 2, gamma=gamma).cpu()


@dataclass(frozen=True)
class OutputBlockStats:
    """Off-diagonal versus diagonal class blocks of the output-layer CE Hessian.

    Attributes:
        num_classes: ``C``.
        rms_ratio: ``sqrt(mean_{c≠c'} ‖H_cc'‖²) / sqrt(mean_c ‖H_cc‖²)``.
        diag_sq_mean: ``mean_c ‖H_cc‖_F²``.
        off_sq_mean: ``mean_{c≠c'} ‖H_cc'‖_F²``.
        diag_mass: fraction of ``‖H‖_F²`` on the diagonal blocks.
        predicted_ratio: the same ratio from the second-moment formula (features independent
            of the probabilities; chapter 05).
        intuition_ratio: ``1/(C − 1)``, the talk's estimate for uniform ``p = 1/C``.
    """

    num_classes: int
    rms_ratio: float
    diag_sq_mean: float
    off_sq_mean: float
    diag_mass: float
    predicted_ratio: float
    intuition_ratio: float


def _check_pair(A: torch.Tensor, P: torch.Tensor, per_sample: int) -> None:
    """Check features ``A`` ``(N, d)`` and probabilities ``P`` ``(N, C)``, and that the
    ``(N, N)`` float64 Grams and ``per_sample`` further entries per row fit in memory."""
    check_matrix("A", A, nonempty=True)
    check_matrix("P", P, nonempty=True)
    if P.shape[0] != A.shape[0]:
        raise ValueError(f"P must have N = {A.shape[0]} rows like A, got shape {tuple(P.shape)}")
    check_num_classes(int(P.shape[1]))
    if bool((P < 0).any()) or bool((P > 1).any()):
        raise ValueError("P must hold probabilities (entries in [0, 1])")
    _check_grams(A.shape[0], per_sample, A.device)


def _check_grams(N: int, per_sample: int, device) -> None:
    """The memory guard for four ``(N, N)`` float64 Grams and ``per_sample`` entries a row."""
    check_memory(8 * N * (4 * N + per_sample), what=f"{N}x{N} Gram matrices", device=device)


@torch.no_grad()
def output_block_norms_gram(
    A: torch.Tensor,
    P: torch.Tensor,
    *,
    classes=None,
) -> torch.Tensor:
    """Frobenius norms ``‖H_cc'‖_F`` of the output-layer CE Hessian blocks, from ``G = A Aᵀ``.

    Args:
        A: features ``(N, d)`` (the inputs of the output layer).
        P: softmax probabilities ``(N, C)``.
        classes: indices of the classes to include (default all; the cost is
            ``O(N² k²)`` for ``k`` classes, so pass a subset when ``C`` is large).

    Returns:
        ``(k, k)`` float64 tensor of block norms.
    """
    C = check_matrix("P", P, nonempty=True).shape[1]
    idx = torch.arange(C, device=P.device) if classes is None else _class_index(classes, P, C)
    _check_pair(A, P, 3 * idx.numel() ** 2)
    N, k = A.shape[0], idx.numel()
    A64, p = A.to(torch.float64), P[:, idx].to(torch.float64)  # (N, k)
    K = squared_gram(A64)  # (N, N)
    S = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # (N, k, k)
    Z = S.reshape(N, k * k)  # (N, k²)
    sq = ((K @ Z) * Z).sum(0) / N**2  # (k²,)
    return sq.clamp(min=0).sqrt().reshape(k, k)


def _class_index(classes, P: torch.Tensor, C: int) -> torch.Tensor:
    """``classes`` as a non-empty 1-D index tensor into ``[0, C)``."""
    try:
        idx = torch.as_tensor(classes, device=P.device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"classes must be a sequence of class indices, got {classes!r}") from err
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise TypeError(f"classes must hold integer class indices, got dtype {idx.dtype}")
    if idx.ndim != 1 or idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= C:
        raise ValueError(f"classes must be a non-empty 1-D index set into [0, {C})")
    return idx.long()


def _stats(diag_sum, off_sum, diag_pred, off_pred, C) -> OutputBlockStats:
    diag_mean, off_mean = diag_sum / C, off_sum / (C * (C - 1))
    if not diag_mean > 0:
        raise ValueError("the diagonal blocks are all zero: the ratio is undefined")
    return OutputBlockStats(
        num_classes=C,
        rms_ratio=math.sqrt(max(off_mean, 0.0) / diag_mean),
        diag_sq_mean=diag_mean,
        off_sq_mean=off_mean,
        diag_mass=diag_sum / (diag_sum + off_sum),
        predicted_ratio=math.sqrt(max(off_pred, 0.0) / (C - 1) / diag_pred),
        intuition_ratio=1.0 / (C - 1),
    )


def _class_gram_sums(A: torch.Tensor, prob_chunks) -> OutputBlockStats:
    """Measured and predicted class-block sums of the output layer from ``(N, N)`` Grams."""
    N, d = A.shape
    K = squared_gram(A.to(torch.float64))  # (N, N), K_nm = (a_n · a_m)²
    diag, off, C = class_pair_grams(prob_chunks)
    # a_n ~ N(0, I_d) independent of p: ‖H_b‖² ≈ ‖Σ‖² · second_moment with ‖Σ‖² = d, which
    # cancels in the predicted ratio (K replaced by its leading-order mean d·11ᵀ + d²·I)
    pred = [second_moment(*gram_moments(Y), gamma=d / N) for Y in (diag, off)]
    return _stats(gram_block_sum(K, diag), gram_block_sum(K, off), *pred, C)


@torch.no_grad()
def output_block_stats_gram(
    A: torch.Tensor,
    P: torch.Tensor,
    *,
    chunk: int = 8192,
) -> OutputBlockStats:
    """:class:`OutputBlockStats` of the output-layer CE Hessian from ``(N, N)`` Gram sums.

    Args:
        A: features ``(N, d)``.
        P: softmax probabilities ``(N, C)`` (rows sum to 1).
        chunk: classes per GEMM.
    """
    chunk = check_positive_int("chunk", chunk)
    _check_pair(A, P, 2 * min(chunk, check_matrix("P", P).shape[1]))
    chunks = (P[:, c0 : c0 + chunk].to(torch.float64) for c0 in range(0, P.shape[1], chunk))
    return _class_gram_sums(A, chunks)


@torch.no_grad()
def lm_head_block_stats(
    N: int,
    d: int,
    num_classes: int,
    *,
    seed: int = 0,
    chunk: int = 8192,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> OutputBlockStats:
    """Block statistics of an LM head ``V ∈ R^{C×d}`` at LeCun init on Gaussian features.

    Features ``a_n ~ N(0, I_d)``; ``V_ij ~ N(0, 1/d)``. Neither the ``(N, C)`` probabilities
    nor ``V`` are held whole: ``V`` and the logits are generated ``chunk`` classes at a time
    (twice: once for the log-partition function, once for the sums), so memory is
    ``O(N² + N·chunk + chunk·d)`` and ``C = 131 072`` fits anywhere. The labels do not enter:
    the CE Hessian in the logits, ``diag(p) − ppᵀ``, does not depend on them.

    Args:
        N: number of tokens (samples).
        d: feature dimension (model width).
        num_classes: vocabulary size ``C``.
        seed: seed of the features and of ``V``.
        chunk: classes per chunk.
        device: device (default :func:`hesslib.default_device`).
        dtype: dtype of the features, ``V`` and the logits (the sums are float64).
    """
    check_positive_int("N", N)
    check_positive_int("d", d)
    C = check_num_classes(num_classes)
    chunk = check_positive_int("chunk", chunk)
    check_dtype("dtype", dtype)
    device = check_device("device", device) or default_device()
    _check_grams(N, d + 3 * min(chunk, C), device)
    gen = make_generator(seed)
    A = torch.randn(N, d, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    v_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))

    def logit_chunks():
        g = make_generator(v_seed)  # same V on both passes
        for c0 in range(0, C, chunk):
            c = min(chunk, C - c0)
            V = torch.randn(c, d, generator=g, dtype=torch.float64) / math.sqrt(d)
            yield A @ V.to(device=device, dtype=dtype).T  # (N, c)

    lse = torch.full((N,), -math.inf, dtype=torch.float64, device=device)
    for z in logit_chunks():
        lse = torch.logaddexp(lse, torch.logsumexp(z.to(torch.float64), dim=1))
    probs = (torch.exp(z.to(torch.float64) - lse[:, None]) for z in logit_chunks())
    return _class_gram_sums(A, probs)
