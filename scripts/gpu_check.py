"""One-command GPU check: the CUDA-only tests, every chapter at ``paper``, the benchmarks.

    make gpu-check            # or: .venv/bin/python scripts/gpu_check.py [--budget 600]

Steps, in order, each with its own share of the time budget (default 600 s for the whole
check on one recent GPU): the tests whose names contain ``cuda`` (they skip on a CPU-only
machine); ``python book/_ext/bookbuild.py run NN --profile paper`` for every chapter; the
benchmarks with ``--json`` on the GPU. A step that runs out of time is stopped and recorded as
such. The summary — device, torch, each step's command, seconds, exit status and the tail of
its output, the benchmarks' JSON — is written to ``_build/gpu_check.json`` and printed.

On a machine without CUDA the script says so, writes the summary with ``"cuda": false`` and
exits 0: there is nothing to check.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
OUT = ROOT / "_build" / "gpu_check.json"

#: (name, command, share of the budget). Shares add up to 1.
STEPS = [
    ("cuda tests", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda",
                    "-m", "not book and not browser", "tests"], 0.05),
    *[(f"chapter {nn} (paper)", [PY, "book/_ext/bookbuild.py", "run", nn, "--profile", "paper"],
       share) for nn, share in
      [("01", 0.08), ("02", 0.04), ("03", 0.13), ("04", 0.12), ("05", 0.08), ("06", 0.16)]],
    ("bench_hessian", [PY, "benchmarks/bench_hessian.py", "--json", "--device", "cuda",
                       "--repeat", "1"], 0.08),
    ("bench_peers", [PY, "benchmarks/bench_peers.py", "--json", "--device", "cuda",
                     "--repeats", "1", "--spectra-repeats", "1"], 0.14),
    ("bench_slq", [PY, "benchmarks/bench_slq.py", "--json", "--device", "cuda"], 0.04),
    ("bench_fig1", [PY, "benchmarks/bench_fig1.py", "--json"], 0.04),
    ("bench_distributed", [PY, "benchmarks/bench_distributed.py", "--json", "--repeat", "1"], 0.04),
]  # fmt: skip


def _device() -> dict:
    import torch

    info = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if info["cuda"]:
        props = torch.cuda.get_device_properties(0)
        info.update(device=props.name, memory_gib=round(props.total_memory / 2**30, 1))
    return info


def _last_json(text: str):
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def run_step(name: str, cmd: list[str], limit: float) -> dict:
    print(f"== {name} (limit {limit:.0f} s): {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit, env=os.environ.copy()
        )
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code = "timeout"
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
    seconds = time.perf_counter() - t0
    print(f"   {code} after {seconds:.1f} s", flush=True)
    step = {"name": name, "command": cmd[1:], "seconds": round(seconds, 2), "status": code,
            "tail": out[-2000:]}  # fmt: skip
    if "--json" in cmd and code == 0:
        step["json"] = _last_json(out)
    return step


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=600.0, help="seconds for the whole check")
    ap.add_argument("--out", type=Path, default=OUT, help="where the JSON summary goes")
    args = ap.parse_args()
    summary = {**_device(), "budget_s": args.budget, "steps": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not summary["cuda"]:
        print("No CUDA device on this machine: the GPU check has nothing to run (the CUDA-only "
              "tests skip here; run `make test` for the CPU suite).")  # fmt: skip
        summary["skipped"] = "no CUDA device"
        args.out.write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary))
        return 0
    start = time.perf_counter()
    for name, cmd, share in STEPS:
        left = args.budget - (time.perf_counter() - start)
        if left <= 5:
            summary["steps"].append({"name": name, "status": "not run: budget spent"})
            continue
        summary["steps"].append(run_step(name, cmd, min(left, max(share * args.budget, 30))))
    summary["total_s"] = round(time.perf_counter() - start, 1)
    summary["ok"] = all(s.get("status") == 0 for s in summary["steps"])
    args.out.write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "steps"}))
    for s in summary["steps"]:
        print(f"{s['name']:>22}: {s['status']} ({s.get('seconds', 0):.0f} s)")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
