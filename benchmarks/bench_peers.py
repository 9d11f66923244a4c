"""hesslib side by side with curvlinops and hessian-eigenthings, regenerated in one run.

1. Full Hessian of the talk's Gaussian setting (N = 5000, d = C = 500, m = 8, P = 8000, CE), in
   float64 and float32: the closed form; the plain per-column autograd loop (``grad`` of
   ``∇f·e_i``, graph retained); hesslib's general path (``hl.full_hessian``: no formulas, any
   module ending in a linear layer); hesslib's batched HVPs on identity columns (``hl.hvp``,
   the engine under SLQ and top-k); curvlinops' ``HessianLinearOperator`` and hessian-eigenthings'
   ``HessianOperator`` on identity columns. The loop, the HVP columns and the peers are timed on
   ``--columns`` columns and extrapolated to all P (their cost is linear in the columns); the
   closed form and the general path are timed whole. Agreement: max |H − H_closed| over the
   columns each computed.
2. Spectra in float64 against the exact eigenvalues (``eigvalsh`` of the closed form): SLQ with
   ``--probes`` probes × ``--steps`` Lanczos steps (hesslib's batched Lanczos on ``hl.hvp``,
   eigenthings' ``spectral_density``, curvlinops' ``fast_lanczos`` per probe), scored by the
   Wasserstein-1 distance of the quadrature to the exact spectrum; and the top ``--topk``
   eigenpairs with ``--topk-matvecs`` products each (``hl.spectral.top_eigenpairs``,
   eigenthings' ``lanczos``, SciPy's ``eigsh`` on curvlinops' operator).
3. HVPs per second on chapter 06's GPT and CNN (``--hvp-profile``, float32 as in the chapter,
   and float64), ``--hvp-repeats`` interleaved repeats, with the per-repeat ratio of each
   contender's time to hesslib's (median, min–max):

   * dense: 32 random directions; hesslib batched in the state of a long run at one point
     (``--hvp-settle-s`` seconds of untimed HVPs first: the engine tunes, then traces its HVP
     if that pays; the JSON gives the trace's cost and break-even), hesslib's tuned method
     untraced, hesslib one at a time, the plain autograd loop, both peers;
   * block: chapter 06's own workload, one block-Lanczos step of ``--block-probes`` probes per
     module block, of which only the block's rows ``H_bb q`` are read; hesslib's
     ``block_diagonal_hvp``, hesslib's full HVPs of the same columns, curvlinops with one
     operator per block, hessian-eigenthings' full HVPs.

Every timing is :func:`hesslib.core.timing.compare_timings` (same threads, interleaved
repeats, min and median); ratios are against the plain loop (table 1) or the fastest peer.
The peers are an optional extra (``pip install -e '.[bench]'``, i.e. ``curvlinops-for-pytorch``
and ``hessian-eigenthings``), not part of the book's lock; a peer that is not installed is
skipped with a message. A full run takes about 25 minutes on a quiet 2-core CPU.

    python benchmarks/bench_peers.py [--json] [--repeats 3] [--spectra-repeats 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F
from setting import add_setting_args

import hesslib as hl
from hesslib.core.timing import compare_timings

PEERS = {"curvlinops": "curvlinops", "eigenthings": "hessian_eigenthings"}


def _installed() -> dict[str, bool]:
    have = {name: importlib.util.find_spec(mod) is not None for name, mod in PEERS.items()}
    for name, ok in have.items():
        if not ok:
            print(f"{name} is not installed: skipped (pip install -e '.[bench]')")
    return have


def _unit(P: int, cols: list[int], dtype, device) -> torch.Tensor:
    E = torch.zeros(P, len(cols), dtype=dtype, device=device)  # (P, k) unit vectors
    E[cols, torch.arange(len(cols))] = 1
    return E


def _peer_ops(net, X, y, have) -> dict:
    """Each installed peer's Hessian operator of mean CE on (X, y): ``V (P, k) -> H V``."""
    ops = {}
    if have["curvlinops"]:
        from curvlinops import HessianLinearOperator

        H = HessianLinearOperator(
            net, torch.nn.CrossEntropyLoss(), list(net.parameters()), [(X, y)],
            check_deterministic=False,
        )  # fmt: skip
        ops["curvlinops"] = (H, lambda V: H @ V)
    if have["eigenthings"]:
        from hessian_eigenthings import HessianOperator, supervised_loss

        E = HessianOperator(net, [(X, y)], supervised_loss(F.cross_entropy))
        ops["eigenthings"] = (E, lambda V: torch.stack([E.matvec(v) for v in V.T], dim=1))
    return ops


