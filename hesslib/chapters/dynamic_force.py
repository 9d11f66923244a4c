r"""How training reshapes the Hessian: the ``H_wv`` decomposition along a training run.

For the one-hidden-layer net ``f(x) = V σ(W x)`` (``g_n = ∂ℓ/∂f`` is ``p_n − e_{y_n}`` for CE
and ``f(x_n) − e_{y_n}`` for MSE), the cross block splits as (:mod:`hesslib.core.closed_form`)

.. math::
    H_{w_k v_c} = \underbrace{\tfrac1N \textstyle\sum_n g_{nc} D_{nk}\,
        x_n e_k^\top}_{\text{residual term}}
    \;+\; \underbrace{\tfrac1N \textstyle\sum_n (V^\top S_n)_{kc} D_{nk}\,
        x_n a_n^\top}_{\text{rest}} .

The residual term lives in the k-th column of each ``d × m`` block and is proportional to the
residuals ``g``; it is what makes ``H_wv`` look block-circulant at initialisation, and it fades
when training drives ``g`` to zero (the "dynamic force" of the talk, arXiv 2505.02809 Part II-2).
The k-th columns stacked over ``c`` form ``R_k = Xᵀ diag(D_{·k}) G / N`` ``(d, C)``.

Here: the decomposition's norms, the per-checkpoint :class:`HessianSnapshot` and its table;
:mod:`hesslib.plot.snapshots` draws and animates them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from ..core.blocks import block_norms, pool_abs, stats_from_norms
from ..core.closed_form import (
    closed_form_blocks,
    hwv_decomposition,
    output_residuals,
    relu_features,
)
from ..core.losses import loss_fn
from ..core.models import OneHiddenNet
from ..nets.deep import DeepNet, deep_hessian
from ..train.adam import train_adam

__all__ = [
    "deep_snapshot",
    "DeepSnapshot",
    "hessian_snapshot",
    "HessianSnapshot",
    "hwv_column_norms",
    "hwv_norms",
    "hwv_norms_along",
    "HwvNorms",
    "residual_columns",
    "snapshot_table",
]


@dataclass(frozen=True)
class HwvNorms:
    """Frobenius norms of ``H_wv`` and of its two parts.

    Attributes:
        total: ``‖H_wv‖_F``.
        residual: ``‖residual term‖_F`` (the one-column part, proportional to ``g``).
        rest: ``‖H_wv − residual term‖_F``.
        own_column_fraction: share of ``‖H_wv‖_F²`` in the k-th column of the blocks
            ``H_{w_k v_c}`` (1 = perfectly one-column).
    """

    total: float
    residual: float
    rest: float
    own_column_fraction: float


def residual_columns(
    X: torch.Tensor,
    y: torch.Tensor,
    W: torch.Tensor,
    V: torch.Tensor,
    *,
    loss: str = "ce",
) -> torch.Tensor:
    r"""The non-zero columns of the residual term.

    :math:`R_k = \frac1N X^\top \mathrm{diag}(D_{\cdot k})\, G` with ``G`` the ``(N, C)``
    residuals.

    Returns:
        ``(m, d, C)``: ``R[k, :, c]`` is column ``k`` of the residual term's block ``(k, c)``
        (equal to ``hl.hwv_decomposition(...)[0]`` restricted to those columns).
    """
    D, A = relu_features(X, W)  # (N, m) each
    G, _ = output_residuals(A @ V.T, y, loss)  # (N, C) residuals g
    return torch.einsum("nk,nd,nc->kdc", D, X, G) / X.shape[0]  # (m, d, C)


def hwv_column_norms(Hwv: torch.Tensor, m: int) -> torch.Tensor:
    """``M[k, j] = ‖column j of the blocks H_{w_k v_c}, all c‖`` — an ``(m, m)`` map.

    A one-column ``H_wv`` (only column k non-zero in the blocks of neuron k) gives a diagonal
    ``M``.

    Args:
        Hwv: cross block ``(m d, C m)``.
        m: number of hidden neurons.
    """
    md, Cm = Hwv.shape
    d, C = md // m, Cm // m
    if d * m != md or C * m != Cm:
        raise ValueError(f"Hwv must have shape (m d, C m) with m = {m}, got {tuple(Hwv.shape)}")
    blocks = Hwv.reshape(m, d, C, m)  # (m, d, C, m)
    return blocks.pow(2).sum(dim=(1, 2)).sqrt()  # (m, m)


def hwv_norms(
    X: torch.Tensor,
    y: torch.Tensor,
    W: torch.Tensor,
    V: torch.Tensor,
    *,
    loss: str = "ce",
) -> HwvNorms:
    """:class:`HwvNorms` from :func:`hesslib.hwv_decomposition` (no full Hessian needed).

    Args:
        X: inputs ``(N, d)``; y: labels ``(N,)``; W: ``(m, d)``; V: ``(C, m)``; loss: ``"ce"``
            or ``"mse"``.
    """
    residual, rest = hwv_decomposition(X, y, W, V, loss=loss)
    total = residual + rest  # (m d, C m)
    M = hwv_column_norms(total, W.shape[0])
    return HwvNorms(
        float(total.norm()),
        float(residual.norm()),
        float(rest.norm()),
        float(M.diagonal().pow(2).sum() / M.pow(2).sum()),
    )


def _hwv_norms_from_block(Hwv, X, y, W, V, loss) -> HwvNorms:
    """Same as :func:`hwv_norms` when ``H_wv`` is already at hand (one cheap extra GEMM)."""
    m = W.shape[0]
    R = residual_columns(X, y, W, V, loss=loss)  # (m, d, C)
    own = Hwv.reshape(m, -1, V.shape[0], m).diagonal(
        dim1=0, dim2=3
    )  # (d, C, m): column k of (k, c)
    own = own.permute(2, 0, 1)  # (m, d, C)
    total2 = float(Hwv.pow(2).sum())
    res2 = float(R.pow(2).sum())
    rest2 = total2 - 2 * float((own * R).sum()) + res2
    own2 = float(own.pow(2).sum())
    return HwvNorms(total2**0.5, res2**0.5, max(rest2, 0.0) ** 0.5, own2 / total2)


@dataclass(frozen=True)
class HessianSnapshot:
    """What chapter 03 keeps of the exact Hessian at one checkpoint (the dense matrix is dropped).

    Attributes:
        step: training step.
        loss: training loss (float64).
        image: ``|H|`` max-pooled to at most ``max_pixels`` per side (NumPy, for figures).
        factor: the pooling factor.
        norms: ``(m + C, m + C)`` block Frobenius norms.
        ratio_ww: RMS off/diagonal ratio of the neuron blocks of ``H_ww``.
        ratio_vv: the same for the class blocks of ``H_vv``.
        hwv: :class:`HwvNorms`.
        column_norms: ``(m, m)`` map of :func:`hwv_column_norms`.
        norm_ww, norm_vv: ``‖H_ww‖_F`` and ``‖H_vv‖_F`` (for scale).
        grad_norm: ``‖∇ℓ‖_2`` at the checkpoint.
        hwv_zoom: ``|H_wv|`` on the first ``zoom[0]`` input coordinates of every neuron and the
            first ``zoom[1]`` classes, ``(m·zoom[0], zoom[1]·m)`` (NumPy): the one-column
            pattern at full resolution.
    """

    step: int
    loss: float
    image: np.ndarray
    factor: int
    norms: torch.Tensor
    ratio_ww: float
    ratio_vv: float
    hwv: HwvNorms
    column_norms: torch.Tensor
    norm_ww: float
    norm_vv: float
    grad_norm: float
    hwv_zoom: np.ndarray


def hessian_snapshot(
    net: OneHiddenNet,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "ce",
    step: int = 0,
    max_pixels: int = 400,
    zoom: tuple[int, int] = (24, 6),
) -> HessianSnapshot:
    """Exact Hessian (closed form, the dtype of ``net``) at ``net`` and its summaries.

    The ``(P, P)`` matrix is freed on return; only pooled images and norms are kept, so a
    whole training run of snapshots fits in memory.

    Args:
        net: a :class:`~hesslib.OneHiddenNet` (float64 for exact numbers).
        X: inputs ``(N, d)`` of ``net``'s dtype; y: labels ``(N,)``.
        loss: ``"ce"`` or ``"mse"``.
        step: the training step, stored.
        max_pixels: size of the pooled image.
        zoom: ``(input coordinates per neuron, classes)`` kept at full resolution in
            :attr:`HessianSnapshot.hwv_zoom`.
    """
    if not isinstance(net, OneHiddenNet):
        raise TypeError(f"net must be a OneHiddenNet, got {type(net).__name__}")
    W, V = net.W.detach(), net.V.detach()
    Hb = closed_form_blocks(net, X, y, loss=loss)
    layout = net.layout()
    norms = block_norms(Hb.dense, layout)
    m = W.shape[0]
    image, factor = pool_abs(Hb.dense, max_pixels=max_pixels)
    hwv = _hwv_norms_from_block(Hb.Hwv, X, y, W, V, loss)
    cols = hwv_column_norms(Hb.Hwv, m)
    nww, nvv = float(Hb.Hww.norm()), float(Hb.Hvv.norm())
    d, C = W.shape[1], V.shape[0]
    zd, zc = min(zoom[0], d), min(zoom[1], C)
    zoomed = Hb.Hwv.reshape(m, d, C * m)[:, :zd, : zc * m].reshape(m * zd, zc * m)  # (m zd, zc m)
    zoomed = zoomed.abs().cpu().numpy()
    del Hb
    theta = torch.cat([W.reshape(-1), V.reshape(-1)]).requires_grad_(True)
    with torch.enable_grad():
        value = loss_fn(loss)(
            torch.relu(X @ theta[: W.numel()].view_as(W).T) @ theta[W.numel() :].view_as(V).T, y
        )
        (grad,) = torch.autograd.grad(value, theta)
    return HessianSnapshot(
        step,
        float(value.detach()),
        image,
        factor,
        norms,
        stats_from_norms(norms[:m, :m]).rms_ratio if m > 1 else float("nan"),
        stats_from_norms(norms[m:, m:]).rms_ratio,
        hwv,
        cols,
        nww,
        nvv,
        float(grad.norm()),
        zoomed,
    )


def snapshot_table(snaps: Iterable[HessianSnapshot]) -> dict[str, np.ndarray]:
    """Columns of a list of snapshots as arrays (step, loss, ‖H_wv‖, residual, rest, …)."""
    snaps = list(snaps)
    return {
        "step": np.array([s.step for s in snaps]),
        "loss": np.array([s.loss for s in snaps]),
        "hwv": np.array([s.hwv.total for s in snaps]),
        "residual": np.array([s.hwv.residual for s in snaps]),
        "rest": np.array([s.hwv.rest for s in snaps]),
        "own_column": np.array([s.hwv.own_column_fraction for s in snaps]),
        "ratio_ww": np.array([s.ratio_ww for s in snaps]),
        "ratio_vv": np.array([s.ratio_vv for s in snaps]),
        "norm_ww": np.array([s.norm_ww for s in snaps]),
        "norm_vv": np.array([s.norm_vv for s in snaps]),
        "grad_norm": np.array([s.grad_norm for s in snaps]),
    }


def hwv_norms_along(
    net: OneHiddenNet,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    loss: str = "ce",
    checkpoints=None,
    schedule: str = "cosine",
) -> list[tuple[int, float, HwvNorms]]:
    """Train ``net`` with :func:`hesslib.train_adam` and decompose ``H_wv`` at checkpoints.

    Args:
        net: the one-hidden-layer net (left untouched).
        X: inputs ``(N, d)``; y: labels ``(N,)``.
        steps: Adam steps; lr: peak learning rate; schedule: ``"cosine"`` or ``"constant"``.
        loss: ``"ce"`` or ``"mse"``.
        checkpoints: steps at which to decompose (default: start and end).

    Returns:
        ``[(step, loss, HwvNorms), …]`` computed in float64.
    """
    checkpoints = [0, steps] if checkpoints is None else checkpoints
    run = train_adam(
        net,
        X,
        y,
        steps=steps,
        lr=lr,
        loss=loss,
        schedule=schedule,
        checkpoints=checkpoints,
        progress=False,
    )
    X64 = X.to(torch.float64)
    return [
        (c.step, c.loss, hwv_norms(X64, y, c.model.W.detach(), c.model.V.detach(), loss=loss))
        for c in run.checkpoints
    ]


@dataclass(frozen=True)
class DeepSnapshot:
    """What chapter 03 keeps of the exact Hessian of a :class:`DeepNet` at one checkpoint.

    Attributes:
        step: training step.
        loss: training loss (float64).
        image: ``|H|`` max-pooled to at most ``max_pixels`` per side (NumPy).
        factor: the pooling factor.
        layer_sizes: parameters per layer (for grid lines).
        layer_widths: neurons (blocks) per layer.
        neuron_norms: ``(B, B)`` Frobenius norms of the per-neuron blocks (``net.layout()``).
        layer_norms: ``(L, L)`` Frobenius norms of the layer blocks ``H_{W_l W_k}``.
        residual_share: ``‖residual part‖_F / ‖H‖_F`` (see :func:`deep_hessian`).
    """

    step: int
    loss: float
    image: np.ndarray
    factor: int
    layer_sizes: tuple[int, ...]
    layer_widths: tuple[int, ...]
    neuron_norms: torch.Tensor
    layer_norms: torch.Tensor
    residual_share: float

    @property
    def layer_diag_mass(self) -> float:
        """Share of ``‖H‖_F²`` on the layer-diagonal blocks."""
        return float(self.layer_norms.diagonal().pow(2).sum() / self.layer_norms.pow(2).sum())

    @property
    def neuron_ratios(self) -> list[float]:
        """RMS off/diagonal ratio of the neuron blocks of each layer (the book's block ratio)."""
        out, start = [], 0
        for count in self.layer_widths:
            sub = self.neuron_norms[start : start + count, start : start + count]
            out.append(stats_from_norms(sub).rms_ratio if count > 1 else float("nan"))
            start += count
        return out

    @property
    def neuron_diag_mass(self) -> float:
        """Share of ``‖H‖_F²`` on the per-neuron diagonal blocks."""
        return float(self.neuron_norms.diagonal().pow(2).sum() / self.neuron_norms.pow(2).sum())


def deep_snapshot(
    net: DeepNet,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "ce",
    step: int = 0,
    max_pixels: int = 400,
) -> DeepSnapshot:
    """Exact Hessian of ``net`` (and its residual part), summarised; the matrices are freed.

    Args:
        net: the network (float64 for exact numbers).
        X: inputs ``(N, d)``; y: labels ``(N,)``; loss: ``"ce"`` or ``"mse"``.
        step: stored as is.
        max_pixels: size of the pooled image.
    """
    H = deep_hessian(net, X, y, loss=loss)
    lay = net.layout()
    norms = block_norms(H, lay)  # (B, B)
    image, factor = pool_abs(H, max_pixels=max_pixels)
    total = float(H.norm())
    del H
    residual = float(deep_hessian(net, X, y, loss=loss, part="residual").norm())
    widths = torch.tensor([W.shape[0] for W in net.weights])
    owner = torch.repeat_interleave(torch.arange(net.depth), widths)  # (B,) layer of each block
    onehot = torch.nn.functional.one_hot(owner, net.depth).to(norms.dtype)  # (B, L)
    layer_norms = (onehot.T @ norms.cpu().pow(2) @ onehot).sqrt()  # (L, L)
    with torch.no_grad():
        value = float(loss_fn(loss)(net(X), y))
    return DeepSnapshot(
        step,
        value,
        image,
        factor,
        tuple(W.numel() for W in net.weights),
        tuple(W.shape[0] for W in net.weights),
        norms.cpu(),
        layer_norms,
        residual / total,
    )
