"""Exact Hessian of the one-hidden-layer net: closed form, the general path, HVPs, the loop.

Default setting: the talk's Gaussian setting (N = 5000, d = C = 500, m = 8, P = 8000, CE), in
float64 and float32. Timed side by side (:func:`hesslib.core.timing.compare_timings`: same
threads, interleaved repeats, min and median): the closed form; the general path
(``hl.full_hessian``, no formulas); batched HVPs on ``--hvp-columns`` identity columns
(``hl.hvp``, extrapolated to all P); the naive per-column autograd loop on ``--loop-columns``
columns (extrapolated). ``torch.func.hessian`` materialises every tangent at once, so it is
timed beside the closed form in a smaller reference setting (``--ref-N``/``--ref-d``/
``--ref-C``) — and only if its estimated memory (the forward's intermediates ×
:data:`hesslib.core.workspace.HVP_BYTES_PER_FORWARD` × P, plus the result) fits the budget;
otherwise it is skipped with the bytes it would need, never attempted.

Usage: ``python benchmarks/bench_hessian.py [--json] [--N 5000 --d 500 --C 500 --m 8]``
"""

from __future__ import annotations

import argparse
import json

import torch
from setting import add_setting_args

import hesslib as hl
from hesslib.core import workspace
from hesslib.core.timing import compare_timings


def _unit_columns(P: int, cols: list[int], dtype, device) -> torch.Tensor:
    E = torch.zeros(P, len(cols), dtype=dtype, device=device)  # (P, k) unit vectors
    E[cols, torch.arange(len(cols))] = 1.0
    return E


def _stats(t, scale: float = 1.0) -> dict:
    return {"min_s": t.min * scale, "median_s": t.median * scale, "label": t.label}


def bench_dtype(args, dtype) -> dict:
    data = hl.gaussian_data(args.N, args.d, args.C, seed=0, device=args.device, dtype=dtype)
    net = hl.one_hidden_net(args.d, args.m, args.C, seed=1, device=args.device, dtype=dtype)
    f, theta = hl.flat_loss(net, data.X, data.y, args.loss)
    P = theta.numel()
    hcols = list(range(0, P, max(1, P // args.hvp_columns)))[: args.hvp_columns]
    lcols = list(range(0, P, max(1, P // args.loop_columns)))[: args.loop_columns]
    E = _unit_columns(P, hcols, dtype, args.device)
    calls = {
        "closed_form": lambda: hl.closed_form_hessian(net, data.X, data.y, loss=args.loss),
        "general_path": lambda: hl.full_hessian(f, theta),
        "hvp_columns": lambda: hl.hvp(f, theta, E),
        "loop": lambda: hl.core.hessian_loop(f, theta, lcols),
    }
    times = compare_timings(calls, repeats=args.repeat, warmup=0)
    H = calls["closed_form"]()
    scale = {"hvp_columns": P / len(hcols), "loop": P / len(lcols)}
    ref = {"hvp_columns": H[:, hcols], "loop": H[:, lcols]}
    res = {"P": P, "hvp_columns": len(hcols), "loop_columns": len(lcols)}
    for name, call in calls.items():
        diff = float((call() - ref.get(name, H)).abs().max())
        res[name] = {**_stats(times[name], scale.get(name, 1.0)), "max_abs_diff_vs_closed": diff}
    loop = res["loop"]["median_s"]
    for name in calls:
        res[name]["speedup_vs_loop"] = loop / res[name]["median_s"]
    return res


def bench_reference(args) -> dict:
    """``torch.func.hessian`` beside the closed form, if its estimated memory fits."""
    data = hl.gaussian_data(args.ref_N, args.ref_d, args.ref_C, seed=0, device=args.device)
    net = hl.one_hidden_net(args.ref_d, args.m, args.ref_C, seed=1, device=args.device)
    f, theta = hl.flat_loss(net, data.X, data.y, args.loss)
    P, item = theta.numel(), theta.element_size()
    need = workspace.HVP_BYTES_PER_FORWARD * workspace.forward_bytes(f, theta) * P + P * P * item
    budget = workspace.memory_budget(args.device)
    res = {"setting": {"N": args.ref_N, "d": args.ref_d, "C": args.ref_C, "m": args.m, "P": P},
           "torch_func_bytes_estimate": need, "budget_bytes": budget}  # fmt: skip
    calls = {"closed_form": lambda: hl.closed_form_hessian(net, data.X, data.y, loss=args.loss)}
    if need <= budget:
        calls["torch_func_hessian"] = lambda: hl.hessian_reference(f, theta)
    else:
        res["torch_func_skipped"] = (
            f"torch.func.hessian would need about {need:,} bytes ({need / 2**30:.1f} GiB), "
            f"over the budget of {budget:,} bytes: skipped, not attempted"
        )
        print(res["torch_func_skipped"])
    times = compare_timings(calls, repeats=args.repeat, warmup=0)
    for name, t in times.items():
        res[name] = _stats(t)
    if "torch_func_hessian" in calls:
        diff = calls["torch_func_hessian"]() - calls["closed_form"]()
        res["max_abs_diff"] = float(diff.abs().max())
        res["ratio_torch_func_over_closed"] = (
            times["torch_func_hessian"].median / times["closed_form"].median
        )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setting_args(ap)
    ap.add_argument("--loss", choices=hl.core.LOSSES, default="ce")
    ap.add_argument("--loop-columns", type=int, default=40)
    ap.add_argument("--hvp-columns", type=int, default=256)
    ap.add_argument("--ref-N", type=int, default=500)
    ap.add_argument("--ref-d", type=int, default=50)
    ap.add_argument("--ref-C", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    res: dict = {
        "setting": {k: getattr(args, k) for k in ("N", "d", "C", "m", "loss")},
        "torch": torch.__version__,
        "device": hl.device_name(torch.device(args.device)),
        "threads": torch.get_num_threads(),
    }
    for dtype in (torch.float64, torch.float32):
        name = str(dtype).split(".")[1]
        res[name] = r = bench_dtype(args, dtype)
        print(
            f"{name}: closed form {r['closed_form']['median_s']:.2f} s, general path "
            f"{r['general_path']['median_s']:.2f} s, HVP columns {r['hvp_columns']['median_s']:.1f}"
            f" s, loop {r['loop']['median_s']:.0f} s (extrapolated) -> general path "
            f"{r['general_path']['speedup_vs_loop']:.1f}x, closed form "
            f"{r['closed_form']['speedup_vs_loop']:.0f}x the loop"
        )
    res["reference"] = ref = bench_reference(args)
    if "ratio_torch_func_over_closed" in ref:
        print(f"reference P={ref['setting']['P']}: torch.func.hessian "
              f"{ref['torch_func_hessian']['median_s']:.2f} s, closed form "
              f"{ref['closed_form']['median_s']:.3f} s")  # fmt: skip
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
