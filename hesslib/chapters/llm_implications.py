r"""The heterogeneity dial of "Why Transformers Need Adam" (§2.4, App. C.3, Table 3).

A 4-layer ReLU MLP whose every layer output is multiplied by a constant ``c``
(:class:`ScaledMLP`): ``c`` dials in heterogeneity between the layer blocks of the Hessian
while the architecture stays the same. :func:`heterogeneity_dial` measures, at one ``c``, the
blockwise spectra at initialisation (:func:`hesslib.blockwise_spectra`, one block per layer)
and the best mini-batch SGD and Adam runs over the paper's learning rates
(:func:`train_classifier`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..core.blocks import BlockLayout
from ..core.checks import check_positive_int
from ..core.data import Dataset
from ..core.device import default_device, make_generator, single_thread
from ..core.losses import loss_fn
from ..spectral.blockwise import BlockwiseSpectra, blockwise_spectra

__all__ = [
    "PAPER_LRS",
    "block_entry_rms",
    "ClassifierRun",
    "DialPoint",
    "heterogeneity_dial",
    "mlp_layout",
    "null_diag_mass",
    "scaled_mlp",
    "ScaledMLP",
    "train_classifier",
]

#: The learning-rate grid of "Why Transformers Need Adam", App. C.3 (SGD and Adam alike).
PAPER_LRS = (1e-4, 1e-3, 1e-2, 1e-1)


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

    def forward(self, X: torch.Tensor) -> torch.Tensor:
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
            val = (torch.rand(W.shape, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(
                fan_in
            )
        else:
            val = torch.randn(W.shape, generator=gen, dtype=torch.float64) / math.sqrt(fan_in)
        with torch.no_grad():
            W.copy_(val)
    device = torch.device(device) if device is not None else default_device()
    return model.to(device=device, dtype=dtype)


def mlp_layout(model: ScaledMLP) -> BlockLayout:
    """One block per layer, ``layer1 … layerL``."""
    return BlockLayout.from_named_sizes(
        [(f"layer{i + 1}", W.numel()) for i, W in enumerate(model.weights)], group="layers"
    )


@dataclass(frozen=True)
class ClassifierRun:
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
) -> ClassifierRun:
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
    with single_thread():
        _epochs(net, opt, lfn, train, epochs, batch_size, gen, losses, full_loss)
    losses += [math.inf] * (epochs + 1 - len(losses))
    if math.isfinite(losses[-1]):
        with torch.no_grad():
            acc = float((net(test.X).argmax(1) == test.y).to(torch.float64).mean())
    else:
        acc = 0.0
    return ClassifierRun(optimizer, float(lr), tuple(losses), losses[-1], acc)


def _epochs(net, opt, lfn, train, epochs, batch_size, gen, losses, full_loss) -> None:
    """The training loop of :func:`train_classifier` (appends the loss after each epoch)."""
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
            return


@dataclass(frozen=True, eq=False)
class DialPoint:
    """One setting ``c`` of the heterogeneity dial.

    Attributes:
        c: the output scale of every layer.
        spectra: blockwise spectra (one block per layer) at initialisation.
        sgd: the best SGD run over the paper's learning rates.
        sgd_low: the best SGD run over the paper's learning rates and the smaller ones.
        adam: the best Adam run over the paper's learning rates.
    """

    c: float
    spectra: BlockwiseSpectra
    sgd: ClassifierRun
    sgd_low: ClassifierRun
    adam: ClassifierRun

    @property
    def top_eigenvalues(self) -> torch.Tensor:
        """Largest Gauss node of each block (its top-eigenvalue estimate), ``(B,)``."""
        return torch.tensor([float(s.nodes.max()) for s in self.spectra.spectra])


def heterogeneity_dial(
    c: float,
    train: Dataset,
    test: Dataset,
    *,
    widths: Sequence[int] = (64, 300, 128, 64, 10),
    epochs: int = 20,
    spectra_samples: int = 256,
    num_steps: int = 30,
    num_probes: int = 3,
    lrs: Sequence[float] = PAPER_LRS,
    low_lrs: Sequence[float] = (1e-7, 1e-6, 1e-5),
    batch_size: int = 128,
    seed: int = 0,
) -> DialPoint:
    """Spectra and SGD/Adam runs of the MLP with layer outputs scaled by ``c`` (§2.4, App. C.3).

    The spectra use the first ``spectra_samples`` training inputs in float64 (so that nothing
    underflows for large ``c``); training runs in the dtype of ``train.X``, from the same
    initial weights for every optimiser and learning rate.
    """
    device = train.X.device
    mlp = scaled_mlp(c, widths=widths, seed=seed, device=device)  # float64
    X, y = train.X[:spectra_samples].to(torch.float64), train.y[:spectra_samples]
    spec = blockwise_spectra(
        mlp, X, y, mlp_layout(mlp), num_steps=num_steps, num_probes=num_probes, seed=seed
    )
    net = mlp.to(train.X.dtype)

    def fit(opt, grid):
        return {
            lr: train_classifier(
                net,
                train,
                test,
                optimizer=opt,
                lr=lr,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
            )
            for lr in grid
        }

    sgd, adam = fit("sgd", list(low_lrs) + list(lrs)), fit("adam", lrs)

    def best(runs, grid):
        return min((runs[lr] for lr in grid), key=lambda r: (r.final_loss, r.lr))

    return DialPoint(
        float(c), spec, best(sgd, lrs), best(sgd, list(low_lrs) + list(lrs)), best(adam, lrs)
    )


def block_entry_rms(norms: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
    """RMS entry of every block, ``‖H_ij‖_F / √(d_i d_j)``: block norms made comparable
    across blocks of different sizes (embedding vs. one attention head)."""
    d = torch.tensor(layout.sizes, dtype=torch.float64, device=norms.device)
    return norms.to(torch.float64) / torch.sqrt(d[:, None] * d[None, :])


def null_diag_mass(layout: BlockLayout) -> float:
    """Diagonal mass of a matrix whose entries all have the same size: ``Σ d_i² / P²`` — the
    baseline against which a measured diagonal mass means "near block-diagonal"."""
    d = torch.tensor(layout.sizes, dtype=torch.float64)
    return float((d**2).sum() / d.sum() ** 2)
