r"""Chapter 03: how training reshapes the Hessian, the ``H_wv`` decomposition along a run.

For ``f(x) = V σ(W x)`` (``g_n = ∂ℓ/∂f`` is ``p_n − e_{y_n}`` for CE, ``f(x_n) − e_{y_n}`` for
MSE) the cross block splits as (:mod:`hesslib.core.closed_form`)

.. math::
    H_{w_k v_c} = \underbrace{\tfrac1N \textstyle\sum_n g_{nc} D_{nk}\,
        x_n e_k^\top}_{\text{residual term}}
    \;+\; \underbrace{\tfrac1N \textstyle\sum_n (V^\top S_n)_{kc} D_{nk}\,
        x_n a_n^\top}_{\text{rest}} .

The residual term lives in column k of each ``d × m`` block and is proportional to ``g``; it
is the one-column ("block-circulant") pattern of ``H_wv`` at initialisation, and it fades
only when training drives ``g`` to zero, i.e. when the network fits its labels (the "dynamic
force" of the talk, arXiv 2505.02809 Part II-2). Column k stacked over ``c`` is
``R_k = Xᵀ diag(D_{·k}) G / N`` ``(d, C)``.

Here: the decomposition's norms, the per-checkpoint :class:`HessianSnapshot`, a training run
tracked along the way (:func:`track_run`) and its summary (:func:`run_summary`), teacher
labels, the fair speed comparison of the trainer, and the 4-layer net's :class:`DeepSnapshot`.
:mod:`hesslib.plot.snapshots` draws and animates the snapshots.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
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
from ..core.flat import flat_loss
from ..core.losses import loss_fn
from ..core.models import OneHiddenNet, one_hidden_net
from ..core.timing import Timing, compare_timings
from ..nets.deep import DeepNet, deep_hessian
from ..train.adam import checkpoint_steps, train_adam

__all__ = [
    "adam_speed",
    "deep_snapshot",
    "DeepSnapshot",
    "hessian_snapshot",
    "HessianSnapshot",
    "hwv_column_norms",
    "hwv_norms",
    "HwvNorms",
    "residual_columns",
    "run_summary",
    "snapshot_table",
    "teacher_labels",
    "track_run",
    "TrackedRun",
]


@dataclass(frozen=True)
class HwvNorms:
    """Frobenius norms of ``H_wv``, of its residual term and of the rest, and the share of
    ``‖H_wv‖_F²`` in the k-th column of the blocks ``H_{w_k v_c}`` (1 = one-column)."""

    total: float
    residual: float
    rest: float
    own_column_fraction: float


def residual_columns(X, y, W, V, *, loss: str = "ce") -> torch.Tensor:
    r"""The non-zero columns of the residual term, :math:`R_k = \frac1N X^\top
    \mathrm{diag}(D_{\cdot k})\, G` (``X`` ``(N, d)``, ``W`` ``(m, d)``, ``V`` ``(C, m)``).

    Returns:
        ``(m, d, C)``: ``R[k, :, c]`` is column ``k`` of the residual term's block ``(k, c)``.
    """
    D, A = relu_features(X, W)  # (N, m) each
    G, _ = output_residuals(A @ V.T, y, loss)  # (N, C) residuals g
    return torch.einsum("nk,nd,nc->kdc", D, X, G) / X.shape[0]  # (m, d, C)


def hwv_column_norms(Hwv: torch.Tensor, m: int) -> torch.Tensor:
    """``M[k, j] = ‖column j of the blocks H_{w_k v_c}, all c‖``, an ``(m, m)`` map (diagonal
    for a one-column ``H_wv``) of the cross block ``Hwv`` ``(m d, C m)``."""
    md, Cm = Hwv.shape
    d, C = md // m, Cm // m
    if d * m != md or C * m != Cm:
        raise ValueError(f"Hwv must have shape (m d, C m) with m = {m}, got {tuple(Hwv.shape)}")
    return Hwv.reshape(m, d, C, m).pow(2).sum(dim=(1, 2)).sqrt()  # (m, m)


def _norms_from_block(Hwv: torch.Tensor, R: torch.Tensor) -> HwvNorms:
    """:class:`HwvNorms` of ``Hwv`` ``(m d, C m)`` given its residual columns ``R`` (m, d, C)."""
    m, _, C = R.shape
    own = Hwv.reshape(m, -1, C, m).diagonal(dim1=0, dim2=3).permute(2, 0, 1)  # (m, d, C)
    total2, res2, own2 = (float(t.pow(2).sum()) for t in (Hwv, R, own))
    rest2 = total2 - 2 * float((own * R).sum()) + res2
    return HwvNorms(total2**0.5, res2**0.5, max(rest2, 0.0) ** 0.5, own2 / total2)


def hwv_norms(X, y, W, V, *, loss: str = "ce") -> HwvNorms:
    """:class:`HwvNorms` from :func:`hesslib.hwv_decomposition` (no full Hessian needed)."""
    residual, rest = hwv_decomposition(X, y, W, V, loss=loss)
    return _norms_from_block(residual + rest, residual_columns(X, y, W, V, loss=loss))


@dataclass(frozen=True)
class HessianSnapshot:
    """What chapter 03 keeps of the exact Hessian at one checkpoint (the matrix is dropped).

    Attributes:
        step, loss: training step and loss (float64).
        image, factor: ``|H|`` max-pooled by ``factor`` (NumPy, for figures).
        norms: ``(m + C, m + C)`` block Frobenius norms.
        ratio_ww, ratio_vv: RMS off/diagonal ratios of the neuron blocks of ``H_ww`` and of
            the class blocks of ``H_vv``.
        hwv: :class:`HwvNorms`; column_norms: its ``(m, m)`` :func:`hwv_column_norms` map.
        norm_ww, norm_vv: ``‖H_ww‖_F`` and ``‖H_vv‖_F``; grad_norm: ``‖∇ℓ‖_2``.
        hwv_zoom: ``|H_wv|`` on the first input coordinates of every neuron and the first
            classes, ``(m·zoom[0], zoom[1]·m)`` (NumPy): the one-column pattern at full size.
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

    @property
    def hwv_share(self) -> float:
        """``‖H_wv‖_F / ‖H‖_F``: the cross block's share of the whole Hessian."""
        total = self.norm_ww**2 + self.norm_vv**2 + 2 * self.hwv.total**2
        return self.hwv.total / math.sqrt(total)


