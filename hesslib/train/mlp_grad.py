"""Gradients for :func:`hesslib.train_adam`: hand-written for the book's ReLU MLPs, else autograd.

:class:`MLPGrad` is the fast path described in :mod:`hesslib.train`: forward and backward of a
bias-free ReLU MLP in a transposed layout (activations ``(width, N)``), samples in cache-sized
chunks, the softmax fused. :func:`autograd_grad` is the fallback for any other module. Private
to the package: the public entry point is :func:`hesslib.train_adam`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad_and_value

from ..core.losses import loss_fn
from ..core.models import LinearNet, OneHiddenNet
from ..nets.deep import DeepNet

__all__ = [
    "autograd_grad",
    "flat_gradient",
    "gradient_path",
    "METHODS",
    "mlp_names",
    "MLPGrad",
]

METHODS = ("auto", "mlp", "autograd")


def mlp_names(model: nn.Module) -> list[str] | None:
    """Weight names in forward order when ``model`` is one of the book's ReLU MLPs."""
    if type(model) is LinearNet:
        return ["V"]
    if type(model) is OneHiddenNet:
        return ["W", "V"]
    if type(model) is DeepNet:
        return list(model.weight_names)
    return None


def gradient_path(model: nn.Module, *, method: str) -> list[str] | None:
    """Which gradient :func:`hesslib.train_adam` uses for ``model``.

    Args:
        model: the network.
        method: ``"auto"`` (hand-written when possible), ``"mlp"`` or ``"autograd"``.

    Returns:
        The weight names in forward order for the hand-written path (:class:`MLPGrad`),
        ``None`` for the autograd path (:func:`autograd_grad`).

    Raises:
        ValueError: an unknown ``method``, or ``"mlp"`` for a model that is not one of the
            book's ReLU MLPs.
    """
    if method not in METHODS:
        raise ValueError(f"method must be 'auto', 'mlp' or 'autograd', got {method!r}")
    names = mlp_names(model)
    if method == "mlp" and names is None:
        raise ValueError(
            f"method='mlp' needs a LinearNet, OneHiddenNet or DeepNet, got {type(model).__name__}"
        )
    return names if method != "autograd" else None


def flat_gradient(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str,
    dtype: torch.dtype,
    names: list[str] | None,
) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], torch.Tensor]:
    """The loss-and-gradient closure of ``model`` in ``dtype`` and its flat parameters.

    Args:
        model: the network (copied, never changed).
        X: inputs ``(N, d)``; the closure runs on their device.
        y: labels ``(N,)``.
        loss: ``"ce"`` or ``"mse"``.
        dtype: the closure's dtype.
        names: from :func:`gradient_path`: weight names in forward order for
            :class:`MLPGrad`, ``None`` for :func:`autograd_grad`.

    Returns:
        ``(grad_fn, theta)``: ``grad_fn(theta, grad)`` writes the ``(P,)`` gradient into
        ``grad`` and returns the loss as a 0-d tensor; ``theta`` is a fresh ``(P,)`` copy of
        the parameters on ``X``'s device.

    Raises:
        ValueError: the MLP's parameters are not registered in the forward order.
    """
    Xt = X.to(dtype)
    work = copy.deepcopy(model).to(device=X.device, dtype=dtype)
    if names is None:
        theta = torch.nn.utils.parameters_to_vector(work.parameters()).detach()
        return autograd_grad(work, Xt, y, loss), theta.clone()
    pdict = dict(work.named_parameters())
    theta = torch.cat([pdict[n].detach().reshape(-1) for n in names])
    order = [n for n, _ in model.named_parameters()]
    if order != names:  # MLPGrad needs forward order = named_parameters order
        raise ValueError(f"parameter order {order} differs from the forward order {names}")
    return MLPGrad([pdict[n].shape for n in names], Xt, y, loss), theta.clone()


