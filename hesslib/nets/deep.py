r"""The deeper ReLU network of the talk's "Hessian for deep NNs?" slide (arXiv 2505.02809).

``f(x) = W_L σ(W_{L-1} ⋯ σ(W_1 x))`` with ReLU ``σ``, no biases, ``W_l`` of shape
``(n_l, n_{l-1})``, ``n_0 = d`` and ``n_L = C``. Depth counts weight matrices, as the talk
does when it calls the one-hidden-layer net ``V σ(W x)`` a "2-layer" network; the slide's
"4-layer" net is ``depth = 4`` (three hidden layers) with ``d = C = width = 50``.

Parameters are ordered layer by layer, each ``W_l`` row-major, so a neuron's incoming weights
(one row of ``W_l``) are consecutive: :meth:`DeepNet.layout` cuts the Hessian into one block per
neuron (per class in the last layer), grouped by layer; ``per="layer"`` gives one block per
weight matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core.blocks import BlockLayout
from ..core.checks import (
    check_labels,
    check_loss,
    check_matrix,
    check_num_classes,
    check_positive_int,
)
from ..core.device import default_device, make_generator
from ..core.hessian import check_memory
from ..core.models import INITS, init_matrix

__all__ = [
    "deep_hessian",
    "deep_net",
    "DeepNet",
]


class DeepNet(nn.Module):
    """Bias-free ReLU MLP with weights ``W1 … WL`` (registered in forward order)."""

    def __init__(self, weights: list[torch.Tensor]):
        super().__init__()
        if not weights:
            raise ValueError("weights must hold at least one matrix")
        for i, (a, b) in enumerate(zip(weights[:-1], weights[1:], strict=False)):
            if b.shape[1] != a.shape[0]:
                raise ValueError(
                    f"W{i + 2} has {b.shape[1]} columns but W{i + 1} has {a.shape[0]} rows"
                )
        for i, W in enumerate(weights):
            self.register_parameter(f"W{i + 1}", nn.Parameter(W))

    @property
    def weight_names(self) -> tuple[str, ...]:
        return tuple(f"W{i + 1}" for i in range(self.depth))

    @property
    def weights(self) -> list[torch.Tensor]:
        return [getattr(self, n) for n in self.weight_names]

    @property
    def depth(self) -> int:
        return sum(1 for _ in self.parameters())

    @property
    def num_classes(self) -> int:
        return self.weights[-1].shape[0]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        H = X  # (N, d)
        for W in self.weights[:-1]:
            H = torch.relu(H @ W.T)  # (N, n_l)
        return H @ self.weights[-1].T  # (N, C)

    def layout(self, per: str = "neuron") -> BlockLayout:
        """Block layout of the Hessian.

        Args:
            per: ``"neuron"``: one block per row of each ``W_l`` (size ``n_{l-1}``), grouped by
                layer (groups ``"W1" … "WL"``; the last layer's blocks are the class blocks);
                ``"layer"``: one block per weight matrix, in one group ``"layers"``.
        """
        if per == "neuron":
            return BlockLayout.uniform(
                [
                    (n, W.shape[0], W.shape[1])
                    for n, W in zip(self.weight_names, self.weights, strict=True)
                ]
            )
        if per == "layer":
            return BlockLayout.from_named_sizes(
                [(n, W.numel()) for n, W in zip(self.weight_names, self.weights, strict=True)],
                group="layers",
            )
        raise ValueError(f"per must be 'neuron' or 'layer', got {per!r}")


def deep_net(
    d: int,
    width: int,
    num_classes: int,
    *,
    depth: int = 4,
    init: str = "lecun",
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> DeepNet:
    """A :class:`DeepNet` of ``depth`` weight matrices with i.i.d. initialisation.

    Args:
        d: input dimension.
        width: width of every hidden layer.
        num_classes: number of classes ``C >= 2``.
        depth: number of weight matrices (``depth − 1`` hidden layers); 4 on the talk's slide.
        init: ``"lecun"`` (``N(0, 1/fan_in)``, the theory's assumption) or ``"pytorch"``
            (``nn.Linear``'s ``U(±1/√fan_in)``).
        seed: seed of the initialisation (layers drawn in order from one generator).
        device: device (default :func:`hesslib.default_device`).
        dtype: parameter dtype.

    Returns:
        The network; ``net.layout()`` has ``(depth − 1)·width + C`` blocks.
    """
    check_positive_int("d", d)
    check_positive_int("width", width)
    check_positive_int("depth", depth)
    check_num_classes(num_classes)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    gen = make_generator(seed)
    dims = [d] + [width] * (depth - 1) + [num_classes]
    weights = [init_matrix((o, i), init, gen) for i, o in zip(dims[:-1], dims[1:], strict=True)]
    device = torch.device(device) if device is not None else default_device()
    return DeepNet([W.to(device=device, dtype=dtype) for W in weights])


def deep_hessian(
    net: DeepNet,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "ce",
    part: str = "full",
    max_bytes: int | None = None,
) -> torch.Tensor:
    r"""Exact Hessian of a :class:`DeepNet` by block formulas (GEMMs, no autograd).

    With layer ``l`` mapping ``h_l`` (input, ``n_l``) to ``z_l = W_l h_l``, ``B_{n,l} =
    ∂f/∂z_l`` (``C × n_{l+1}``), ``S_n = ∂²ℓ/∂f²``, ``g_n = ∂ℓ/∂f``, backprop deltas
    ``δ_{n,l} = B_{n,l}^\top g_n`` and ``T^{(k,l)}_n = ∂h_k/∂z_l`` (``k > l``):

    .. math::
        H_{(l,i,a),(k,j,b)} = \frac1N\sum_n \Big[(B_{n,l}^\top S_n B_{n,k})_{ij}\, h_{n,l,a}\,
        h_{n,k,b} \;+\; [k>l]\; \delta_{n,k,j}\, T^{(k,l)}_{n,bi}\, h_{n,l,a}\Big].

    The first term is the Gauss–Newton part; the second, the one-hidden-layer "residual term"
    generalised, exists only between different layers because a bias-free ReLU net is linear in
    each ``W_l`` separately. Rows are built one neuron at a time as ``h_lᵀ · rhs`` GEMMs, about
    ``N P² / 2`` multiply-adds in all — several times fewer than ``P`` Hessian-vector products.
    The test suite checks it against ``torch.func.hessian``.

    Args:
        net: the network.
        X: inputs ``(N, d)`` (dtype/device of ``net``).
        y: labels ``(N,)``.
        loss: ``"ce"`` or ``"mse"``.
        part: ``"full"`` (the Hessian), ``"gauss_newton"`` (first term only) or
            ``"residual"`` (second term only; zero on the layer-diagonal blocks).
        max_bytes: memory budget for the ``(P, P)`` result.

    Returns:
        ``H`` ``(P, P)`` in the parameter order of ``net`` (rows of ``W1``, then ``W2`` …).
    """
    Ws = _checked_weights(net, X, y, loss=loss, part=part, max_bytes=max_bytes)
    terms = _hessian_terms(Ws, X, y, loss=loss)
    return _assemble(terms, Ws, gn=part != "residual", res=part != "gauss_newton")


def _checked_weights(
    net: DeepNet,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str,
    part: str,
    max_bytes: int | None,
) -> list[torch.Tensor]:
    """Validate the arguments of :func:`deep_hessian` (see there) and its memory need.

    Returns:
        The detached weights ``W_l`` ``(n_l, n_{l-1})`` of ``net``, in forward order.

    Raises:
        TypeError: ``net`` is not a :class:`DeepNet`.
        ValueError: bad inputs, labels, loss or ``part``.
        MemoryError: the ``(P, P)`` result would not fit in ``max_bytes``.
    """
    if not isinstance(net, DeepNet):
        raise TypeError(f"net must be a DeepNet, got {type(net).__name__}")
    check_matrix("X", X)
    check_loss(loss)
    Ws = [W.detach() for W in net.weights]
    check_labels(y, X.shape[0], net.num_classes)
    if part not in ("full", "gauss_newton", "residual"):
        raise ValueError(f"part must be 'full', 'gauss_newton' or 'residual', got {part!r}")
    if X.shape[1] != Ws[0].shape[1] or X.dtype != Ws[0].dtype:
        raise ValueError(
            f"X must be (N, {Ws[0].shape[1]}) of dtype {Ws[0].dtype}, "
            f"got {tuple(X.shape)} {X.dtype}"
        )
    P = sum(W.numel() for W in Ws)
    check_memory(
        P * P * X.element_size(),
        what=f"a dense {P}x{P} Hessian",
        device=X.device,
        max_bytes=max_bytes,
    )
    return Ws


@dataclass(frozen=True)
class _Terms:
    """The per-sample factors of the block formulas of :func:`deep_hessian`.

    Attributes:
        hs: the input of each layer, ``hs[l]`` ``(N, n_l)`` (``hs[0] = X``).
        M: ``(N, U, U)`` Gauss–Newton kernel ``Bᵀ S B`` over all ``U`` units (outputs of
            every layer, layer by layer).
        delta: ``(N, U)`` backprop deltas ``Bᵀ g``.
        T: ``T[(k, l)] = ∂h_k/∂z_l`` ``(N, n_k, n_{l+1})`` for ``k > l``.
        unit_off: offset of each layer's units in ``U`` (``L + 1`` entries).
    """

    hs: list[torch.Tensor]
    M: torch.Tensor
    delta: torch.Tensor
    T: dict[tuple[int, int], torch.Tensor]
    unit_off: list[int]


def _hessian_terms(Ws: list[torch.Tensor], X: torch.Tensor, y: torch.Tensor, *, loss: str):
    """Forward pass, output curvature and layer Jacobians of the net ``Ws`` at ``X``.

    Args:
        Ws: weights ``(n_l, n_{l-1})`` in forward order.
        X: inputs ``(N, d)``.
        y: labels ``(N,)``.
        loss: ``"ce"`` or ``"mse"``.

    Returns:
        The :class:`_Terms` of the block formulas.
    """
    L, N, C = len(Ws), X.shape[0], Ws[-1].shape[0]
    hs, Ds = [X], []  # inputs of each layer (N, n_l); ReLU masks of hidden layers
    for W in Ws[:-1]:
        Z = hs[-1] @ W.T  # (N, n_{l+1})
        Ds.append((Z > 0).to(X.dtype))
        hs.append(Z * Ds[-1])
    F = hs[-1] @ Ws[-1].T  # (N, C)
    onehot = torch.nn.functional.one_hot(y, C).to(X.dtype)
    p = torch.softmax(F, dim=1) if loss == "ce" else None
    g = (p if loss == "ce" else F) - onehot  # (N, C)
    B = [torch.eye(C, dtype=X.dtype, device=X.device).expand(N, C, C)]  # ∂f/∂z_l, last first
    for layer in range(L - 2, -1, -1):
        B.insert(0, (B[0] @ Ws[layer + 1]) * Ds[layer][:, None, :])  # (N, C, n_{l+1})
    Ball = torch.cat(B, dim=2)  # (N, C, U), U = all units
    if p is None:
        M = Ball.transpose(1, 2) @ Ball  # (N, U, U)
    else:
        u = torch.einsum("ncu,nc->nu", Ball, p)  # (N, U)
        M = Ball.transpose(1, 2) @ (Ball * p[:, :, None]) - u[:, :, None] * u[:, None, :]
    delta = torch.einsum("ncu,nc->nu", Ball, g)  # (N, U): backprop deltas
    unit_off = [0]
    for W in Ws:
        unit_off.append(unit_off[-1] + W.shape[0])
    return _Terms(hs, M, delta, _relu_jacobians(Ws, Ds), unit_off)


def _relu_jacobians(
    Ws: list[torch.Tensor], Ds: list[torch.Tensor]
) -> dict[tuple[int, int], torch.Tensor]:
    """``T[(k, l)] = ∂h_k/∂z_l`` ``(N, n_k, n_{l+1})`` for ``k > l``, from the ReLU masks.

    Args:
        Ws: weights ``(n_l, n_{l-1})`` in forward order.
        Ds: ReLU masks ``(N, n_l)`` of the hidden layers (0/1 in the inputs' dtype).
    """
    T = {}
    for layer in range(len(Ws) - 1):
        T[(layer + 1, layer)] = torch.diag_embed(Ds[layer])
        for k in range(layer + 2, len(Ws)):
            T[(k, layer)] = Ds[k - 1][:, :, None] * (Ws[k - 1] @ T[(k - 1, layer)])
    return T


def _assemble(terms: _Terms, Ws: list[torch.Tensor], *, gn: bool, res: bool) -> torch.Tensor:
    """The ``(P, P)`` Hessian: upper block rows one neuron at a time, then their mirror.

    Args:
        terms: the factors of the block formulas.
        Ws: weights ``(n_l, n_{l-1})`` in forward order.
        gn: include the Gauss–Newton term.
        res: include the residual term (between different layers).
    """
    L, X = len(Ws), terms.hs[0]
    off = [0]
    for W in Ws:
        off.append(off[-1] + W.numel())
    P = off[-1]
    H = (torch.zeros if not gn else torch.empty)(P, P, dtype=X.dtype, device=X.device)
    for layer in range(L if gn else L - 1):
        n_in = Ws[layer].shape[1]
        first = layer if gn else layer + 1  # the residual part has no layer-diagonal blocks
        for i in range(Ws[layer].shape[0]):
            rows = slice(off[layer] + i * n_in, off[layer] + (i + 1) * n_in)
            H[rows, off[first] :] = _neuron_rows(terms, layer, i, first=first, gn=gn, res=res)
    for layer in range(L):  # mirror the blocks below the diagonal
        for k in range(layer + 1, L):
            H[off[k] : off[k + 1], off[layer] : off[layer + 1]] = H[
                off[layer] : off[layer + 1], off[k] : off[k + 1]
            ].T
    return H


def _neuron_rows(
    terms: _Terms, layer: int, i: int, *, first: int, gn: bool, res: bool
) -> torch.Tensor:
    """The Hessian rows of the incoming weights of neuron ``i`` of ``layer``, from layer
    ``first`` on: ``(n_layer, Σ_{k ≥ first} n_{k+1} n_k)``, as one ``h_lᵀ · rhs`` GEMM.
    """
    hs, delta = terms.hs, terms.delta
    N, L = hs[0].shape[0], len(terms.unit_off) - 1
    unit = terms.unit_off[layer] + i
    parts = []
    for k in range(first, L):
        units_k = slice(terms.unit_off[k], terms.unit_off[k + 1])
        if gn:
            rhs = terms.M[:, unit, units_k][:, :, None] * hs[k][:, None, :]  # (N, n_{k+1}, n_k)
            if res and k > layer:
                rhs += delta[:, units_k][:, :, None] * terms.T[(k, layer)][:, None, :, i]
        else:
            rhs = delta[:, units_k][:, :, None] * terms.T[(k, layer)][:, None, :, i]
        parts.append(rhs.reshape(N, -1))
    return hs[layer].T @ torch.cat(parts, dim=1) / N
