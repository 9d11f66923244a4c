r"""Chapter 06 — "Why Transformers Need Adam": the experiment drivers.

* SGD against Adam on the chapter's GPT and CNN (the models of :mod:`hesslib.nets.zoo`):
  :func:`gpt_task`, :func:`cnn_task` and :func:`adam_speedup`, on the engine of
  :mod:`hesslib.train.sgd_vs_adam`;
* the grouping of the tiny transformer's Hessian into the boxes of the paper's Fig. 2
  (:func:`pairing_masses`);
* the heterogeneity dial (§2.4, App. C.3, Table 3): a 4-layer MLP whose every layer output is
  multiplied by ``c`` (:class:`ScaledMLP`, :func:`heterogeneity_dial`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

from ..core.blocks import BlockLayout
from ..core.data import Dataset
from ..core.device import default_device, make_generator
from ..nets import cnn, transformer, zoo
from ..spectral.blockwise import BlockwiseSpectra, blockwise_spectra
from ..train.sgd_vs_adam import (
    GridSearch,
    SeedSpread,
    lr_grid_search,
    seed_spread,
    steps_to_reach,
    verdict,
)

__all__ = [
    "PAPER_LRS",
    "PAPER_PAIRING",
    "Comparison",
    "DialPoint",
    "ScaledMLP",
    "TrainingTask",
    "adam_speedup",
    "block_entry_rms",
    "cnn_task",
    "gpt_task",
    "compare",
    "heterogeneity_dial",
    "lm_head_inputs",
    "mlp_layout",
    "null_diag_mass",
    "pairing_masses",
    "reference_text",
    "scaled_mlp",
]

#: The learning-rate grid of "Why Transformers Need Adam", App. C.3 (SGD and Adam alike).
PAPER_LRS = (1e-4, 1e-3, 1e-2, 1e-1)
#: The boxes of the paper's Fig. 2: Query with Key, Value with the output projection, the MLP.
PAPER_PAIRING = (("Q", "K"), ("V", "O"), ("fc_in", "fc_out"))


# ------------------------------------------------------------------ SGD against Adam, real models
def reference_text() -> str:
    """The topic texts of Python's language reference, as shipped with CPython
    (``pydoc_data.topics``, about 465 000 characters for Python 3.11), sorted by topic."""
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics))


@dataclass(frozen=True, eq=False)
class TrainingTask:
    """A network builder and its data for :func:`hesslib.train.lr_grid_search`.

    Attributes:
        name: description.
        make_model: ``seed -> model`` (the zoo model of that seed).
        train: training data; evaluate: data of the loss curves; test: accuracy data.
        clip: gradient-norm clipping for both optimisers (``None``: none).
    """

    name: str
    make_model: Callable[[int], nn.Module]
    train: Dataset
    evaluate: Dataset
    test: Dataset | None
    clip: float | None


def gpt_task(cfg: SimpleNamespace, *, eval_windows: int = 1024, device=None) -> TrainingTask:
    """The zoo's GPT (``cfg`` from :func:`hesslib.nets.spectra_settings`) on :func:`reference_text`.

    Characters are tokenised with the zoo's vocabulary *size* (its most frequent characters and
    one token for the rest), so the network is the zoo's network, initial weights included. The
    first 90 % of the text is the training set (every window of the context length); the loss
    curves are measured on ``eval_windows`` windows spread over it; gradients are clipped to
    norm 1 for both optimisers, as in nanoGPT and the paper's language tasks.
    """
    vocab = len(transformer.char_tokens(transformer.zen_text())[1])
    tokens, _ = transformer.char_tokens(reference_text(), vocab_size=vocab)
    cut = int(0.9 * tokens.numel())
    train = transformer.token_windows(
        tokens[:cut], cfg.context, vocab_size=vocab, device=device, name="Python reference"
    )
    ev = transformer.token_windows(
        tokens[:cut], cfg.context, num=eval_windows, vocab_size=vocab, device=device
    )
    make = lambda seed: zoo.spectra_problem(cfg, seed=seed, device=device).net  # noqa: E731
    return TrainingTask("GPT on the Python reference", make, train, ev, None, 1.0)


def cnn_task(cfg: SimpleNamespace, *, train_size: int = 1500, seed: int = 0, device=None):
    """The zoo's CNN on scikit-learn's digits: ``train_size`` images to train on (the loss
    curves are on all of them), the rest held out for the accuracy; no clipping."""
    data = cnn.digits_data(upsample=cfg.upsample, device=device, dtype=torch.float32)
    perm = torch.randperm(data.N, generator=make_generator(seed)).to(data.X.device)
    tr, te = perm[:train_size], perm[train_size:]
    train = Dataset(data.X[tr], data.y[tr], 10, "digits train")
    test = Dataset(data.X[te], data.y[te], 10, "digits test")
    make = lambda s: zoo.spectra_problem(cfg, seed=s, device=device).net  # noqa: E731
    return TrainingTask("CNN on digits", make, train, train, test, None)


def adam_speedup(grid: GridSearch) -> list[float]:
    """Per seed: how many times fewer steps Adam needs than SGD to reach the loss that the
    worse of the two ends at (``T / t_Adam`` if Adam ends lower, ``t_SGD / T`` if SGD does;
    ``t`` at checkpoint resolution, at least the first checkpoint)."""
    out = []
    for a, s in zip(grid.best("adam"), grid.best("sgd"), strict=True):
        T, first = a.steps[-1], a.steps[min(1, len(a.steps) - 1)]
        if a.final <= s.final:
            out.append(T / max(steps_to_reach(a, s.final), first))
        else:
            out.append(max(steps_to_reach(s, a.final), first) / T)
    return out


@dataclass(frozen=True)
class Comparison:
    """SGD against Adam on one model, at their tuned learning rates, over the seeds.

    Attributes:
        lr: ``optimizer -> chosen learning rate``.
        final: ``optimizer -> final losses`` (:class:`~hesslib.train.SeedSpread`).
        ratio: SGD's final loss over Adam's, seed by seed.
        speedup: :func:`adam_speedup`, seed by seed.
        verdict: :func:`hesslib.train.verdict` of the final losses.
        interior: both chosen learning rates lie inside their grids (not at an end).
    """

    lr: dict
    final: dict
    ratio: SeedSpread
    speedup: SeedSpread
    verdict: str
    interior: bool


def compare(grid: GridSearch) -> Comparison:
    """Summarise an SGD/Adam :class:`~hesslib.train.GridSearch` (see :class:`Comparison`)."""
    opts = ("sgd", "adam")
    lr = {o: grid.best_lr(o) for o in opts}
    final = {o: seed_spread(grid.finals(o)) for o in opts}
    ratio = seed_spread(
        [s / a for s, a in zip(final["sgd"].values, final["adam"].values, strict=True)]
    )
    interior = all(grid.grid(o)[0] < lr[o] < grid.grid(o)[-1] for o in opts)
    call = verdict(final["sgd"].values, final["adam"].values, names=("SGD", "Adam"))
    return Comparison(lr, final, ratio, seed_spread(adam_speedup(grid)), call, interior)


def lm_head_inputs(net: transformer.GPT, X: torch.Tensor) -> torch.Tensor:
    """The features the LM head of a :class:`~hesslib.nets.GPT` sees, ``(N·T, D)``: the model's
    forward pass up to, not including, the head (``logits = features @ lm_headᵀ``)."""
    with torch.no_grad():
        x = net.wte[X] + net.wpe[: X.shape[1]]  # (N, T, D)
        for block in net.layers:
            x = block(x)
        if net.config["layernorm"]:
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
    return x.reshape(-1, x.shape[-1])


# ------------------------------------------------------------------ the boxes of Fig. 2
def pairing_masses(norms: torch.Tensor, layout: BlockLayout) -> dict[tuple, float]:
    """Fraction of the attention and MLP part of ``‖H‖_F²`` inside the diagonal boxes of every
    pairing of a layer's six matrices ``Q, K, V, O, fc_in, fc_out`` into three pairs.

    The same pairing is used in every layer; the embeddings and the LM head are left out, as
    in the paper's Fig. 2. All 15 pairings have boxes of the same sizes, so their masses
    compare directly.

    Args:
        norms: ``(B, B)`` Frobenius norms of the module blocks (:func:`hesslib.block_norms`).
        layout: the module layout of :func:`hesslib.nets.gpt_layout`.

    Returns:
        ``pairing -> mass``, largest first; a pairing is three ``(a, b)`` pairs.
    """
    kinds = ("Q", "K", "V", "O", "fc_in", "fc_out")
    layers = [g for g, _, _ in layout.groups if g.startswith("L")]
    idx = {(g, k): layout.names.index(f"{g}.{k}") for g in layers for k in kinds}
    inside = sorted(idx.values())
    sq = norms.to(torch.float64) ** 2
    total = float(sq[inside][:, inside].sum())
    out = {}
    for pairing in _pairings(kinds):
        mass = sum(
            float(
                sq[idx[g, a], idx[g, a]] + sq[idx[g, b], idx[g, b]] + 2 * sq[idx[g, a], idx[g, b]]
            )
            for g in layers
            for a, b in pairing
        )
        out[pairing] = mass / total
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _pairings(items: Sequence[str]):
    """Every split of an even number of items into unordered pairs (15 for six items)."""
    if not items:
        yield ()
        return
    first, rest = items[0], items[1:]
    for j in range(len(rest)):
        for tail in _pairings(rest[:j] + rest[j + 1 :]):
            yield ((first, rest[j]), *tail)


# ------------------------------------------------------------------ the heterogeneity dial
class ScaledMLP(nn.Module):
    """ReLU MLP ``h_l = c (W_l h_{l−1} + b_l)``, ReLU between layers: every layer's output is
    multiplied by ``c``, the "degree of heterogeneity" of Table 3 of the paper."""

    def __init__(self, widths: Sequence[int], c: float, *, bias: bool = True):
        super().__init__()
        if len(widths) < 2:
            raise ValueError("widths must list the input, hidden and output sizes")
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"c must be a finite number > 0, got {c!r}")
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(widths, widths[1:]))
        self.c = float(c)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        h = X
        for i, layer in enumerate(self.layers):
            h = self.c * layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h


def scaled_mlp(
    c: float,
    *,
    widths: Sequence[int] = (64, 300, 128, 64, 10),
    bias: bool = True,
    init: str = "pytorch",
    seed: int = 0,
    device=None,
    dtype: torch.dtype = torch.float64,
) -> ScaledMLP:
    """A seeded :class:`ScaledMLP` (default: the paper's hidden widths 300, 128, 64).

    ``init="pytorch"``: ``nn.Linear``'s default, weights and biases ``U(±1/√fan_in)``
    (the paper does not state its initialisation); ``"lecun"``: weights ``N(0, 1/fan_in)``,
    biases 0. The same ``seed`` gives the same weights for every ``c``.
    """
    if init not in ("pytorch", "lecun"):
        raise ValueError(f"init must be 'pytorch' or 'lecun', got {init!r}")
    model = ScaledMLP(widths, c, bias=bias)
    gen = make_generator(seed)
    for layer in model.layers:
        bound = 1 / math.sqrt(layer.in_features)
        shape = layer.weight.shape
        with torch.no_grad():
            if init == "pytorch":
                layer.weight.copy_(
                    (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
                )
            else:
                layer.weight.copy_(torch.randn(shape, generator=gen, dtype=torch.float64) * bound)
            if layer.bias is not None:
                u = torch.rand(layer.bias.shape, generator=gen, dtype=torch.float64) * 2 - 1
                layer.bias.copy_(u * bound if init == "pytorch" else 0 * u)
    device = torch.device(device) if device is not None else default_device()
    return model.to(device=device, dtype=dtype)


def mlp_layout(model: ScaledMLP) -> BlockLayout:
    """One block per layer (its weight and bias together), ``layer1 … layerL``."""
    sizes = [sum(p.numel() for p in layer.parameters()) for layer in model.layers]
    return BlockLayout.from_named_sizes(
        [(f"layer{i + 1}", s) for i, s in enumerate(sizes)], group="layers"
    )


@dataclass(frozen=True, eq=False)
class DialPoint:
    """One setting ``c`` of the dial: blockwise spectra at initialisation and the runs."""

    c: float
    spectra: BlockwiseSpectra
    grid: GridSearch

    @property
    def top_eigenvalues(self) -> torch.Tensor:
        """Largest Gauss node of each block (its top-eigenvalue estimate), ``(B,)``."""
        return torch.tensor([float(s.nodes.max()) for s in self.spectra.spectra])

    def accuracy(self, optimizer: str) -> SeedSpread:
        """Test accuracies at ``optimizer``'s chosen learning rate, over the seeds."""
        return seed_spread(self.grid.accuracies(optimizer))

    @property
    def verdict(self) -> str:
        """SGD against Adam on the test accuracy, called only beyond the seed spread."""
        acc = (self.grid.accuracies("sgd"), self.grid.accuracies("adam"))
        return verdict(*acc, names=("SGD", "Adam"), higher_is_better=True)


def heterogeneity_dial(
    c: float,
    train: Dataset,
    test: Dataset,
    *,
    widths: Sequence[int] = (64, 300, 128, 64, 10),
    bias: bool = True,
    steps: int = 469,
    batch_size: int = 128,
    grids: dict | None = None,
    seeds: Sequence[int] = (0,),
    tune_seeds: int | None = None,
    spectra_samples: int = 256,
    num_steps: int = 30,
    num_probes: int = 3,
    seed: int = 0,
) -> DialPoint:
    """Spectra and tuned SGD/Adam runs of the MLP with layer outputs scaled by ``c``.

    The spectra use the float64 model of ``seed`` on the first ``spectra_samples`` training
    inputs (nothing underflows for large ``c``); training runs in ``train.X``'s dtype for
    ``steps`` mini-batch steps (default: one epoch of MNIST at batch size 128, the paper's
    budget), each optimiser at the learning rate with the best median test accuracy (the
    paper's metric) over ``grids`` (default :data:`PAPER_LRS` for both).
    """
    device = train.X.device
    mlp = scaled_mlp(c, widths=widths, bias=bias, seed=seed, device=device)
    X, y = train.X[:spectra_samples].to(torch.float64), train.y[:spectra_samples]
    spec = blockwise_spectra(
        mlp, X, y, mlp_layout(mlp), num_steps=num_steps, num_probes=num_probes, seed=seed
    )
    make = lambda s: scaled_mlp(  # noqa: E731
        c, widths=widths, bias=bias, seed=s, device=device, dtype=train.X.dtype
    )
    grid = lr_grid_search(
        make,
        train,
        train,
        test=test,
        grids=grids or {"sgd": PAPER_LRS, "adam": PAPER_LRS},
        seeds=seeds,
        tune_seeds=tune_seeds,
        select="accuracy",
        steps=steps,
        batch_size=batch_size,
    )
    return DialPoint(float(c), spec, grid)


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
