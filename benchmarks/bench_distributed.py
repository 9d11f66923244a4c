"""Data-parallel Hessian-vector products: 1 process versus 2 (gloo on CPU, NCCL on GPUs).

A data-heavy problem (the one-hidden-layer net on many Gaussian samples, so that one HVP
block costs far more than moving it) is timed in three configurations on the same cores:
one process with all threads, one process with one thread, and ``--procs`` processes with
one thread each (torch.distributed, data-parallel: each rank its shard of the samples, one
``all_reduce`` of the ``(P, k)`` block per product). Reported: seconds per HVP block (best of
``--repeat``), the CPU seconds of rank 0 per block (its share of the work, which the load of a
shared machine does not change), seconds per ``all_reduce`` alone, the speed-ups, the bytes
all-reduced per Lanczos step, and the end-to-end time of an SLQ run in both modes (``data`` and
``probe``). With two or more GPUs the ranks use NCCL, one GPU each.

Usage: ``python benchmarks/bench_distributed.py [--json] [--N 20000 --d 100 --m 16 --C 10]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import hesslib as hl


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if dist.is_initialized():
        dist.barrier()


def _timed(fn, device, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` wall-clock seconds (robust to other jobs on a shared machine) and
    the median CPU seconds of this process per call (the work it did, whatever the load)."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeat):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), statistics.median(cpu)


def _worker(rank: int, size: int, port: int, threads: int, args, queue) -> None:
    if size > 1:
        os.environ.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            RANK=str(rank),
            WORLD_SIZE=str(size),
            LOCAL_RANK=str(rank),
        )
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(threads)
    device = hl.distributed.init_distributed(timeout=timedelta(seconds=300))
    if size == 1 and torch.cuda.is_available():
        device = torch.device("cuda")
    data = hl.gaussian_data(args.N, args.d, args.C, seed=0, device=device)
    net = hl.one_hidden_net(args.d, args.m, args.C, seed=1, device=device)
    f_r, theta = hl.distributed.sharded_loss(net, data.X, data.y)
    P = theta.numel()
    V = torch.randn(P, args.k, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    V = V.to(device)
    mv = hl.distributed.DataParallelMatvec(f_r, theta, check_shapes=False)
    res = dict(zip(("hvp_s", "hvp_cpu_s"), _timed(lambda: mv(V), device, args.repeat)))
    block = torch.zeros(P, args.k, dtype=torch.float64, device=device)
    res["all_reduce_s"] = _timed(lambda: hl.distributed.all_reduce_sum(block), device, args.repeat)[
        0
    ]
    res["bytes_per_step"] = P * args.k * 8 if size > 1 else 0
    slq = dict(num_steps=args.steps, num_probes=args.k, seed=3)
    for mode in ("data", "probe"):
        if mode == "probe" and args.k < size:
            continue
        stats: dict = {}
        res[f"slq_{mode}_s"] = _timed(
            lambda m=mode, st=stats: hl.distributed.distributed_slq(
                net, data.X, data.y, mode=m, stats=st, **slq
            ),
            device,
            1,
        )[0]
        res[f"slq_{mode}_bytes_per_step"] = stats["bytes_reduced"] / max(stats["matvec_calls"], 1)
    res.update(
        P=P,
        backend=dist.get_backend() if dist.is_initialized() else "none",
        device=hl.device_name(device),
    )
    hl.distributed.shutdown_distributed()
    if rank == 0:
        queue.put(res)


def _run(size: int, threads: int, args) -> dict:
    ctx = mp.get_context("spawn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = ctx.SimpleQueue()
    procs = [
        ctx.Process(target=_worker, args=(r, size, port, threads, args, queue)) for r in range(size)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"a benchmark rank failed: exit codes {[p.exitcode for p in procs]}")
    return queue.get()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=20000, help="samples (data-heavy: large)")
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--C", type=int, default=10)
    ap.add_argument("--k", type=int, default=8, help="HVPs per block (probes)")
    ap.add_argument("--steps", type=int, default=5, help="Lanczos steps of the SLQ runs")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    gpus = torch.cuda.device_count()
    cores = len(os.sched_getaffinity(0))
    if gpus == 1:
        print("one GPU: NCCL needs one GPU per rank, so only the 1-process GPU time is measured")
    load_before = os.getloadavg()[0]
    out = {
        "setting": {k: getattr(args, k) for k in ("N", "d", "m", "C", "k", "steps", "procs")},
        "torch": torch.__version__,
        "device": hl.device_name(),
        "cpu_cores": cores,
        "gpus": gpus,
        "load_average_1min_before": load_before,
    }
    runs = {"1proc_all_threads": (1, cores)}
    if gpus == 0:
        runs["1proc_1thread"] = (1, 1)
    if gpus == 0 or gpus >= args.procs:
        runs[f"{args.procs}proc_1thread"] = (args.procs, 1)
    for name, (size, threads) in runs.items():
        out[name] = _run(size, threads, args)
        r = out[name]
        print(
            f"{name:>18}: HVP block {r['hvp_s']:.3f} s, all_reduce {r['all_reduce_s']:.4f} s, "
            f"SLQ data {r['slq_data_s']:.2f} s, probe {r.get('slq_probe_s', float('nan')):.2f} s "
            f"({r['backend']}, {r['device']})"
        )
    out["P"] = out["1proc_all_threads"]["P"]
    out["bytes_all_reduced_per_lanczos_step"] = args.k * out["P"] * 8
    multi = out.get(f"{args.procs}proc_1thread")
    if multi is not None:
        for base in ("1proc_all_threads", "1proc_1thread"):
            if base in out:
                out[f"speedup_hvp_vs_{base}"] = out[base]["hvp_s"] / multi["hvp_s"]
                out[f"speedup_slq_data_vs_{base}"] = out[base]["slq_data_s"] / multi["slq_data_s"]
        out["comm_fraction_of_hvp"] = multi["all_reduce_s"] / multi["hvp_s"]
        if "1proc_1thread" in out:  # the work per rank, free of the machine's load
            out["cpu_work_ratio_1proc_over_rank0"] = (
                out["1proc_1thread"]["hvp_cpu_s"] / multi["hvp_cpu_s"]
            )
        print(
            f"speed-up of {args.procs} processes (HVP block): "
            f"{out['speedup_hvp_vs_1proc_all_threads']:.2f}x vs 1 process x {cores} threads; "
            f"all_reduce {out['bytes_all_reduced_per_lanczos_step'] / 2**10:.0f} KiB per step "
            f"= {100 * out['comm_fraction_of_hvp']:.1f} % of the product time"
        )
    out["load_average_1min_after"] = os.getloadavg()[0]
    if "cpu_work_ratio_1proc_over_rank0" in out:
        print(
            f"CPU work of one HVP block: 1 process {out['1proc_1thread']['hvp_cpu_s']:.3f} s, "
            f"rank 0 of {args.procs} {multi['hvp_cpu_s']:.3f} s "
            f"(ratio {out['cpu_work_ratio_1proc_over_rank0']:.2f}; load average "
            f"{load_before:.1f} -> {out['load_average_1min_after']:.1f} on {cores} cores)"
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
