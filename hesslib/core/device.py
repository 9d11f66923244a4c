"""Devices, dtypes and seeding.

Every chapter calls :func:`default_device` instead of hard-coding ``.cuda()``, so the same
notebook runs on a laptop CPU and on a GPU.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager

import numpy as np
import torch

__all__ = [
    "default_device",
    "default_dtype",
    "device_name",
    "make_generator",
    "portable_randn",
    "seed_everything",
    "single_thread",
]


def default_device() -> torch.device:
    """Return the accelerator when one is present, the CPU otherwise.

    The environment variable ``HESSLIB_DEVICE`` (e.g. ``cpu`` or ``cuda:1``) overrides the choice.

    Returns:
        ``torch.device("cuda")`` if CUDA is available, else ``torch.device("cpu")``.
    """
    forced = os.environ.get("HESSLIB_DEVICE")
    if forced:
        return torch.device(forced)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def default_dtype() -> torch.dtype:
    """Float64: exact Hessians are compared with autograd to ~1e-12, which needs doubles."""
    return torch.float64


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) with ``seed``.

    Args:
        seed: a non-negative integer.

    Raises:
        TypeError: if ``seed`` is not an integer.
        ValueError: if ``seed`` is negative.
    """
    _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (explicit randomness)."""
    _check_seed(seed)
    gen = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    gen.manual_seed(seed)
    return gen


def device_name(device: torch.device | str | None = None) -> str:
    """Human-readable name of ``device``: the GPU model or the CPU model."""
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    import platform

    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")


@contextmanager
def single_thread(device: torch.device | str | None = None):
    """Run the block with one intra-op CPU thread, then restore the previous setting.

    For loops over small tensors (quadratics, small training runs, matrices up to ~1000 wide)
    a second thread gains little on an idle machine and costs up to 10× on a busy shared one.
    ``device``: when given and not the CPU, nothing changes.
    """
    if device is not None and torch.device(device).type != "cpu":
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def portable_randn(
    *shape: int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Standard Gaussian draws made on the CPU in float64, then moved to ``device``/``dtype``.

    The numbers depend only on the generator's state, not on the device, so a seeded result
    computed on a GPU starts from the same data as on the CPU.
    """
    x = torch.randn(*shape, generator=generator, dtype=torch.float64)
    return x.to(device=device, dtype=dtype)
