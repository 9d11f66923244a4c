r"""Analytic Hessians of the four cases of arXiv 2505.02809 (talk Part III), as GEMMs.

Notation: ``X`` is ``(N, d)``; the one-hidden-layer net is ``f(x) = V σ(W x)`` with
``W`` ``(m, d)``, ``V`` ``(C, m)`` and ReLU ``σ``; ``Z = X Wᵀ``, ``D = 1[Z > 0]``,
``A = σ(Z)`` (all ``(N, m)``). Per sample, the loss has gradient ``g_n = ∂ℓ/∂f`` and
curvature ``S_n = ∂²ℓ/∂f²``:

* CE: ``g_n = p_n − e_{y_n}``, ``S_n = diag(p_n) − p_n p_nᵀ`` (``p_n`` the softmax);
* MSE (with the ½): ``g_n = f(x_n) − e_{y_n}``, ``S_n = I_C``.

Since ReLU is piecewise linear, the only second derivative of ``f`` is
``∂²f_c / ∂v_{cj} ∂w_k = δ_{jk} D_{nk} x_n``, and

.. math::
    H_{v_c v_{c'}} &= \tfrac1N \textstyle\sum_n S_n[c,c']\, a_n a_n^\top, \\
    H_{w_k w_{k'}} &= \tfrac1N \textstyle\sum_n (V^\top S_n V)_{kk'} D_{nk} D_{nk'}\,
        x_n x_n^\top, \\
    H_{w_k v_c} &= \tfrac1N \textstyle\sum_n (V^\top S_n)_{kc} D_{nk}\, x_n a_n^\top
        \;+\; \tfrac1N \textstyle\sum_n g_{nc} D_{nk}\, x_n e_k^\top .

The last term of ``H_wv`` — the *residual term* — has a single non-zero column (the k-th)
and is proportional to the residuals ``g``; it vanishes at a perfect fit. For the linear model
``f(x) = V x``: ``H_{v_c v_{c'}} = (1/N) Σ_n S_n[c,c'] x_n x_nᵀ``.

:func:`hidden_layer_hessian` and :func:`output_layer_hessian` form one layer's block alone
(``H_ww``, or ``H_vv`` on its first classes), for nets whose full Hessian is too large.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .checks import check_like, check_matrix, check_net_inputs, check_positive_int, check_shape
from .hessian import check_memory
from .models import LinearNet, OneHiddenNet

__all__ = [
    "closed_form_blocks",
    "closed_form_hessian",
    "HessianBlocks",
    "hidden_layer_hessian",
    "hwv_decomposition",
    "linear_hessian",
    "one_hidden_hessian",
    "output_layer_hessian",
    "two_layer_hessian",
]


@dataclass(frozen=True)
class HessianBlocks:
    """The three blocks of a one-hidden-layer Hessian (views into ``dense`` when it exists).

    Attributes:
        Hww: ``(m d, m d)`` hidden-layer block (m neuron blocks of size d).
        Hwv: ``(m d, C m)`` cross block.
        Hvv: ``(C m, C m)`` output-layer block (C class blocks of size m).
        dense: the full ``(P, P)`` matrix, ``P = m d + C m``.
    """

    Hww: torch.Tensor
    Hwv: torch.Tensor
    Hvv: torch.Tensor
    dense: torch.Tensor


def relu_features(X: torch.Tensor, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ReLU pattern ``D = 1[X Wᵀ > 0]`` and the features ``A = σ(X Wᵀ)``, both ``(N, m)``."""
    Z = X @ W.T
    D = (Z > 0).to(X.dtype)
    return D, Z * D


def output_residuals(F: torch.Tensor, y: torch.Tensor, loss: str):
    """The residuals ``g = ∂ℓ_n/∂f`` ``(N, C)`` of the outputs ``F`` and, for CE, the softmax
    ``p`` ``(N, C)`` (``None`` for MSE, where ``S_n = I``)."""
    C = F.shape[1]
    onehot = torch.nn.functional.one_hot(y, C).to(F.dtype)  # (N, C)
    if loss == "ce":
        p = torch.softmax(F, dim=1)
        return p - onehot, p
    return F - onehot, None