class MLPGrad:
    """Loss and flat gradient of a ReLU MLP at a flat parameter vector.

    Activations are kept transposed, ``(width, rows)``, and the samples are processed in chunks
    of ``chunk`` rows: every per-sample quantity (activations, logits, softmax) of one chunk stays
    in cache while it is used, so ``X`` is read once per step and the ``(N, C)`` logits never go
    to memory; only the small gradient sums cross chunks. On a GPU one chunk holds all samples.
    """

    def __init__(
        self,
        shapes: list[torch.Size],
        X: torch.Tensor,
        y: torch.Tensor,
        loss: str,
        chunk: int | None = None,
    ):
        self.shapes = shapes
        self.numels = [s.numel() for s in shapes]
        self.X = X.contiguous()  # (N, d)
        self.XT = X.T.contiguous()  # (d, N)
        self.y = y
        self.loss = loss
        N, C = X.shape[0], shapes[-1][0]
        self.N = N
        if chunk is None:  # ~2 MB of float32 per (chunk, widest layer) matrix on a CPU
            widest = max(max(s[0], s[1]) for s in shapes)
            chunk = N if X.device.type != "cpu" else max(256, 2**19 // widest)
        self.bounds = [(s, min(N, s + chunk)) for s in range(0, N, chunk)]
        self.rows = torch.arange(min(N, chunk), device=X.device)
        self.minus_one = torch.tensor(-1.0, dtype=X.dtype, device=X.device)
        self.onehot = None
        if loss == "mse":
            self.onehot = torch.nn.functional.one_hot(y, C).to(X.dtype)  # (N, C)
        # gradient accumulators: W_l-shaped, except the last layer, kept transposed (width, C)
        acc_shapes = [tuple(s) for s in shapes[:-1]] + [(shapes[-1][1], shapes[-1][0])]
        self.acc = [torch.empty(s, dtype=X.dtype, device=X.device) for s in acc_shapes]
        self.value = torch.empty((), dtype=X.dtype, device=X.device)

    def __call__(self, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Write ∇ℓ(θ) into ``grad`` and return ℓ(θ) as a 0-d tensor (no host sync)."""
        Ws = [t.view(s) for t, s in zip(torch.split(theta, self.numels), self.shapes, strict=True)]
        L = len(Ws)
        for a in self.acc:
            a.zero_()
        value = self.value.zero_()
        for s, e in self.bounds:
            HT = [self.XT[:, s:e]]  # activations, transposed: (width_l, n)
            ZT = []
            for W in Ws[:-1]:
                Z = W @ HT[-1]  # (width_l, n)
                ZT.append(Z)
                HT.append(torch.relu(Z))
            F = HT[-1].T @ Ws[-1].T  # (n, C) logits
            if self.loss == "ce":
                G = torch.softmax(F, dim=1)  # (n, C), one fused kernel
                rows, ys = self.rows[: e - s], self.y[s:e]
                value.sub_(G[rows, ys].clamp_min(1e-38).log().sum())
                G.index_put_((rows, ys), self.minus_one, accumulate=True)  # P − onehot
            else:
                G = F.sub_(self.onehot[s:e])  # (n, C)
                value.add_(G.pow(2).sum(), alpha=0.5)
            self.acc[-1].addmm_(HT[-1], G)  # (width_{L-1}, C)
            if L > 1:
                dHT = Ws[-1].T @ G.T  # (width_{L-1}, n)
                for layer in range(L - 2, -1, -1):
                    dZT = dHT.mul_(ZT[layer] > 0)  # (width_l, n)
                    prev = self.X[s:e] if layer == 0 else HT[layer].T  # (n, width_{l-1})
                    self.acc[layer].addmm_(dZT, prev)
                    if layer > 0:
                        dHT = Ws[layer].T @ dZT  # (width_{l-1}, n)
        inv_n = 1.0 / self.N
        Gs = [t.view(s) for t, s in zip(torch.split(grad, self.numels), self.shapes, strict=True)]
        for layer in range(L - 1):
            torch.mul(self.acc[layer], inv_n, out=Gs[layer])
        torch.mul(self.acc[-1].T, inv_n, out=Gs[-1])  # (C, width_{L-1})
        return value.mul(inv_n)


def autograd_grad(model: nn.Module, X, y, loss: str):
    """Flat loss-and-gradient closure for any module (``torch.func``)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    numels = [p.numel() for _, p in model.named_parameters()]
    lfn = loss_fn(loss)

    def f(theta):
        params = {
            n: t.view(s) for n, t, s in zip(names, torch.split(theta, numels), shapes, strict=True)
        }
        return lfn(functional_call(model, params, (X,)), y)

    gv = grad_and_value(f)

    def step(theta, grad):
        g, v = gv(theta)
        grad.copy_(g)
        return v.detach()

    return step
