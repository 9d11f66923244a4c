"""Every benchmark of ``benchmarks/`` runs and ends with one JSON object (tiny settings).

The speed figures themselves are measured by running the benchmarks as their docstrings show
(never by timed tests); this only checks that each one finishes on a CPU machine, skips what
it cannot do (a peer library that is not installed, a reference too big for memory) and
prints its JSON as the last line, as the project's convention requires.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GAUSSIAN = ["--N", "200", "--d", "20", "--C", "10", "--m", "4"]

#: ``script -> (arguments, keys the JSON must have)``.
RUNS = {
    "bench_hessian.py": (
        [*GAUSSIAN, "--loop-columns", "4", "--hvp-columns", "8", "--ref-N", "50", "--ref-d",
         "8", "--ref-C", "5", "--repeat", "1"],
        {"setting", "float64", "float32"},
    ),
    "bench_peers.py": (
        [*GAUSSIAN, "--columns", "4", "--probes", "2", "--steps", "6", "--topk", "2",
         "--topk-matvecs", "20", "--repeats", "1", "--spectra-repeats", "1", "--hvp-profile",
         "quick", "--hvp-repeats", "1", "--block-probes", "1", "--hvp-settle-s", "1"],
        {"setting", "peers", "full_hessian", "hvps_per_second"},
    ),
    "bench_slq.py": (
        ["--N", "200", "--d", "20", "--C", "10", "--probes", "2", "--steps", "4", "--repeats",
         "1"],
        {"setting", "speedup"},
    ),
    "bench_fig1.py": (["--N", "32", "--m", "4"], {"setting", "ce_hessian_s"}),
    "bench_distributed.py": (
        ["--N", "400", "--d", "10", "--m", "4", "--C", "3", "--k", "2", "--steps", "2",
         "--repeat", "1"],
        {"setting"},
    ),
}  # fmt: skip


def test_every_benchmark_is_covered():
    assert {p.name for p in (ROOT / "benchmarks").glob("bench_*.py")} == set(RUNS)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_prints_its_json_last(script):
    args, keys = RUNS[script]
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--json", *args]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    last = run.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert keys <= set(result), f"{script}: missing {keys - set(result)} in {sorted(result)}"