def _check_bytes(X, result: int, work: int, what: str, max_bytes: int | None) -> None:
    """The memory guard: the ``result`` entries alone, then with the ``work`` entries too."""
    size = X.element_size()
    check_memory(result * size, what=what, device=X.device, max_bytes=max_bytes)
    check_memory(
        (result + work) * size,
        what=f"{what} with its intermediates",
        device=X.device,
        max_bytes=max_bytes,
    )


def _weighted_gram_sym(B: torch.Tensor, out: torch.Tensor, *, scale: float, chunk: int = 1024):
    """``out -= scale · Bᵀ B`` computing only block-upper-triangular GEMMs (symmetry)."""
    n = B.shape[1]
    for i in range(0, n, chunk):
        Bi = B[:, i : i + chunk]
        for j in range(i, n, chunk):
            G = Bi.T @ B[:, j : j + chunk]  # (ci, cj)
            out[i : i + chunk, j : j + chunk] -= scale * G
            if j != i:
                out[j : j + chunk, i : i + chunk] -= scale * G.T


def _class_blocks(A: torch.Tensor, p: torch.Tensor | None, num_classes: int, out: torch.Tensor):
    """``out = (1/N) Σ_n S_n ⊗ a_n a_nᵀ`` for features ``A`` (N, k): the class-block Hessian."""
    N, k = A.shape
    C = num_classes
    out.zero_()
    blocks = out.view(C, k, C, k)  # (C, k, C, k)
    if p is None:  # MSE: S = I, so C identical diagonal blocks A^T A / N
        K = (A.T @ A) / N  # (k, k)
        for c in range(C):
            blocks[c, :, c, :] = K
        return out
    for c in range(C):  # diag(p) part: A^T diag(p_c) A / N
        blocks[c, :, c, :] = (A * p[:, c : c + 1]).T @ A / N
    B = (p[:, :, None] * A[:, None, :]).reshape(N, C * k)  # (N, C k) rows p_n ⊗ a_n
    _weighted_gram_sym(B, out, scale=1.0 / N)
    return out


def linear_hessian(
    X: torch.Tensor,
    y: torch.Tensor,
    V: torch.Tensor,
    *,
    loss: str = "ce",
    max_bytes: int | None = None,
) -> torch.Tensor:
    """Closed-form Hessian of cases 1 (MSE) and 2 (CE): linear model ``f(x) = V x``.

    Args:
        X: inputs ``(N, d)``.
        y: labels ``(N,)``.
        V: weights ``(C, d)``.
        loss: ``"ce"`` or ``"mse"``.
        max_bytes: memory budget for the result.

    Returns:
        ``H`` of shape ``(C d, C d)``: C class blocks of size d. For MSE the off-diagonal blocks
        are exactly zero.
    """
    N, d, _, C = check_net_inputs(X, None, V, loss=loss, y=y)
    P = C * d
    _check_bytes(X, P * P, 2 * N * P + 3 * N * C, f"a dense {P}x{P} Hessian", max_bytes)
    _, p = output_residuals(X @ V.T, y, loss)
    H = torch.empty(P, P, dtype=X.dtype, device=X.device)
    return _class_blocks(X, p, C, H)


