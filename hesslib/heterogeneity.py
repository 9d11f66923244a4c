r"""Block heterogeneity: blockwise Hessian spectra of a network, their JS distances, and the
heterogeneity dial of "Why Transformers Need Adam" (§2.4, App. C.3, Table 3).

:func:`block_spectra` is a thin adapter over :func:`hesslib.spectrum.block_slq`: the full
model's Hessian is only touched through batched HVPs (``torch.func.vmap`` over columns), and
one such HVP per Lanczos step advances the probes of *every* block, since a probe supported on
block ``b`` returns ``H_bb q`` in block ``b``'s rows. The JS distances are the standard bounded
ones (base 2, in ``[0, 1]``), computed on the union of the blocks' own grids so that a block
whose spectrum is orders of magnitude narrower than another's is still resolved.

The dial: a 4-layer ReLU MLP whose every layer output is multiplied by a constant ``c``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_positive_int
from .blocks import BlockLayout
from .data import Dataset
from .device import default_device, make_generator
from .hessian import flat_loss, hvp
from .losses import loss_fn
from .spectrum import Spectrum, block_slq, pairwise_js

__all__ = [
    "BlockSpectra",
    "hvp_matvec",
    "block_spectra",
    "union_grid",
    "js_zero",
    "ScaledMLP",
    "scaled_mlp",
    "mlp_layout",
    "train_classifier",
    "TrainResult",
]


def hvp_matvec(f, theta: torch.Tensor, *, chunk: int | None = None):
    """A ``matvec`` for :mod:`hesslib.lanczos`: ``(P, K) ↦ H (P, K)`` by vmapped HVPs.

    Columns are cast to ``theta``'s dtype (e.g. float32 for speed) and the result back to
    float64; ``chunk`` columns at a time bound the memory (default: all at once).
    """

    def matvec(Z: torch.Tensor) -> torch.Tensor:
        step = Z.shape[1] if chunk is None else chunk
        outs = [hvp(f, theta, Z[:, c0 : c0 + step].to(theta.dtype)).to(Z.dtype)
                for c0 in range(0, Z.shape[1], step)]
        return torch.cat(outs, dim=1)

    return matvec


def union_grid(spectra: Sequence[Spectrum]) -> torch.Tensor:
    """Sorted union of the spectra's own grids: a common grid that resolves each of them."""
    return torch.cat([s.grid.to(torch.float64) for s in spectra]).unique()


def js_zero(D: torch.Tensor) -> float:
    """``JS⁰``: the mean of the off-diagonal entries of a pairwise distance matrix."""
    B = D.shape[0]
    if D.ndim != 2 or D.shape[1] != B or B < 2:
        raise ValueError(f"D must be a square matrix with at least 2 rows, got {tuple(D.shape)}")
    return float(D.sum() - D.diagonal().sum()) / (B * (B - 1))


@dataclass(frozen=True, eq=False)
class BlockSpectra:
    """Blockwise SLQ spectra of one model and their pairwise JS distances.

    Attributes:
        names: block names.
        spectra: one :class:`~hesslib.spectrum.Spectrum` per block.
        js: ``(B, B)`` standard JS distances (base 2, in ``[0, 1]``).
        js0: mean off-diagonal JS distance.
        seconds: wall time of the Lanczos passes.
        num_matvecs: number of batched full-model HVPs (one per Lanczos step).
    """

    names: tuple[str, ...]
    spectra: tuple[Spectrum, ...]
    js: torch.Tensor
    js0: float
    seconds: float
    num_matvecs: int


def block_spectra(
    model: nn.Module,
    X: torch.Tensor,  # noqa: N803
    y: torch.Tensor,
    layout: BlockLayout,
    *,
    num_steps: int = 30,
    num_probes: int = 2,
    seed: int = 0,
    loss: str = "ce",
    sigma_rel: float = 0.02,
    num_grid: int = 512,
    chunk: int | None = None,
) -> BlockSpectra:
    """Spectra of all diagonal blocks ``H_bb`` of a model's loss Hessian by SLQ, together.

    Args:
        model: the network (its parameters' dtype is the HVP dtype).
        X, y: the data the loss averages over.
        layout: blocks of the flat parameter vector (``named_parameters`` order).
        num_steps: Lanczos steps (the paper used 100).
        num_probes: Rademacher probes per block (the paper used 10).
        seed: seed of the probes.
        loss: ``"ce"`` or ``"mse"``.
        sigma_rel: Gaussian blur relative to each block's spectral range.
        num_grid: grid points per block.
        chunk: HVP columns per vmapped call (memory bound).

    Returns:
        :class:`BlockSpectra`.
    """
    f, theta = flat_loss(model, X, y, loss)
    if layout.num_params != theta.numel():
        raise ValueError(f"layout covers {layout.num_params} parameters, the model has "
                         f"{theta.numel()}")
    calls = [0]
    inner = hvp_matvec(f, theta, chunk=chunk)

    def matvec(Z):
        calls[0] += 1
        return inner(Z)

    t0 = time.perf_counter()
    spectra = block_slq(matvec, layout, theta.numel(), num_steps=num_steps,
                        num_probes=num_probes, seed=seed, device=theta.device,
                        sigma_rel=sigma_rel, num_grid=num_grid)
    seconds = time.perf_counter() - t0
    D = pairwise_js(spectra, grid=union_grid(spectra))
    return BlockSpectra(tuple(layout.names), tuple(spectra), D, js_zero(D), seconds, calls[0])