def _warm_up(args, have) -> None:
    """One small run of every contender: lazy initialisation (forward-AD decompositions,
    BLAS threads) is paid here, not inside the first timed repeat."""
    data = hl.gaussian_data(64, 8, 6, seed=0, device=args.device)
    net = hl.one_hidden_net(8, 3, 6, seed=1, device=args.device)
    f, theta = hl.flat_loss(net, data.X, data.y, "ce")
    hl.full_hessian(f, theta), hl.core.hessian_loop(f, theta, range(2))
    V = torch.ones(theta.numel(), 2, dtype=theta.dtype, device=args.device)
    hl.hvp(f, theta, V), hl.spectral.top_eigenpairs(lambda U: hl.hvp(f, theta, U), 42, 1)
    for _, mv in _peer_ops(net, data.X, data.y, have).values():
        mv(V)


def _stats(t, scale: float = 1.0) -> dict:
    return {"min_s": t.min * scale, "median_s": t.median * scale, "label": t.label}


def full_hessian_table(args, dtype, have) -> dict:
    data = hl.gaussian_data(args.N, args.d, args.C, seed=0, device=args.device, dtype=dtype)
    net = hl.one_hidden_net(args.d, args.m, args.C, seed=1, device=args.device, dtype=dtype)
    f, theta = hl.flat_loss(net, data.X, data.y, "ce")
    P = theta.numel()
    cols = list(range(0, P, P // args.columns))[: args.columns]
    E = _unit(P, cols, dtype, args.device)
    ops = _peer_ops(net, data.X, data.y, have)
    chunk = 16
    calls = {
        "closed_form": lambda: hl.closed_form_hessian(net, data.X, data.y, loss="ce"),
        "plain_loop": lambda: hl.core.hessian_loop(f, theta, cols),
        "hesslib_general": lambda: hl.full_hessian(f, theta),
        "hesslib_hvp_columns": lambda: hl.hvp(f, theta, E),
        **{name: (lambda mv=mv: torch.cat([mv(E[:, i : i + chunk]) for i in range(0, len(cols), chunk)], 1))  # noqa: E501
           for name, (_, mv) in ops.items()},
    }  # fmt: skip
    times = compare_timings(calls, repeats=args.repeats, warmup=0)
    extrapolated = {n for n in calls if n not in ("closed_form", "hesslib_general")}
    H = calls["closed_form"]()
    rows = {}
    for name, call in calls.items():
        out = call()
        ref = H[:, cols] if name in extrapolated else H
        scale = P / len(cols) if name in extrapolated else 1.0
        rows[name] = {**_stats(times[name], scale), "extrapolated": name in extrapolated,
                      "max_abs_diff_vs_closed_form": float((out - ref).abs().max())}  # fmt: skip
        del out
    loop = rows["plain_loop"]["median_s"]
    for row in rows.values():
        row["speedup_vs_plain_loop"] = loop / row["median_s"]
    return {"dtype": str(dtype).split(".")[1], "P": P, "columns": len(cols), "rows": rows}


def _w1(nodes: torch.Tensor, weights: torch.Tensor, exact: torch.Tensor) -> float:
    """Wasserstein-1 distance between the probe-averaged quadrature and the exact spectrum."""
    from scipy.stats import wasserstein_distance

    nodes, weights, exact = nodes.cpu(), weights.cpu(), exact.cpu()
    keep = torch.isfinite(nodes) & (weights > 0)
    w = (weights / weights.sum(dim=-1, keepdim=True))[keep]
    return float(wasserstein_distance(nodes[keep].numpy(), exact.numpy(), w.numpy()))


def spectra_table(args, have) -> dict:
    dtype = torch.float64
    data = hl.gaussian_data(args.N, args.d, args.C, seed=0, device=args.device, dtype=dtype)
    net = hl.one_hidden_net(args.d, args.m, args.C, seed=1, device=args.device, dtype=dtype)
    f, theta = hl.flat_loss(net, data.X, data.y, "ce")
    P, k, s = theta.numel(), args.probes, args.steps
    exact = torch.linalg.eigvalsh(hl.closed_form_hessian(net, data.X, data.y, loss="ce"))
    # the probes hessian-eigenthings draws (seed + run, Rademacher): equal probes for all
    probes = torch.stack([torch.randint(0, 2, (P,), generator=torch.Generator().manual_seed(r))
                          for r in range(k)], dim=1).to(dtype) * 2 - 1  # fmt: skip
    probes = probes.to(args.device) / math.sqrt(P)
    ops, out = _peer_ops(net, data.X, data.y, have), {}

    def hesslib_slq():
        r = hl.lanczos(lambda V: hl.hvp(f, theta, V), P, num_steps=s, probes=probes)
        out["hesslib"] = (r.nodes, r.weights)

    calls = {"hesslib": hesslib_slq}
    if "eigenthings" in ops:
        from hessian_eigenthings import spectral_density

        def eig_slq():
            r = spectral_density(ops["eigenthings"][0], num_runs=k, lanczos_steps=s, seed=0)
            out["eigenthings"] = (r.raw_eigenvalues, r.raw_weights)

        calls["eigenthings"] = eig_slq
    if "curvlinops" in ops:
        from curvlinops.papyan2020traces.spectrum import fast_lanczos

        def curv_slq():
            torch.manual_seed(0)
            runs = [fast_lanczos(ops["curvlinops"][0], s) for _ in range(k)]
            out["curvlinops"] = (torch.stack([e for e, _ in runs]),
                                 torch.stack([v[0] ** 2 for _, v in runs]))  # fmt: skip

        calls["curvlinops"] = curv_slq
    times = compare_timings(calls, repeats=args.spectra_repeats, warmup=0)
    slq = {n: {**_stats(times[n]), "w1_to_exact": _w1(*out[n], exact)} for n in calls}
    top = topk_table(args, f, theta, ops, exact)
    return {"setting": {"P": P, "probes": k, "steps": s}, "slq": slq, "top_k": top}


def topk_table(args, f, theta, ops, exact) -> dict:
    """Top-k eigenpairs with the same budget of matrix-vector products for every contender:
    hesslib with one direction per step (a Lanczos-equivalent Krylov space of the same size
    as the peers') and with k directions per step (batched HVPs, more of the budget per pass)."""
    P, k, budget = theta.numel(), args.topk, args.topk_matvecs
    ref, out = exact.flip(0)[:k], {}

    def mv(V):
        return hl.hvp(f, theta, V)

    def hesslib_topk(block):
        r = hl.spectral.top_eigenpairs(mv, P, k, block_size=block, max_basis=budget,
                                       tol=1e-12, max_matvecs=budget)  # fmt: skip
        return r.eigenvalues, r.num_matvecs

    calls = {"hesslib": lambda: out.update(hesslib=hesslib_topk(1)),
             "hesslib_block": lambda: out.update(hesslib_block=hesslib_topk(k))}  # fmt: skip
    if "eigenthings" in ops:
        from hessian_eigenthings import lanczos

        def eig_topk():
            r = lanczos(ops["eigenthings"][0], k=k, max_iter=budget, which="LA", seed=0,
                        reorthogonalize=True)  # fmt: skip
            out["eigenthings"] = (r.eigenvalues, budget)

        calls["eigenthings"] = eig_topk
    if "curvlinops" in ops:
        from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

        def curv_topk():
            A, count = ops["curvlinops"][0].to_scipy(), [0]

            def counted(v):
                count[0] += v.shape[1] if v.ndim == 2 else 1
                return A @ v

            op = LinearOperator(A.shape, matvec=counted, matmat=counted, dtype=A.dtype)
            try:
                vals = eigsh(op, k=k, which="LA", ncv=min(P, budget), maxiter=1, tol=1e-12,
                             return_eigenvectors=False)  # fmt: skip
            except ArpackNoConvergence as exc:  # one restart cycle: what it has
                vals = exc.eigenvalues
            out["curvlinops"] = (torch.as_tensor(vals).sort(descending=True).values, count[0])

        calls["curvlinops"] = curv_topk
    times = compare_timings(calls, repeats=args.spectra_repeats, warmup=0)
    rows = {}
    for n in calls:
        vals, used = out[n]
        vals = torch.as_tensor(vals, dtype=torch.float64).cpu().sort(descending=True).values
        err = float((vals[:k] - ref.cpu()[: len(vals)]).abs().max()) if len(vals) else math.inf
        rows[n] = {**_stats(times[n]), "matvecs": int(used), "max_eigenvalue_error": err}
    note = ("hesslib: one direction per step, the peers' Krylov space size (equal steps); "
            "hesslib_block: k directions per step, fewer steps for the same products")  # fmt: skip
    return {"k": k, "matvec_budget": budget, "rows": rows, "note": note}


def _paired(times, ours: str, peer: str) -> dict:
    """Per-repeat ratio of the peer's time to ours (the repeats are interleaved, so each pair
    saw the same machine): median, min and max."""
    r = [p / o for o, p in zip(times[ours].seconds, times[peer].seconds, strict=True)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r)}


def _chapter06(model: str, args, dtype):
    from hesslib.nets import zoo

    cfg = zoo.spectra_settings(model, args.hvp_profile)
    prob = zoo.spectra_problem(cfg, dtype=dtype, device=args.device)
    return prob.net, prob.data.X, prob.data.y, prob.layout


def dense_hvps(args, have, model: str, dtype) -> dict:
    """32 dense random directions: HVPs per second of every contender."""
    net, X, y, _ = _chapter06(model, args, dtype)
    f, theta = hl.flat_loss(net, X, y, "ce")
    gen = torch.Generator().manual_seed(0)
    V = torch.randn(theta.numel(), 32, generator=gen, dtype=dtype).to(args.device)
    params = list(net.parameters())
    hm, t0 = hl.core.hvp_methods, time.perf_counter()
    state = hl.core.hessian._state(f, theta)
    while time.perf_counter() - t0 < args.hvp_settle_s and state.get("method", ("",))[0] != "lin":
        hl.hvp(f, theta, V)  # a long run at one point, untimed: tuning, then maybe tracing
    sig = hm.signature(f, theta)
    method, width = state.get("method", ("head structure", 0))
    tuned = hm.FASTEST.get(sig)

    def plain_loop():
        g = torch.autograd.grad(F.cross_entropy(net(X), y), params, create_graph=True)
        g = torch.cat([t.reshape(-1) for t in g])
        return [torch.autograd.grad(g @ v, params, retain_graph=True) for v in V.T]

    calls = {
        "hesslib_batched": lambda: hl.hvp(f, theta, V),
        **(
            {"hesslib_untraced": lambda: hm.in_passes(state["methods"][tuned[0]], V, tuned[1])}
            if tuned
            else {}
        ),  # fmt: skip
        "hesslib_one_at_a_time": lambda: [hl.hvp(f, theta, v) for v in V.T],
        "plain_loop": plain_loop,
        **{n: (lambda mv=mv: mv(V)) for n, (_, mv) in _peer_ops(net, X, y, have).items()},
    }
    times = compare_timings(calls, repeats=args.hvp_repeats, warmup=1)
    rows = {n: {"hvps_per_s": 32 / t.median, **_stats(t)} for n, t in times.items()}
    lin = hm.LINEARIZED.get(sig)
    engine = {"method": method, "width": width, "tuned": list(tuned) if tuned else None,
              "trace_s": lin[0] if lin else None,
              "break_even_directions": math.ceil(lin[0] / lin[1]) if lin else None}  # fmt: skip
    return {"P": theta.numel(), "directions": 32, "engine": engine,
            "rows": rows, "hesslib_vs": {n: _paired(times, "hesslib_batched", n)
                                         for n in times if n != "hesslib_batched"}}  # fmt: skip


def block_hvps(args, have, model: str, dtype) -> dict:
    """Chapter 06's workload: one block-Lanczos step, ``--block-probes`` probes supported on
    each module block, of which only ``H_bb q`` is read. hesslib's block-diagonal product;
    hesslib's full HVPs of the same columns; curvlinops with one operator per block (its own
    way to a block's product); hessian-eigenthings' full HVPs, one column at a time."""
    net, X, y, layout = _chapter06(model, args, dtype)
    f, theta = hl.flat_loss(net, X, y, "ce")
    off, k = layout.offsets, args.block_probes
    B, P = len(off) - 1, theta.numel()
    gen = torch.Generator().manual_seed(0)
    cell = [(slice(off[b], off[b + 1]), slice(b * k, (b + 1) * k)) for b in range(B)]
    Z = torch.zeros(P, B * k, dtype=dtype)
    for r, c in cell:
        Z[r, c] = torch.randn(r.stop - r.start, k, generator=gen, dtype=dtype)
    Z = Z.to(args.device)
    mv = hl.block_diagonal_hvp(f, theta, layout)
    mv(Z)  # the engine picks its route here, untimed

    def rows_of_blocks(HZ):  # the product's block rows, as block Lanczos reads them
        out = torch.zeros_like(HZ)
        for r, c in cell:
            out[r, c] = HZ[r, c]
        return out

    calls = {"hesslib_block_diagonal": lambda: mv(Z),
             "hesslib_full_hvps": lambda: rows_of_blocks(hl.hvp(f, theta, Z))}  # fmt: skip
    if have["curvlinops"]:
        from curvlinops import HessianLinearOperator

        params = list(net.parameters())
        ops = [HessianLinearOperator(net, torch.nn.CrossEntropyLoss(), [params[b]], [(X, y)],
                                     check_deterministic=False) for b in range(B)]  # fmt: skip
        if [p.numel() for p in params] != [off[b + 1] - off[b] for b in range(B)]:
            raise RuntimeError("the module partition is not one block per parameter tensor")

        def curv_blocks():
            out = torch.zeros_like(Z)
            for op, (r, c) in zip(ops, cell, strict=True):
                out[r, c] = op @ Z[r, c]
            return out

        calls["curvlinops_per_block"] = curv_blocks
    for n, (_, pmv) in _peer_ops(net, X, y, {**have, "curvlinops": False}).items():
        calls[n] = lambda pmv=pmv: rows_of_blocks(pmv(Z))
    ref = rows_of_blocks(hl.hvp(f, theta, Z))
    scale = float(ref.abs().max())
    diffs = {n: float((c() - ref).abs().max()) / scale for n, c in calls.items()}
    times = compare_timings(calls, repeats=args.hvp_repeats, warmup=1)
    rows = {n: {"block_hvps_per_s": B * k / t.median, "max_rel_diff": diffs[n], **_stats(t)}
            for n, t in times.items()}  # fmt: skip
    return {"P": P, "blocks": B, "probes_per_block": k, "rows": rows,
            "hesslib_vs": {n: _paired(times, "hesslib_block_diagonal", n)
                           for n in times if n != "hesslib_block_diagonal"}}  # fmt: skip


def hvps_per_second(args, have) -> dict:
    res = {}
    for model in ("gpt", "cnn"):
        for dtype in (torch.float32, torch.float64):  # float32: the dtype of chapter 06
            name = f"{model}_{str(dtype).split('.')[1]}"
            res[name] = {"dense": dense_hvps(args, have, model, dtype),
                         "block": block_hvps(args, have, model, dtype)}  # fmt: skip
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setting_args(ap)
    ap.add_argument("--columns", type=int, default=48, help="columns timed for extrapolation")
    ap.add_argument("--probes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--topk", type=int, default=5)
    ap.add_argument("--topk-matvecs", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--spectra-repeats", type=int, default=2)
    ap.add_argument(
        "--hvp-profile",
        default="default",
        choices=["quick", "default", "paper"],
        help="profile of chapter 06's GPT and CNN for the HVP rates",
    )
    ap.add_argument("--hvp-repeats", type=int, default=7)
    ap.add_argument(
        "--hvp-settle-s",
        type=float,
        default=60.0,
        help="seconds of untimed HVPs before timing (the engine's long-run state)",
    )
    ap.add_argument("--block-probes", type=int, default=3, help="probes per block (chapter 06)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--skip", nargs="*", default=[], choices=["hessian", "spectra", "hvps"])
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    have = _installed()
    _warm_up(args, have)
    res: dict = {
        "setting": {k: getattr(args, k) for k in ("N", "d", "C", "m")},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": hl.device_name(torch.device(args.device)),
        "peers": {n: _version(m) for n, m in PEERS.items() if have[n]},
    }
    if "hessian" not in args.skip:
        dtypes = (torch.float64, torch.float32)
        res["full_hessian"] = [full_hessian_table(args, dt, have) for dt in dtypes]
        for table in res["full_hessian"]:
            for name, row in table["rows"].items():
                print(f"{table['dtype']:>7} {name:>22}: {row['median_s']:9.2f} s (median), "
                      f"{row['speedup_vs_plain_loop']:7.2f}x the loop, "
                      f"max diff {row['max_abs_diff_vs_closed_form']:.1e}")  # fmt: skip
    if "spectra" not in args.skip:
        res["spectra"] = spectra_table(args, have)
        for kind in ("slq",):
            for n, row in res["spectra"][kind].items():
                print(f"SLQ {n:>12}: {row['median_s']:8.2f} s, W1 {row['w1_to_exact']:.2e}")
        for n, row in res["spectra"]["top_k"]["rows"].items():
            print(f"top-k {n:>10}: {row['median_s']:8.2f} s, {row['matvecs']} matvecs, "
                  f"error {row['max_eigenvalue_error']:.1e}")  # fmt: skip
    if "hvps" not in args.skip:
        res["hvps_per_second"] = hvps_per_second(args, have)
        for model, parts in res["hvps_per_second"].items():
            for kind, key in (("dense", "hvps_per_s"), ("block", "block_hvps_per_s")):
                part = parts[kind]
                for n, row in part["rows"].items():
                    vs = part["hesslib_vs"].get(n)
                    paired = (f"  hesslib {vs['median']:.2f}x ({vs['min']:.2f}-{vs['max']:.2f})"
                              if vs else "")  # fmt: skip
                    print(f"{model:>11} {kind:>5} {n:>22}: {row[key]:8.1f} /s{paired}")
    if args.json:
        print(json.dumps(res))


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"curvlinops": "curvlinops-for-pytorch", "hessian_eigenthings": "hessian-eigenthings"}
    try:
        return version(dist[module])
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    main()
