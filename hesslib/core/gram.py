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
formula ``d (γ E[λ²] + (E λ)²)`` of chapter 05 (``hl.second_moment_prediction``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .checks import check_matrix, check_num_classes, check_positive_int
from .device import default_device, make_generator

__all__ = [
    "lm_head_block_stats",
    "output_block_norms_gram",
    "output_block_stats_gram",
    "OutputBlockStats",
]


@dataclass(frozen=True)
class OutputBlockStats:
    """Off-diagonal versus diagonal class blocks of the output-layer CE Hessian.

    Attributes:
        num_classes: ``C``.
        rms_ratio: ``sqrt(mean_{c≠c'} ‖H_cc'‖²) / sqrt(mean_c ‖H_cc‖²)`` (SPEC §3).
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


def _check_pair(A: torch.Tensor, P: torch.Tensor) -> None:
    check_matrix("A", A)
    check_matrix("P", P)
    if P.shape[0] != A.shape[0]:
        raise ValueError(f"P must have N = {A.shape[0]} rows like A, got shape {tuple(P.shape)}")
    check_num_classes(int(P.shape[1]))


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
    _check_pair(A, P)
    C = P.shape[1]
    idx = (
        torch.arange(C, device=P.device)
        if classes is None
        else torch.as_tensor(classes, device=P.device).long()
    )
    if idx.ndim != 1 or idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= C:
        raise ValueError(f"classes must be a non-empty 1-D index set into [0, {C})")
    N, k = A.shape[0], idx.numel()
    A64, p = A.to(torch.float64), P[:, idx].to(torch.float64)  # (N, k)
    K = (A64 @ A64.T) ** 2  # (N, N)
    S = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # (N, k, k)
    Z = S.reshape(N, k * k)  # (N, k²)
    sq = ((K @ Z) * Z).sum(0) / N**2  # (k²,)
    return sq.clamp(min=0).sqrt().reshape(k, k)


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
    """Accumulate ``P Pᵀ``, ``P²P²ᵀ``, ``ΛΛᵀ`` over class chunks and contract with ``K``."""
    N, d = A.shape
    A64 = A.to(torch.float64)
    K = (A64 @ A64.T) ** 2  # (N, N), K_nm = (a_n · a_m)²
    Kpred = torch.full((N, N), float(d), dtype=torch.float64, device=A.device)
    # d·11ᵀ + d²·I: (1/N²) sᵀ Kpred s = d (γ E[s²] + (E s)²), chapter 05's second moment
    # (the exact Gaussian mean would put d² + 2d on the diagonal; the difference is O(1/d))
    Kpred.diagonal().fill_(float(d) ** 2 + float(d))
    PP = torch.zeros(N, N, dtype=torch.float64, device=A.device)
    P2P2 = torch.zeros_like(PP)
    LL = torch.zeros_like(PP)
    C = 0
    for p in prob_chunks:  # (N, c) chunks of the probabilities
        p = p.to(torch.float64)
        C += p.shape[1]
        p2 = p * p
        lam = p - p2
        PP.addmm_(p, p.T)
        P2P2.addmm_(p2, p2.T)
        LL.addmm_(lam, lam.T)
    off = PP * PP - P2P2  # Σ_{c≠c'} p_nc p_nc' p_mc p_mc'
    sums = [float((Kx * Y).sum()) / N**2 for Kx in (K, Kpred) for Y in (LL, off)]
    return _stats(sums[0], sums[1], sums[2], sums[3], C)


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
    _check_pair(A, P)
    chunk = check_positive_int("chunk", chunk)
    return _class_gram_sums(A, (P[:, c0 : c0 + chunk] for c0 in range(0, P.shape[1], chunk)))


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
    device = torch.device(device) if device is not None else default_device()
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