class ScaledMLP(nn.Module):
    """ReLU MLP ``x ↦ c W_L relu(… relu(c W_1 x))``: every layer's output multiplied by ``c``.

    ``c`` is the "degree of heterogeneity" of Table 3 of "Why Transformers Need Adam".
    """

    def __init__(self, widths: Sequence[int], c: float):
        super().__init__()
        if len(widths) < 2:
            raise ValueError("widths must list the input, hidden and output sizes")
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"c must be a finite number > 0, got {c!r}")
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(w_out, w_in)) for w_in, w_out in zip(widths[:-1], widths[1:])
        )
        self.c = float(c)

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803
        h = X
        for i, W in enumerate(self.weights):
            h = self.c * (h @ W.T)
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return h


def scaled_mlp(
    c: float,
    *,
    widths: Sequence[int] = (64, 300, 128, 64, 10),
    init: str = "pytorch",
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> ScaledMLP:
    """A seeded :class:`ScaledMLP` (default widths: the paper's 300, 128, 64 hidden units).

    Args:
        c: the output scale of every layer.
        widths: layer widths, input first.
        init: ``"pytorch"`` (``nn.Linear``'s ``U(±1/√fan_in)``, as the paper's scripts) or
            ``"lecun"`` (``N(0, 1/fan_in)``).
        seed: seed of the initialisation (the same weights for every ``c``).
        device: device (default :func:`hesslib.default_device`).
        dtype: parameter dtype.
    """
    if init not in ("pytorch", "lecun"):
        raise ValueError(f"init must be 'pytorch' or 'lecun', got {init!r}")
    model = ScaledMLP(widths, c)
    gen = make_generator(seed)
    for W in model.weights:
        fan_in = W.shape[1]
        if init == "pytorch":
            val = (torch.rand(W.shape, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(fan_in)
        else:
            val = torch.randn(W.shape, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)
        with torch.no_grad():
            W.copy_(val)
    device = torch.device(device) if device is not None else default_device()
    return model.to(device=device, dtype=dtype)


def mlp_layout(model: ScaledMLP) -> BlockLayout:
    """One block per layer, ``layer1 … layerL``."""
    return BlockLayout.from_named_sizes(
        [(f"layer{i + 1}", W.numel()) for i, W in enumerate(model.weights)], group="layers")


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one training run.

    Attributes:
        optimizer: ``"sgd"`` or ``"adam"``.
        lr: learning rate.
        losses: full-training-set loss after every epoch, epoch 0 first (``inf`` if diverged).
        final_loss: the last entry of ``losses``.
        test_accuracy: accuracy on the held-out set at the end (0 if diverged).
    """

    optimizer: str
    lr: float
    losses: tuple[float, ...]
    final_loss: float
    test_accuracy: float


def train_classifier(
    model: nn.Module,
    train: Dataset,
    test: Dataset,
    *,
    optimizer: str,
    lr: float,
    epochs: int,
    batch_size: int = 128,
    seed: int = 0,
    loss: str = "ce",
) -> TrainResult:
    """Mini-batch SGD (momentum 0.9) or Adam (PyTorch defaults) on a copy of ``model``.

    The data order is seeded, so a run is deterministic for a seed. A run whose loss becomes
    non-finite stops and reports ``inf`` (and accuracy 0) — never NaN.
    """
    import copy

    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    net = copy.deepcopy(model)
    if optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    elif optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    lfn = loss_fn(loss)
    gen = make_generator(seed)

    def full_loss() -> float:
        with torch.no_grad():
            val = float(lfn(net(train.X), train.y))
        return val if math.isfinite(val) else math.inf

    losses = [full_loss()]
    for _ in range(epochs):
        perm = torch.randperm(train.N, generator=gen).to(train.X.device)
        for b0 in range(0, train.N, batch_size):
            idx = perm[b0 : b0 + batch_size]
            opt.zero_grad(set_to_none=True)
            value = lfn(net(train.X[idx]), train.y[idx])
            if not torch.isfinite(value):
                break
            value.backward()
            opt.step()
        losses.append(full_loss())
        if not math.isfinite(losses[-1]):
            break
    losses += [math.inf] * (epochs + 1 - len(losses))
    if math.isfinite(losses[-1]):
        with torch.no_grad():
            acc = float((net(test.X).argmax(1) == test.y).to(torch.float64).mean())
    else:
        acc = 0.0
    return TrainResult(optimizer, float(lr), tuple(losses), losses[-1], acc)