def one_hidden_hessian(
    X: torch.Tensor,
    y: torch.Tensor,
    W: torch.Tensor,
    V: torch.Tensor,
    *,
    loss: str = "ce",
    max_bytes: int | None = None,
) -> HessianBlocks:
    """Closed-form Hessian of cases 3 (MSE) and 4 (CE): ``f(x) = V relu(W x)``.

    All blocks are GEMMs; symmetric products compute only their upper triangle. The work is
    about ``N (m² d² / 2 + C² m² / 2 + m d C m)`` multiply-adds for CE.

    Args:
        X: inputs ``(N, d)``.
        y: labels ``(N,)``.
        W: first layer ``(m, d)``.
        V: second layer ``(C, m)``.
        loss: ``"ce"`` or ``"mse"``.
        max_bytes: memory budget for the ``(P, P)`` result.

    Returns:
        :class:`HessianBlocks` whose ``Hww``, ``Hwv`` and ``Hvv`` are views of ``dense``.
    """
    N, d, m, C = check_net_inputs(X, W, V, loss=loss, y=y)
    Pw, Pv = m * d, C * m
    P = Pw + Pv
    _check_bytes(X, P * P, _work(N, d, m, C), f"a dense {P}x{P} Hessian", max_bytes)
    D, A = relu_features(X, W)  # (N, m) each
    g, p = output_residuals(A @ V.T, y, loss)  # (N, C)
    H = torch.empty(Pw + Pv, Pw + Pv, dtype=X.dtype, device=X.device)
    Hww, Hwv, Hvv = H[:Pw, :Pw], H[:Pw, Pw:], H[Pw:, Pw:]

    _class_blocks(A, p, C, Hvv)
    _fill_hww(X, D, V, p, Hww)
    _fill_hwv(X, D, A, V, g, p, Hwv, include_rest=True, include_residual=True)
    H[Pw:, :Pw] = Hwv.T
    return HessianBlocks(Hww, Hwv, Hvv, H)


def _work(N: int, d: int, m: int, C: int) -> int:
    """Entries of the closed forms' intermediates (a bound): ``(N, m, m)``, ``(N, m, d)``,
    ``(N, C m)`` arrays and one ``1024²`` Gram tile."""
    return N * (4 * m + 2 * C + m * m + 2 * m * d + 2 * C * m) + 1024 * 1024


def _fill_hww(X, D, V, p, out):
    """``H_{w_k w_k'} = (1/N) Σ_n M_n[k,k'] D_nk D_nk' x_n x_nᵀ`` with ``M_n = Vᵀ S_n V``."""
    N, d = X.shape
    m = D.shape[1]
    if p is None:
        M = (V.T @ V).expand(N, m, m)  # (N, m, m), S = I
    else:
        u = p @ V  # (N, m): u_n = Vᵀ p_n
        M = torch.einsum("nc,ck,cl->nkl", p, V, V) - u[:, :, None] * u[:, None, :]  # (N, m, m)
    blocks = out.view(m, d, m, d)  # (m, d, m, d)
    XD = X[:, None, :] * D[:, :, None]  # (N, m, d): rows D_nk x_n
    for k in range(m):
        coef = M[:, k, k:] * D[:, k : k + 1]  # (N, m - k)
        rhs = (XD[:, k:, :] * coef[:, :, None]).reshape(N, (m - k) * d)  # (N, (m-k) d)
        row = (X.T @ rhs / N).view(d, m - k, d)  # (d, m - k, d)
        # X^T diag(c) (D_k' X): D_nk is in coef, D_nk' in XD
        blocks[k, :, k:, :] = row
        for j in range(k + 1, m):
            blocks[j, :, k, :] = row[:, j - k, :].T
    return out


def _fill_hwv(X, D, A, V, g, p, out, *, include_rest: bool, include_residual: bool):
    """Cross block ``H_{w_k v_c}`` (d × m): the GEMM term ("rest") and the residual column."""
    N, d = X.shape
    m = D.shape[1]
    C = V.shape[0]
    blocks = out.view(m, d, C, m)  # (m, d, C, m)
    out.zero_()
    for k in range(m):
        Xk = X * D[:, k : k + 1]  # (N, d): D_nk x_n
        if include_rest:
            if p is None:  # MSE: (Vᵀ S_n)_{kc} = V_ck
                blocks[k] = V[:, k][None, :, None] * (Xk.T @ A / N)[:, None, :]  # (d, C, m)
            else:  # CE: (Vᵀ S_n)_{kc} = p_nc (V_ck − u_nk)
                u_k = p @ V[:, k]  # (N,)
                Q = p * (V[:, k][None, :] - u_k[:, None])  # (N, C)
                R = (Q[:, :, None] * A[:, None, :]).reshape(N, C * m)  # (N, C m)
                blocks[k] = (Xk.T @ R / N).view(d, C, m)
        if include_residual:
            blocks[k, :, :, k] += Xk.T @ g / N  # (d, C): only column k of each (k, c) block
    return out


