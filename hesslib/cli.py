"""Command line: blockwise Hessian spectra on one or many processes, written to a file.

Launch with ``torchrun`` for several processes (GPUs or CPU cores, one or many nodes)::

    torchrun --standalone --nproc-per-node 2 -m hesslib.cli slq --model gpt --profile quick

or with plain ``python -m hesslib.cli slq …`` for one process. Every rank builds the same model
and data from the seed; the Lanczos recursion of every parameter block advances together, with
its Hessian-vector products shared out as ``--mode`` says (see :mod:`hesslib.distributed_ops`).
Rank 0 writes the nodes and weights of every block with the settings
(:func:`hesslib.save_block_spectra`); chapter 06 reads them back with
:func:`hesslib.load_block_spectra` instead of recomputing.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from . import cnn, transformer
from .blocks import BlockLayout
from .data import gaussian_data
from .device import device_name
from .distributed import MODES, init_distributed, rank_and_world_size, shutdown_distributed
from .distributed_ops import distributed_lanczos
from .models import one_hidden_net
from .profiles import resolve_profile
from .spectra_io import save_block_spectra

__all__ = ["MODEL_PROFILES", "build_problem", "main"]

#: Settings per model and profile. ``gpt``: the small GPT of chapter 06 (LayerNorm on) on the
#: Zen of Python by characters, ``N`` windows of ``context`` tokens (``None``: every window);
#: ``cnn``: the small CNN of chapter 06 (3×3 convolutions, no batch statistics, so the loss is
#: a mean over images and data shards add up exactly) on scikit-learn's digits (``N`` images,
#: ``None``: all 1797; upsampled ``upsample`` times);
#: ``one_hidden``: the book's one-hidden-layer net on Gaussian data (paper: the talk's setting).
#: ``steps``/``probes``: Lanczos steps and probes per block (paper: m = 100, n_v = 10, as in
#: "Why Transformers Need Adam", App. C.1); ``chunk_size``: columns per vectorised HVP
#: (``None``: all ``probes × blocks`` at once; the paper GPT needs chunks to fit a GPU).
MODEL_PROFILES = {
    "gpt": {
        "quick": dict(
            context=4,
            width=8,
            num_heads=2,
            mlp_width=16,
            num_layers=1,
            N=24,
            steps=6,
            probes=2,
            chunk_size=None,
        ),
        "default": dict(
            context=16,
            width=32,
            num_heads=4,
            mlp_width=128,
            num_layers=2,
            N=32,
            steps=20,
            probes=4,
            chunk_size=None,
        ),
        "paper": dict(
            context=64,
            width=128,
            num_heads=4,
            mlp_width=512,
            num_layers=4,
            N=None,
            steps=100,
            probes=10,
            chunk_size=8,
        ),
    },
    "cnn": {
        "quick": dict(channels=(4, 4, 4), upsample=1, N=64, steps=6, probes=2, chunk_size=None),
        "default": dict(
            channels=(16, 16, 16, 16), upsample=1, N=512, steps=20, probes=4, chunk_size=None
        ),
        "paper": dict(
            channels=(32, 32, 64, 64), upsample=2, N=None, steps=100, probes=10, chunk_size=8
        ),
    },
    "one_hidden": {
        "quick": dict(N=64, d=10, m=4, C=5, steps=6, probes=2, chunk_size=None),
        "default": dict(N=2000, d=100, m=8, C=100, steps=40, probes=10, chunk_size=None),
        "paper": dict(N=5000, d=500, m=8, C=500, steps=100, probes=10, chunk_size=None),
    },
}


def build_problem(model: str, cfg, *, partition: str, device, dtype: torch.dtype, seed: int):
    """``(net, X, y, loss, layout)`` of one CLI model at the settings ``cfg`` (same on all ranks).

    ``partition``: ``"module"`` — one block per parameter tensor (the "default PyTorch
    partition" of "Why Transformers Need Adam"); ``"fine"`` — attention heads (gpt), or
    neurons and classes (one_hidden); the CNN has one block per layer either way.
    """
    if model == "gpt":
        tokens, alphabet = transformer.char_tokens(transformer.zen_text())
        data = transformer.token_windows(
            tokens, cfg.context, num=cfg.N, vocab_size=len(alphabet), device=device
        )
        net = transformer.gpt(
            len(alphabet),
            context=cfg.context,
            width=cfg.width,
            num_heads=cfg.num_heads,
            mlp_width=cfg.mlp_width,
            num_layers=cfg.num_layers,
            layernorm=True,
            seed=seed + 1,
            device=device,
            dtype=dtype,
        )
        layout = transformer.gpt_layout(net, by="head" if partition == "fine" else "module")
        return net, data.X, data.y, "ce", layout
    if model == "cnn":
        data = cnn.digits_data(
            num=cfg.N, upsample=cfg.upsample, seed=seed, device=device, dtype=dtype
        )
        net = cnn.small_cnn(
            channels=tuple(cfg.channels),
            side=8 * cfg.upsample,
            seed=seed + 1,
            device=device,
            dtype=dtype,
        )
        return net, data.X, data.y, "ce", cnn.cnn_layout(net)
    if model == "one_hidden":
        data = gaussian_data(cfg.N, cfg.d, cfg.C, seed=seed, device=device, dtype=dtype)
        net = one_hidden_net(cfg.d, cfg.m, cfg.C, seed=seed + 1, device=device, dtype=dtype)
        layout = (
            net.layout()
            if partition == "fine"
            else BlockLayout.from_named_sizes([("W", cfg.m * cfg.d), ("V", cfg.C * cfg.m)])
        )
        return net, data.X, data.y, "ce", layout
    raise ValueError(f"model must be one of {sorted(MODEL_PROFILES)}, got {model!r}")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m hesslib.cli", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("slq", help="blockwise SLQ spectra of a chapter-06 model, to a .pt file")
    p.add_argument("--model", choices=sorted(MODEL_PROFILES), default="gpt")
    p.add_argument("--profile", choices=("quick", "default", "paper"), default="default")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="data",
        help="data: samples split, one all_reduce per step; probe: probes split",
    )
    p.add_argument("--partition", choices=("module", "fine"), default="module")
    p.add_argument("--steps", type=int, help="Lanczos steps (default: the profile's)")
    p.add_argument("--probes", type=int, help="probes per block (default: the profile's)")
    p.add_argument("--N", type=int, help="number of samples/windows (default: the profile's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="dtype of the model and HVPs (Lanczos itself runs in float64)",
    )
    p.add_argument("--chunk-size", type=int, help="columns per vectorised HVP (bounds memory)")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto")
    p.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds a collective may wait for the other ranks",
    )
    p.add_argument("--out", help="output file (default spectra_<model>_<profile>.pt)")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hesslib.cli`` (and of ``torchrun … -m hesslib.cli``)."""
    args = _parser().parse_args(argv)
    device = init_distributed(
        backend=None if args.backend == "auto" else args.backend, timeout=args.timeout
    )
    rank, size = rank_and_world_size()
    try:
        cfg = resolve_profile(
            args.profile,
            MODEL_PROFILES[args.model],
            verbose=rank == 0,
            N=args.N,
            steps=args.steps,
            probes=args.probes,
            chunk_size=args.chunk_size,
        )
        dtype = getattr(torch, args.dtype)
        net, X, y, loss, layout = build_problem(
            args.model, cfg, partition=args.partition, device=device, dtype=dtype, seed=args.seed
        )
        stats: dict = {}
        t0 = time.perf_counter()
        results = distributed_lanczos(
            net,
            X,
            y,
            loss,
            mode=args.mode,
            layout=layout,
            num_steps=cfg.steps,
            num_probes=cfg.probes,
            seed=args.seed + 2,
            chunk_size=cfg.chunk_size,
            progress=rank == 0,
            stats=stats,
        )
        seconds = time.perf_counter() - t0
        out = args.out or f"spectra_{args.model}_{args.profile}.pt"
        if rank == 0:
            settings = dict(
                vars(cfg),
                model=args.model,
                mode=args.mode,
                seed=args.seed,
                partition=args.partition,
                dtype=args.dtype,
                loss=loss,
                num_params=layout.num_params,
                world_size=size,
                backend=torch.distributed.get_backend() if size > 1 else "none",
                device=device_name(device),
                torch=torch.__version__,
                seconds=seconds,
                **{k: v for k, v in stats.items() if k not in ("mode", "world_size")},
            )
            save_block_spectra(out, layout.names, layout.sizes, results, settings)
            per_step = stats["bytes_reduced"] / max(stats["matvec_calls"], 1)
            print(
                f"wrote {out}: {layout.num_blocks} blocks, P = {layout.num_params}, "
                f"{cfg.probes} probes x {cfg.steps} steps on {size} process(es) "
                f"({args.mode} mode) in {seconds:.1f} s; all_reduce per step "
                f"{per_step / 2**20:.2f} MiB per rank"
            )
    finally:
        shutdown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
