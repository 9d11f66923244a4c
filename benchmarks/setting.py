"""The talk's Gaussian setting, shared by the benchmarks that time full Hessians.

N = 5000 samples in d = 500 dimensions, C = 500 classes, m = 8 hidden units: P = m (d + C) =
8000 parameters, a 512 MB float64 Hessian. ``bench_hessian.py`` and ``bench_peers.py`` take the
same command-line options for it, so their tables describe the same problem.
"""

from __future__ import annotations

import argparse

#: The setting's sizes (the command-line defaults).
GAUSSIAN = {"N": 5000, "d": 500, "C": 500, "m": 8}


def add_setting_args(ap: argparse.ArgumentParser) -> None:
    """``--N --d --C --m`` with the Gaussian setting's defaults."""
    for name, value in GAUSSIAN.items():
        ap.add_argument(f"--{name}", type=int, default=value, help=f"default {value}")