def _loss_and_grad(net, X, y, loss: str) -> tuple[float, float]:
    """Loss and gradient norm of ``net`` on ``(X, y)``."""
    f, theta = flat_loss(net, X, y, loss)
    theta.requires_grad_(True)
    with torch.enable_grad():
        value = f(theta)
        (grad,) = torch.autograd.grad(value, theta)
    return float(value.detach()), float(grad.norm())


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
    """Exact Hessian (closed form, ``net``'s dtype) at ``net`` and its summaries; the ``(P, P)``
    matrix is freed on return, so a whole run of snapshots fits in memory.

    Args:
        net: a :class:`~hesslib.OneHiddenNet` (float64 for exact numbers).
        X: inputs ``(N, d)`` of ``net``'s dtype; y: labels ``(N,)``; loss: ``"ce"``/``"mse"``.
        step: the training step, stored; max_pixels: size of the pooled image.
        zoom: ``(input coordinates per neuron, classes)`` kept in ``hwv_zoom``.
    """
    if not isinstance(net, OneHiddenNet):
        raise TypeError(f"net must be a OneHiddenNet, got {type(net).__name__}")
    W, V = net.W.detach(), net.V.detach()
    (m, d), C = W.shape, V.shape[0]
    Hb = closed_form_blocks(net, X, y, loss=loss)
    norms = block_norms(Hb.dense, net.layout())
    image, factor = pool_abs(Hb.dense, max_pixels=max_pixels)
    hwv = _norms_from_block(Hb.Hwv, residual_columns(X, y, W, V, loss=loss))
    zd, zc = min(zoom[0], d), min(zoom[1], C)
    zoomed = Hb.Hwv.reshape(m, d, C * m)[:, :zd, : zc * m].reshape(m * zd, zc * m)
    parts = (hwv_column_norms(Hb.Hwv, m), float(Hb.Hww.norm()), float(Hb.Hvv.norm()))
    zoomed = zoomed.abs().cpu().numpy()  # (m zd, zc m)
    del Hb
    value, grad_norm = _loss_and_grad(net, X, y, loss)
    ratio_ww = stats_from_norms(norms[:m, :m]).rms_ratio if m > 1 else float("nan")
    ratio_vv = stats_from_norms(norms[m:, m:]).rms_ratio
    return HessianSnapshot(
        step, value, image, factor, norms, ratio_ww, ratio_vv, hwv, *parts, grad_norm, zoomed
    )


