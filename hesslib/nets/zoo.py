"""The models whose blockwise spectra chapter 06 and ``python -m hesslib.cli slq`` compute.

One table, :data:`SPECTRA_MODELS`, holds their settings at each profile, and one function,
:func:`spectra_problem`, builds a model with its data and block layout from those settings.
Chapter 06 and the command line both read them, so a spectra file written by ``torchrun … -m
hesslib.cli slq --model gpt --profile paper`` is of exactly the model (architecture,
initialisation, seed, data) that the chapter would otherwise compute itself.

``gpt``: the small GPT of chapter 06 (LayerNorm on, GPT-2 initialisation) on the Zen of Python
by characters, ``N`` windows of ``context`` tokens spread over the text (``None``: every
window). ``cnn``: the small CNN of chapter 06 (3×3 convolutions, no batch statistics, so the
loss is a mean over images and data shards add up exactly) on scikit-learn's digits (``N``
images, ``None``: all 1797; upsampled ``upsample`` times). ``one_hidden``: the book's
one-hidden-layer net on Gaussian data (paper: the talk's setting).

``steps``/``probes``: Lanczos steps and Rademacher probes per block (paper: m = 100, n_v = 10,
as in "Why Transformers Need Adam", App. C.1); ``chunk_size``: columns per vectorised HVP
(``None``: all ``probes × blocks`` at once; the paper GPT needs chunks to fit a GPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

from ..core.blocks import BlockLayout
from ..core.checks import check_positive_int, check_type
from ..core.data import Dataset, gaussian_data
from ..core.models import one_hidden_net
from ..core.profiles import resolve_profile
from . import cnn, transformer

__all__ = [
    "SPECTRA_MODELS",
    "spectra_file_settings",
    "spectra_problem",
    "spectra_settings",
    "SpectraProblem",
]

# fmt: off
#: Settings per model and profile (see the module docstring).
SPECTRA_MODELS = {
    "gpt": {
        "quick": dict(context=8, width=16, num_heads=2, mlp_width=32, num_layers=2, N=8,
                      steps=8, probes=1, chunk_size=None),
        "default": dict(context=16, width=64, num_heads=4, mlp_width=128, num_layers=2, N=32,
                        steps=30, probes=3, chunk_size=None),
        "paper": dict(context=64, width=128, num_heads=4, mlp_width=512, num_layers=4, N=256,
                      steps=100, probes=10, chunk_size=32),
    },
    "cnn": {
        "quick": dict(channels=(4, 4, 4, 4), upsample=1, N=64,
                      steps=8, probes=1, chunk_size=None),
        "default": dict(channels=(8, 8, 8, 8, 8, 8), upsample=1, N=256,
                        steps=30, probes=3, chunk_size=None),
        "paper": dict(channels=(16, 16, 32, 32, 64, 64), upsample=2, N=None,
                      steps=100, probes=10, chunk_size=32),
    },
    "one_hidden": {
        "quick": dict(N=64, d=10, m=4, C=5, steps=6, probes=2, chunk_size=None),
        "default": dict(N=2000, d=100, m=8, C=100, steps=40, probes=10, chunk_size=None),
        "paper": dict(N=5000, d=500, m=8, C=500, steps=100, probes=10, chunk_size=None),
    },
}
# fmt: on

PARTITIONS = ("module", "fine")


@dataclass(frozen=True, eq=False)
class SpectraProblem:
    """A model, the data its loss averages over, the loss name and its block layout."""

    net: nn.Module
    data: Dataset
    loss: str
    layout: BlockLayout


def spectra_settings(
    model: str, profile: str, *, verbose: bool = False, **overrides
) -> SimpleNamespace:
    """Settings of ``model`` at ``profile`` (``None`` overrides keep the table's value).

    Raises:
        ValueError: unknown model, profile or setting (the message lists the valid ones).
    """
    if model not in SPECTRA_MODELS:
        raise ValueError(f"model must be one of {sorted(SPECTRA_MODELS)}, got {model!r}")
    cfg = resolve_profile(profile, SPECTRA_MODELS[model], verbose=verbose, **overrides)
    cfg.model = model
    return cfg


def _check_partition(partition: object) -> None:
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {PARTITIONS}, got {partition!r}")


def spectra_problem(
    cfg: SimpleNamespace,
    *,
    partition: str = "module",
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> SpectraProblem:
    """Build the model, data and layout of :func:`spectra_settings`'s ``cfg``.

    The same ``cfg`` and ``seed`` give the same parameters and data on every process.

    Args:
        cfg: settings from :func:`spectra_settings` (its ``model`` attribute picks the builder).
        partition: ``"module"`` — one block per parameter tensor (the "default PyTorch
            partition" of "Why Transformers Need Adam"); ``"fine"`` — attention heads (gpt) or
            neurons and classes (one_hidden); the CNN has one block per layer either way.
        seed: seed of the parameters and of the data subset.
        device, dtype: where and in which precision the model and data live.
    """
    _check_partition(partition)
    model = getattr(cfg, "model", None)
    if model == "gpt":
        tokens, alphabet = transformer.char_tokens(transformer.zen_text())
        data = transformer.token_windows(
            tokens,
            cfg.context,
            num=cfg.N,
            vocab_size=len(alphabet),
            device=device,
            name="Zen of Python",
        )
        net = transformer.gpt(
            len(alphabet),
            context=cfg.context,
            width=cfg.width,
            num_heads=cfg.num_heads,
            mlp_width=cfg.mlp_width,
            num_layers=cfg.num_layers,
            layernorm=True,
            init="gpt2",
            seed=seed,
            device=device,
            dtype=dtype,
        )
        layout = transformer.gpt_layout(net, by="head" if partition == "fine" else "module")
        return SpectraProblem(net, data, "ce", layout)
    if model == "cnn":
        data = cnn.digits_data(
            num=cfg.N, upsample=cfg.upsample, seed=seed, device=device, dtype=dtype
        )
        net = cnn.small_cnn(
            channels=tuple(cfg.channels),
            side=8 * cfg.upsample,
            seed=seed,
            device=device,
            dtype=dtype,
        )
        return SpectraProblem(net, data, "ce", cnn.cnn_layout(net))
    if model == "one_hidden":
        data = gaussian_data(cfg.N, cfg.d, cfg.C, seed=seed, device=device, dtype=dtype)
        net = one_hidden_net(cfg.d, cfg.m, cfg.C, seed=seed + 1, device=device, dtype=dtype)
        layout = (
            net.layout()
            if partition == "fine"
            else BlockLayout.from_named_sizes([("W", cfg.m * cfg.d), ("V", cfg.C * cfg.m)])
        )
        return SpectraProblem(net, data, "ce", layout)
    raise ValueError(
        f"cfg.model must be one of {sorted(SPECTRA_MODELS)} (use hl.spectra_settings), "
        f"got {model!r}"
    )


def spectra_file_settings(cfg: SimpleNamespace, *, seed: int, partition: str = "module") -> dict:
    """The settings a spectra file of ``cfg``'s model must have been made with.

    For the ``expect`` argument of :func:`hesslib.spectral.blockwise_spectra_from_file`: the
    model and its sizes, the number of samples, the Lanczos steps and probes, the seed and the
    partition. The profile's name and the chunk size (how many HVP columns went together) do
    not change the spectra and are left out, as are precision and number of processes.
    """
    check_type("cfg", cfg, SimpleNamespace, "settings from spectra_settings (a SimpleNamespace)")
    check_positive_int("seed", seed, minimum=0)
    _check_partition(partition)
    settings = {k: v for k, v in vars(cfg).items() if k not in ("profile", "chunk_size")}
    return dict(settings, seed=seed, partition=partition)
