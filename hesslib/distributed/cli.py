"""Command line: blockwise Hessian spectra on one or many processes, written to a file.

Launch with ``torchrun`` for several processes (GPUs or CPU cores, one or many nodes)::

    torchrun --standalone --nproc-per-node 2 -m hesslib.cli slq --model gpt --profile quick

or with plain ``python -m hesslib.cli slq …`` for one process. Every rank builds the same model
and data from the seed, with the settings of :data:`hesslib.nets.SPECTRA_MODELS` (the table
chapter 06 reads too). The Lanczos recursion of every parameter block advances together, with
its Hessian-vector products shared out as ``--mode`` says (see :mod:`hesslib.distributed.ops`).
Rank 0 writes the nodes and weights of every block with the settings
(:func:`hesslib.spectral.save_block_spectra`); chapter 06 reads them back with
:func:`hesslib.spectral.load_block_spectra` instead of recomputing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

from ..core.device import device_name
from ..nets.zoo import PARTITIONS, SPECTRA_MODELS, spectra_problem, spectra_settings
from ..spectral.files import save_block_spectra
from .comm import MODES, init_distributed, rank_and_world_size, shutdown_distributed
from .ops import distributed_lanczos

__all__ = [
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (one subcommand, ``slq``).

    Returns:
        An ``argparse.ArgumentParser``; ``parse_args`` gives the settings :func:`main` reads.
    """
    ap = argparse.ArgumentParser(prog="python -m hesslib.cli", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("slq", help="blockwise SLQ spectra of a chapter-06 model, to a .pt file")
    p.add_argument("--model", choices=sorted(SPECTRA_MODELS), default="gpt")
    p.add_argument("--profile", choices=("quick", "default", "paper"), default="default")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="data",
        help="data: samples split, one all_reduce per step; probe: probes split",
    )
    p.add_argument("--partition", choices=PARTITIONS, default="module")
    p.add_argument("--steps", type=_count, help="Lanczos steps (default: the profile's)")
    p.add_argument("--probes", type=_count, help="probes per block (default: the profile's)")
    p.add_argument("--N", type=_count, help="number of samples/windows (default: the profile's)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="dtype of the model and HVPs (Lanczos itself runs in float64)",
    )
    p.add_argument("--chunk-size", type=_count, help="columns per vectorised HVP (bounds memory)")
    p.add_argument("--backend", choices=("auto", "gloo", "nccl"), default="auto")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=1800.0,
        help="seconds a collective may wait for the other ranks",
    )
    p.add_argument(
        "--rendezvous-timeout",
        type=_seconds,
        default=60.0,
        help="seconds every rank waits for the others to start",
    )
    p.add_argument("--out", help="output file (default spectra_<model>_<profile>.pt)")
    return ap


def _int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"int >= {minimum}"
    return parse


_count, _seed = _int_at_least(1), _int_at_least(0)


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def _output_path(args) -> Path:
    """``--out`` (or its default), checked before any work: its folder exists and is
    writable, and it is not itself a folder.

    Raises:
        ValueError: naming ``--out`` and what is wrong.
    """
    out = Path(args.out or f"spectra_{args.model}_{args.profile}.pt")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"argument --out: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"argument --out: the directory {folder} is not writable")
    if out.is_dir():
        raise ValueError(f"argument --out: {out} is a directory, not a file name")
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"argument --out: {out} exists and is not writable")
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m hesslib.cli`` (and of ``torchrun … -m hesslib.cli``).

    Args:
        argv: the arguments after the program name (default ``sys.argv[1:]``).

    Returns:
        The exit status, 0.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.out = str(_output_path(args))
    except ValueError as err:
        parser.error(str(err))  # exits with status 2, before any computation
    device = init_distributed(
        backend=None if args.backend == "auto" else args.backend,
        timeout=args.timeout,
        rendezvous_timeout=args.rendezvous_timeout,
    )
    rank = rank_and_world_size()[0]
    try:
        cfg = spectra_settings(
            args.model,
            args.profile,
            verbose=rank == 0,
            N=args.N,
            steps=args.steps,
            probes=args.probes,
            chunk_size=args.chunk_size,
        )
        dtype = getattr(torch, args.dtype)
        problem = spectra_problem(
            cfg, partition=args.partition, seed=args.seed, device=device, dtype=dtype
        )
        stats: dict = {}
        t0 = time.perf_counter()
        results = distributed_lanczos(
            problem.net,
            problem.data.X,
            problem.data.y,
            problem.loss,
            mode=args.mode,
            layout=problem.layout,
            num_steps=cfg.steps,
            num_probes=cfg.probes,
            seed=args.seed,
            chunk_size=cfg.chunk_size,
            progress=rank == 0,
            stats=stats,
        )
        seconds = time.perf_counter() - t0
        if rank == 0:
            _write(args, cfg, problem, results, stats=stats, seconds=seconds, device=device)
    finally:
        shutdown_distributed()
    return 0


def _write(args, cfg, problem, results, *, stats: dict, seconds: float, device) -> None:
    """Save the spectra with the run's settings (rank 0) and print a summary line.

    Args:
        args: the parsed command line.
        cfg: the model's settings (:func:`~hesslib.nets.spectra_settings`).
        problem: the model and data (:func:`~hesslib.nets.spectra_problem`).
        results: one :class:`~hesslib.spectral.LanczosResult` per block of ``problem.layout``.
        stats: the statistics :func:`~hesslib.distributed.distributed_lanczos` filled in.
        seconds: wall time of the recursion.
        device: this rank's device.
    """
    layout, size = problem.layout, rank_and_world_size()[1]
    out = args.out
    settings = dict(
        vars(cfg),  # the model's name and settings
        mode=args.mode,
        seed=args.seed,
        partition=args.partition,
        dtype=args.dtype,
        loss=problem.loss,
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


if __name__ == "__main__":
    sys.exit(main())
