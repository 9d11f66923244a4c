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
from .optim import single_thread
from .spectrum import Spectrum, block_slq, pairwise_js

__all__ = [
    "BlockwiseSpectra",
    "hvp_matvec",
    "blockwise_spectra",
    "union_grid",
    "js_zero",
    "ScaledMLP",
    "scaled_mlp",
    "mlp_layout",
    "train_classifier",
    "ClassifierRun",
    "block_entry_rms",
    "null_diag_mass",
    "plot_block_spectra",
    "plot_js",
    "blockwise_spectra_from_file",
    "DialPoint",
    "heterogeneity_dial",
    "PAPER_LRS",
]

#: The learning-rate grid of "Why Transformers Need Adam", App. C.3 (SGD and Adam alike).
PAPER_LRS = (1e-4, 1e-3, 1e-2, 1e-1)


def hvp_matvec(f, theta: torch.Tensor, *, chunk: int | None = None):
    """A ``matvec`` for :mod:`hesslib.lanczos`: ``(P, K) ↦ H (P, K)`` by vmapped HVPs.

    Columns are cast to ``theta``'s dtype (e.g. float32 for speed) and the result back to
    float64; ``chunk`` columns at a time bound the memory (default: all at once).
    """

    def matvec(Z: torch.Tensor) -> torch.Tensor:
        step = Z.shape[1] if chunk is None else chunk
        outs = [
            hvp(f, theta, Z[:, c0 : c0 + step].to(theta.dtype)).to(Z.dtype)
            for c0 in range(0, Z.shape[1], step)
        ]
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
class BlockwiseSpectra:
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


def blockwise_spectra(
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
) -> BlockwiseSpectra:
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
        :class:`BlockwiseSpectra`.
    """
    f, theta = flat_loss(model, X, y, loss)
    if layout.num_params != theta.numel():
        raise ValueError(
            f"layout covers {layout.num_params} parameters, the model has {theta.numel()}"
        )
    calls = [0]
    inner = hvp_matvec(f, theta, chunk=chunk)

    def matvec(Z):
        calls[0] += 1
        return inner(Z)

    t0 = time.perf_counter()
    spectra = block_slq(
        matvec,
        layout,
        theta.numel(),
        num_steps=num_steps,
        num_probes=num_probes,
        seed=seed,
        device=theta.device,
        sigma_rel=sigma_rel,
        num_grid=num_grid,
    )
    seconds = time.perf_counter() - t0
    D = pairwise_js(spectra, grid=union_grid(spectra))
    return BlockwiseSpectra(tuple(layout.names), tuple(spectra), D, js_zero(D), seconds, calls[0])


def blockwise_spectra_from_file(
    path,
    *,
    expect: dict | None = None,
    names: Sequence[str] | None = None,
    sigma_rel: float = 0.02,
    num_grid: int = 512,
) -> BlockwiseSpectra:
    """:class:`BlockwiseSpectra` from a file of ``python -m hesslib.cli slq`` (for example a
    ``paper``-profile run on GPUs), read with :func:`hesslib.load_block_spectra`.

    Args:
        path: the ``.pt`` file.
        expect: settings the file must have been made with (e.g. the model's entries of
            :data:`hesslib.SPECTRA_MODELS` and the seed); a mismatch raises ``ValueError``.
        names: the block names the file must hold, in order (e.g. the model's layout).
        sigma_rel, num_grid: as :func:`hesslib.slq_density`.
    """
    from .spectra_io import load_block_spectra

    saved = load_block_spectra(path)
    if expect:
        saved.check_settings(expect)
    if names is not None and tuple(names) != tuple(saved.names):
        raise ValueError(
            f"the spectra file holds blocks {list(saved.names)}, expected {list(names)}"
        )
    spectra = saved.spectra(num_grid=num_grid, sigma_rel=sigma_rel)
    D = pairwise_js(spectra, grid=union_grid(spectra))
    seconds = saved.settings.get("seconds")
    steps = saved.settings.get("steps")
    return BlockwiseSpectra(
        tuple(saved.names),
        tuple(spectra),
        D,
        js_zero(D),
        float(seconds) if seconds is not None else math.nan,
        int(steps) if steps is not None else 0,
    )


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


def plot_block_spectra(
    result: BlockwiseSpectra, *, ax=None, select=None, floor: float = 1e-6, title: str | None = None
):
    """Blockwise densities overlaid: log density against a symmetric-log eigenvalue axis.

    Args:
        result: the spectra.
        ax: axes.
        select: names of the blocks to draw (default all).
        floor: densities are drawn down to ``floor × max`` of each curve.
        title: axes title.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    names = result.names if select is None else tuple(select)
    scale = max(max(abs(float(s.grid[0])), abs(float(s.grid[-1]))) for s in result.spectra)
    for name in names:
        s = result.spectra[result.names.index(name)]
        dens = s.density.clamp(min=float(s.density.max()) * floor)
        ax.plot(s.grid.numpy(), dens.numpy(), lw=1.1, label=name)
    linthresh = scale * 1e-3
    ax.set_xscale("symlog", linthresh=linthresh)
    decades = [
        10.0**k
        for k in range(math.ceil(math.log10(linthresh)) + 1, math.floor(math.log10(scale)) + 1)
    ]
    ax.set_xticks([-d for d in reversed(decades)] + [0.0] + decades)
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue (symmetric log scale)")
    ax.set_ylabel("density")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_js(result: BlockwiseSpectra, *, ax=None, title: str | None = None):
    """Heatmap of the pairwise JS distances (fixed colour scale ``[0, 1]``)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(4.5, 4))[1]
    im = ax.imshow(result.js.numpy(), vmin=0, vmax=1, cmap="magma")
    ticks = range(len(result.names))
    ax.set_xticks(ticks, result.names, rotation=90, fontsize=7)
    ax.set_yticks(ticks, result.names, fontsize=7)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="JS distance")
    ax.set_title(title or f"JS⁰ = {result.js0:.3f}", fontsize=9)
    return ax


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