def hwv_decomposition(
    X: torch.Tensor,
    y: torch.Tensor,
    W: torch.Tensor,
    V: torch.Tensor,
    *,
    loss: str = "ce",
    max_bytes: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``H_wv`` into the residual term (one non-zero column per block) and the rest.

    Arguments as in :func:`one_hidden_hessian` (``max_bytes``: budget for the two results).

    Returns:
        ``(residual, rest)``, each ``(m d, C m)``, with ``H_wv = residual + rest``. In block
        ``(k, c)`` only column ``k`` of ``residual`` is non-zero and equals
        ``(1/N) Σ_n g_{nc} D_{nk} x_n`` (``g = p − e_y`` for CE).
    """
    N, d, m, C = check_net_inputs(X, W, V, loss=loss, y=y)
    what = f"two dense {m * d}x{C * m} blocks"
    _check_bytes(X, 2 * m * d * C * m, _work(N, d, m, C), what, max_bytes)
    D, A = relu_features(X, W)
    g, p = output_residuals(A @ V.T, y, loss)
    residual = torch.empty(m * d, C * m, dtype=X.dtype, device=X.device)
    rest = torch.empty_like(residual)
    _fill_hwv(X, D, A, V, g, p, residual, include_rest=False, include_residual=True)
    _fill_hwv(X, D, A, V, g, p, rest, include_rest=True, include_residual=False)
    return residual, rest


def closed_form_blocks(model: nn.Module, X, y, *, loss: str = "ce", **kwargs) -> HessianBlocks:
    """:func:`one_hidden_hessian` for a :class:`~hesslib.OneHiddenNet`."""
    if not isinstance(model, OneHiddenNet):
        raise TypeError(f"model must be a OneHiddenNet, got {type(model).__name__}")
    return one_hidden_hessian(X, y, model.W.detach(), model.V.detach(), loss=loss, **kwargs)


def closed_form_hessian(model: nn.Module, X, y, *, loss: str = "ce", **kwargs) -> torch.Tensor:
    """Dense closed-form Hessian of a :class:`~hesslib.LinearNet` or :class:`~hesslib.OneHiddenNet`.

    The parameter order is that of ``model.layout()`` and of :func:`hesslib.flat_loss`.
    """
    if isinstance(model, LinearNet):
        return linear_hessian(X, y, model.V.detach(), loss=loss, **kwargs)
    if isinstance(model, OneHiddenNet):
        return closed_form_blocks(model, X, y, loss=loss, **kwargs).dense
    raise TypeError(f"model must be a LinearNet or OneHiddenNet, got {type(model).__name__}")


def hidden_layer_hessian(
    X: torch.Tensor,
    W: torch.Tensor,
    V: torch.Tensor,
    *,
    loss: str = "ce",
    max_bytes: int | None = None,
) -> torch.Tensor:
    r"""Dense ``H_ww`` ``(m d, m d)`` alone: ``H_{w_kw_l} = (1/N) Σ_n c^{kl}_n x_n x_nᵀ``.

    ``c^{kl}_n = (Vᵀ S_n V)_{kl} D_{nk} D_{nl}`` (:mod:`hesslib.core.block_ratios`).
    Cost ``N m² d² / 2``; the
    ``(C m)²`` output block is never formed, so ``C`` can be large. Arguments as in
    :func:`one_hidden_hessian` (no labels: ``H_ww`` does not depend on them).
    """
    N, d, m, C = check_net_inputs(X, W, V, loss=loss)
    _check_bytes(X, (m * d) ** 2, _work(N, d, m, C), f"a dense {m * d}x{m * d} H_ww", max_bytes)
    D, A = relu_features(X, W)
    p = torch.softmax(A @ V.T, dim=1) if loss == "ce" else None
    H = torch.empty(m * d, m * d, dtype=X.dtype, device=X.device)
    return _fill_hww(X, D, V, p, H)  # the closed form's H_ww, symmetric half computed


def output_layer_hessian(
    X: torch.Tensor,
    W: torch.Tensor,
    V: torch.Tensor,
    *,
    loss: str = "ce",
    classes: int | None = None,
    max_bytes: int | None = None,
) -> torch.Tensor:
    r"""``H_vv`` restricted to the first ``classes`` class blocks (all by default).

    ``H_{v_iv_j} = (1/N) Σ_n S_n[i, j] a_n a_nᵀ`` for ``i, j < classes``: a principal sub-matrix
    of size ``(classes·m)²``, so a 1000-class output layer can be looked at without its
    ``(1000 m)²`` Hessian. Arguments as in :func:`one_hidden_hessian`.
    """
    N, d, m, C = check_net_inputs(X, W, V, loss=loss)
    K = C if classes is None else check_positive_int("classes", classes)
    if K > C:
        raise ValueError(f"classes must be <= C = {C}, got {K}")
    what = f"a dense {K * m}x{K * m} H_vv"
    _check_bytes(X, (K * m) ** 2, _work(N, d, m, C), what, max_bytes)
    _, A = relu_features(X, W)  # (N, m)
    p = torch.softmax(A @ V.T, dim=1)[:, :K] if loss == "ce" else None  # (N, K)
    H = torch.empty(K * m, K * m, dtype=X.dtype, device=X.device)
    return _class_blocks(A, p, K, H)  # the closed form's H_vv on the first K classes


def two_layer_hessian(
    W: torch.Tensor,
    V: torch.Tensor,
    Y: torch.Tensor | None = None,
    *,
    max_bytes: int | None = None,
) -> torch.Tensor:
    r"""Dense Hessian of ``½ ||V W − Y||_F²`` (fully connected, ``X = I``), in closed form.

    .. math::
        H_{ww} = (V^\top V) \otimes I_d,\qquad H_{vv} = I_C \otimes (W W^\top),\qquad
        [H_{w_i v_c}]_{j i'} = \delta_{i i'} R_{cj} + v_{ci} w_{i'j},

    with ``R = V W − Y``. The first term of ``H_wv`` is the residual term: in block
    ``(w_i, v_c)`` it fills only column ``i``.

    Args:
        W: ``(m, d)``.
        V: ``(C, m)``.
        Y: ``(C, d)`` targets (default zero).
        max_bytes: memory budget (default 80 % of what is free).

    Returns:
        ``H`` of shape ``(m d + C m, m d + C m)`` in the book's parameter order.
    """
    for name, A in (("W", W), ("V", V), ("Y", Y)):
        if A is not None or name != "Y":
            check_matrix(name, A, nonempty=True)
            check_like(name, A, "W", W)
    m, d = W.shape
    C = V.shape[0]
    check_shape("V", V, ("C", m), "to match W")
    if Y is not None:
        check_shape("Y", Y, (C, d), "to match V and W")
    P = m * d + C * m
    _check_bytes(W, P * P, 3 * P * P, f"a dense {P}x{P} Hessian", max_bytes)
    R = V @ W - (torch.zeros(C, d, dtype=W.dtype, device=W.device) if Y is None else Y)  # (C, d)
    Hww = torch.kron(V.T @ V, torch.eye(d, dtype=W.dtype, device=W.device))  # (m d, m d)
    Hvv = torch.kron(torch.eye(C, dtype=W.dtype, device=W.device), W @ W.T)  # (C m, C m)
    eye_m = torch.eye(m, dtype=W.dtype, device=W.device)
    Hwv = torch.einsum("ik,cj->ijck", eye_m, R) + torch.einsum("ci,kj->ijck", V, W)  # (m,d,C,m)
    Hwv = Hwv.reshape(m * d, C * m)
    return torch.cat([torch.cat([Hww, Hwv], 1), torch.cat([Hwv.T, Hvv], 1)], 0)
