"""Paper Fig. 1 at full size: time and peak memory of the Hessian and of its summary.

Setting (arXiv 2505.02809, Fig. 1): one-hidden-layer ReLU net, m = 8, C = 100, N = 128
CIFAR-100 images (d = 3072), so P = m d + C m = 25 376. The dense Hessian is computed by the
closed form in float32 (2.6 GB) and summarised in one chunked pass (pooled |H|, all block
norms, H_vv) before it is freed, once per loss, as chapter 01 does. The images are CIFAR-100
when the archive is available (see hesslib.cifar) and the labelled Gaussian stand-in otherwise:
the cost does not depend on the pixel values.

Peak memory is the process's maximum resident set size (``resource.getrusage``), so it includes
the Python interpreter and torch (a few hundred MB). Target: <= 30 s and <= 6 GiB on 2 cores.

Usage: ``python benchmarks/bench_fig1.py [--json] [--losses ce mse] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import torch

import hesslib as hl


def _peak_bytes() -> int:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return int(kb if sys.platform == "darwin" else kb * 1024)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=128)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--losses", nargs="+", choices=hl.core.LOSSES, default=["ce", "mse"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = hl.default_device()

    t_start, cpu_start = time.perf_counter(), time.process_time()
    data = hl.nets.cifar100(args.N, seed=args.seed, device=device, dtype=torch.float32)
    t_data = time.perf_counter() - t_start
    net = hl.one_hidden_net(
        data.d, args.m, data.num_classes, seed=args.seed + 1, device=device, dtype=torch.float32
    )
    P = net.layout().num_params
    res: dict = {
        "setting": {
            "N": args.N,
            "d": data.d,
            "C": data.num_classes,
            "m": args.m,
            "P": P,
            "dtype": "float32",
            "data": data.name,
            "losses": args.losses,
        },
        "torch": torch.__version__,
        "device": hl.device_name(device),
        "threads": torch.get_num_threads(),
        "data_s": round(t_data, 3),
    }
    for loss in args.losses:
        t0 = time.perf_counter()
        s = hl.chapters.observations.one_hidden_summary(net, data.X, data.y, loss=loss)
        total = time.perf_counter() - t0
        res[f"{loss}_hessian_s"] = round(s.seconds, 3)
        res[f"{loss}_hessian_and_summary_s"] = round(total, 3)
        res[f"{loss}_ratio_ww"] = s.stats("W").rms_ratio
        res[f"{loss}_diag_mass"] = s.diag_mass()
        print(
            f"{loss}: Hessian {s.seconds:.2f} s, with summary {total:.2f} s, "
            f"peak so far {_peak_bytes() / 2**30:.2f} GiB"
        )
    res["time_s"] = round(time.perf_counter() - t_start, 3)
    res["cpu_s"] = round(time.process_time() - cpu_start, 3)  # all threads; wall ~ cpu / threads
    res["load_avg_1min"] = os.getloadavg()[0]  # > threads: other processes shared the cores
    res["peak_bytes"] = _peak_bytes()
    res["peak_gib"] = round(res["peak_bytes"] / 2**30, 3)
    res["within_budget"] = res["time_s"] <= 30 and res["peak_bytes"] <= 6 * 2**30
    print(
        f"total {res['time_s']:.1f} s, peak {res['peak_gib']:.2f} GiB "
        f"({'within' if res['within_budget'] else 'OVER'} the 30 s / 6 GiB budget)"
    )
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