def snapshot_table(snaps: Iterable[HessianSnapshot]) -> dict[str, np.ndarray]:
    """Columns of a list of snapshots as arrays (step, loss, ‖H_wv‖, residual, rest, …)."""
    snaps = list(snaps)
    cols = {"step": [s.step for s in snaps], "loss": [s.loss for s in snaps]}
    cols |= {k: [getattr(s.hwv, k) for s in snaps] for k in ("residual", "rest")}
    cols |= {"hwv": [s.hwv.total for s in snaps], "hwv_share": [s.hwv_share for s in snaps]}
    cols["own_column"] = [s.hwv.own_column_fraction for s in snaps]
    for key in ("ratio_ww", "ratio_vv", "norm_ww", "norm_vv", "grad_norm"):
        cols[key] = [getattr(s, key) for s in snaps]
    return {k: np.array(v) for k, v in cols.items()}


def teacher_labels(X: torch.Tensor, m: int, num_classes: int, *, seed: int) -> torch.Tensor:
    """Labels ``y_n = argmax_c f_T(x_n)_c`` of a fresh teacher ``f_T`` of the student's shape
    (``d → m → C``, LeCun init, ``seed``): labels the student can fit exactly."""
    teacher = one_hidden_net(X.shape[1], m, num_classes, seed=seed, device=X.device, dtype=X.dtype)
    with torch.no_grad():
        return teacher(X).argmax(dim=1)


@dataclass(frozen=True)
class TrackedRun:
    """A training run of :func:`track_run`.

    Attributes:
        losses: ``(steps + 1,)`` training loss at every step (training dtype).
        snapshots: a :class:`HessianSnapshot` at each frame.
        trace: arrays ``step``, ``loss``, ``residual`` (``‖residual term‖_F``) and
            ``grad_norm`` at the frames and the extra checkpoints (no Hessian needed).
        final: the model after the last step (float64).
    """

    losses: np.ndarray
    snapshots: tuple[HessianSnapshot, ...]
    trace: dict[str, np.ndarray]
    final: OneHiddenNet

    @property
    def table(self) -> dict[str, np.ndarray]:
        """:func:`snapshot_table` of the snapshots."""
        return snapshot_table(self.snapshots)


def track_run(
    net: OneHiddenNet,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    frames: Sequence[float] = (0.0, 1.0),
    extra_log: int = 0,
    loss: str = "ce",
    schedule: str = "cosine",
    threads: int | None = 1,
    dtype: torch.dtype = torch.float64,
    progress: bool = True,
    desc: str | None = None,
) -> TrackedRun:
    """Train ``net`` (left untouched) with :func:`hesslib.train_adam` and follow ``H_wv``.

    At the ``frames`` (fractions of the run) the exact Hessian is summarised in ``dtype``
    (:func:`hessian_snapshot`); at ``extra_log`` more log-spaced steps only the loss, the
    residual term's norm and the gradient norm are recorded, which needs no Hessian.
    ``threads`` (default 1; ``None``: torch's setting) fixes the CPU threads of the training
    and of the Hessians: on a shared 2-core machine one thread is faster and reproducible.
    """
    shots = checkpoint_steps(steps, frames)
    extra = checkpoint_steps(steps, (), extra_log=extra_log) if extra_log else []
    X64, X32, Xh = (X.to(t) for t in (torch.float64, torch.float32, dtype))

    def point(step: int, model: OneHiddenNet) -> tuple[float, float, float]:
        W, V = (p.detach().float() for p in (model.W, model.V))
        R = residual_columns(X32, y, W, V, loss=loss)  # float32: a norm for a plot
        return (*_loss_and_grad(model, X64, y, loss), float(R.norm()))

    run = train_adam(
        net, X, y, steps=steps, lr=lr, loss=loss, schedule=schedule, threads=threads,
        checkpoints=sorted({*shots, *extra, steps}), callback=point, progress=progress, desc=desc,
    )  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        snaps = tuple(
            hessian_snapshot(copy.deepcopy(c.model).to(dtype), Xh, y, loss=loss, step=c.step)
            for c in run.checkpoints
            if c.step in shots
        )
    finally:
        torch.set_num_threads(before)
    rec = np.array([c.record for c in run.checkpoints])  # (K, 3): loss, gradient, residual
    trace = {"step": np.array([c.step for c in run.checkpoints]), "loss": rec[:, 0]}
    trace |= {"grad_norm": rec[:, 1], "residual": rec[:, 2]}
    return TrackedRun(run.losses.numpy(), snaps, trace, run.checkpoints[-1].model)


