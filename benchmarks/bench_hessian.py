"""Exact Hessian of the one-hidden-layer net: closed form vs batched HVPs vs the per-column loop.

Default setting: the talk's Gaussian setting (N = 5000, d = C = 500, m = 8, P = 8000, CE).
The per-column autograd loop (the naive method) is timed on ``--loop-columns`` columns and
extrapolated to all P columns; the batched-HVP general path on ``--hvp-columns`` columns (all
with ``--full``). ``torch.func.hessian`` cannot run at P = 8000 (its forward-over-reverse
Jacobian materialises every tangent at once), so it is timed beside the closed form in a smaller
reference setting (``--ref-d``/``--ref-C``).

Usage: ``python benchmarks/bench_hessian.py [--json] [--N 5000 --d 500 --C 500 --m 8]``
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import hesslib as hl


def _timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _unit_columns(P: int, cols: torch.Tensor, dtype, device) -> torch.Tensor:
    E = torch.zeros(P, len(cols), dtype=dtype, device=device)
    E[cols, torch.arange(len(cols), device=device)] = 1.0
    return E


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=5000)
    ap.add_argument("--d", type=int, default=500)
    ap.add_argument("--C", type=int, default=500)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--loss", choices=hl.core.LOSSES, default="ce")
    ap.add_argument("--loop-columns", type=int, default=200)
    ap.add_argument("--hvp-columns", type=int, default=1000)
    ap.add_argument("--full", action="store_true", help="batched-HVP path on all columns")
    ap.add_argument("--ref-d", type=int, default=100)
    ap.add_argument("--ref-C", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    device = hl.default_device()
    res: dict = {
        "setting": {k: getattr(args, k) for k in ("N", "d", "C", "m", "loss")},
        "torch": torch.__version__,
        "device": hl.device_name(device),
        "threads": torch.get_num_threads(),
    }

    data = hl.gaussian_data(args.N, args.d, args.C, seed=0, device=device)
    net = hl.one_hidden_net(args.d, args.m, args.C, seed=1, device=device)
    P = net.layout().num_params
    res["setting"]["P"] = P
    t64, H = _timed(
        lambda: hl.closed_form_hessian(net, data.X, data.y, loss=args.loss), args.repeat
    )
    net32 = hl.OneHiddenNet(net.W.detach().float(), net.V.detach().float())
    t32, H32 = _timed(
        lambda: hl.closed_form_hessian(net32, data.X.float(), data.y, loss=args.loss), args.repeat
    )
    res["closed_form_float64_s"] = t64
    res["closed_form_float32_s"] = t32
    res["float32_max_rel_err"] = float((H32.double() - H).abs().max() / H.abs().max())
    del H32
    print(f"closed form, all blocks: {t64:.2f} s (float64), {t32:.2f} s (float32)")

    f, theta = hl.flat_loss(net, data.X, data.y, args.loss)
    k = P if args.full else min(P, args.hvp_columns)
    cols = torch.arange(k, device=device) * (P // k)
    E = _unit_columns(P, cols, theta.dtype, device)
    chunk = 500
    t_hvp, Hc = _timed(
        lambda: torch.cat(
            [hl.hvp(f, theta, E[:, i : i + chunk]) for i in range(0, k, chunk)], dim=1
        )
    )
    res["batched_hvp_columns"] = k
    res["batched_hvp_s"] = t_hvp * P / k
    res["batched_hvp_extrapolated"] = k < P
    res["max_abs_diff_closed_vs_hvp"] = float((Hc - H[:, cols]).abs().max())
    print(f"batched HVPs: {t_hvp:.2f} s for {k} columns -> {res['batched_hvp_s']:.1f} s for {P}")

    kl = min(P, args.loop_columns)
    lcols = range(0, P, P // kl)[:kl]
    t_loop, Hl = _timed(lambda: hl.core.hessian_loop(f, theta, lcols))
    res["loop_columns"] = kl
    res["loop_s"] = t_loop * P / kl
    res["max_abs_diff_closed_vs_loop"] = float((Hl - H[:, list(lcols)]).abs().max())
    print(
        f"per-column loop: {t_loop:.2f} s for {kl} columns -> "
        f"{res['loop_s']:.0f} s for {P} (extrapolated)"
    )
    res["ratio_loop_over_closed_float64"] = res["loop_s"] / t64
    res["ratio_loop_over_closed_float32"] = res["loop_s"] / t32
    res["ratio_hvp_over_closed_float64"] = res["batched_hvp_s"] / t64
    res["ratio_loop_over_hvp"] = res["loop_s"] / res["batched_hvp_s"]

    # torch.func.hessian in a reference setting small enough for it
    rdata = hl.gaussian_data(args.N, args.ref_d, args.ref_C, seed=0, device=device)
    rnet = hl.one_hidden_net(args.ref_d, args.m, args.ref_C, seed=1, device=device)
    rf, rtheta = hl.flat_loss(rnet, rdata.X, rdata.y, args.loss)
    t_ref_cf, Hr = _timed(lambda: hl.closed_form_hessian(rnet, rdata.X, rdata.y, loss=args.loss), 3)
    try:
        t_func, Hf = _timed(lambda: hl.hessian_reference(rf, rtheta))
        res["ref_max_abs_diff"] = float((Hf - Hr).abs().max())
    except RuntimeError as exc:  # out of memory on small machines
        t_func = float("nan")
        res["ref_error"] = str(exc)[:200]
    res["ref_setting"] = {
        "N": args.N,
        "d": args.ref_d,
        "C": args.ref_C,
        "m": args.m,
        "P": rnet.layout().num_params,
    }
    res["ref_torch_func_hessian_s"] = t_func
    res["ref_closed_form_s"] = t_ref_cf
    res["ratio_torch_func_over_closed"] = t_func / t_ref_cf
    print(
        f"reference P={res['ref_setting']['P']}: torch.func.hessian {t_func:.2f} s, "
        f"closed form {t_ref_cf:.3f} s -> {res['ratio_torch_func_over_closed']:.0f}x"
    )
    print(
        f"ratios: loop/closed {res['ratio_loop_over_closed_float64']:.0f}x (float64), "
        f"{res['ratio_loop_over_closed_float32']:.0f}x (float32); "
        f"batched-HVP/closed {res['ratio_hvp_over_closed_float64']:.1f}x"
    )
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