def run_summary(run: TrackedRun) -> dict[str, float]:
    """The numbers chapter 03 concludes from, first snapshot against last: losses, ratios
    end/start of the residual term, the rest, ``‖H_wv‖``, ``‖H_ww‖``, ``‖H_vv‖`` and the
    gradient, the own-column and ``H_wv`` shares, and the block ratios at the end."""
    a, b = run.snapshots[0], run.snapshots[-1]
    out = {"loss_init": a.loss, "loss_final": b.loss}
    for key in ("residual", "rest", "total"):
        out[f"{key}_ratio"] = getattr(b.hwv, key) / getattr(a.hwv, key)
    for key in ("norm_ww", "norm_vv", "grad_norm"):
        out[f"{key}_ratio"] = getattr(b, key) / getattr(a, key)
    out |= {"own_init": a.hwv.own_column_fraction, "own_final": b.hwv.own_column_fraction}
    out |= {"share_init": a.hwv_share, "share_final": b.hwv_share}
    return out | {"ratio_ww_final": b.ratio_ww, "ratio_vv_final": b.ratio_vv}


def adam_speed(net, X, y, *, steps=50, repeats=5, threads=1) -> dict[str, Timing]:
    """:func:`hesslib.train_adam` against the textbook loop (module forward, ``backward()``,
    ``torch.optim.Adam``, float32), ``steps`` steps each, timed by
    :func:`hesslib.core.timing.compare_timings` on the same ``threads``: returns
    ``{"train_adam": Timing, "textbook": Timing}`` (seconds per ``steps`` steps)."""
    work, Xf, lfn = copy.deepcopy(net).float(), X.float(), loss_fn("ce")
    opt = torch.optim.Adam(work.parameters(), lr=1e-3)

    def textbook() -> None:
        for _ in range(steps):
            opt.zero_grad()
            lfn(work(Xf), y).backward()
            opt.step()

    def helper() -> None:
        train_adam(net, Xf, y, steps=steps, lr=1e-3, progress=False, threads=threads)

    calls = {"train_adam": helper, "textbook": textbook}
    return compare_timings(calls, repeats=repeats, threads=threads)


@dataclass(frozen=True)
class DeepSnapshot:
    """What chapter 03 keeps of the exact Hessian of a :class:`DeepNet` at one checkpoint.

    Attributes:
        step, loss: training step and loss (float64).
        image, factor: ``|H|`` max-pooled by ``factor`` (NumPy).
        layer_sizes, layer_widths: parameters and neurons (blocks) per layer.
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
    net: DeepNet, X, y, *, loss: str = "ce", step: int = 0, max_pixels: int = 400
) -> DeepSnapshot:
    """Exact Hessian of ``net`` (and its residual part), summarised; the matrices are freed.

    Args:
        net: the network (float64 for exact numbers); X: inputs ``(N, d)``; y: labels ``(N,)``.
        loss: ``"ce"`` or ``"mse"``; step: stored as is; max_pixels: size of the pooled image.
    """
    H = deep_hessian(net, X, y, loss=loss)
    norms = block_norms(H, net.layout())  # (B, B)
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
    sizes = tuple(W.numel() for W in net.weights)
    return DeepSnapshot(step, value, image, factor, sizes, tuple(widths.tolist()), norms.cpu(),
                        layer_norms, residual / total)  # fmt: skip
