"""Batched-probe SLQ against the one-probe-at-a-time loop, on matrix-free operators.

Probe mode (default): ``H v = (1/N) Xᵀ (λ ⊙ (X v))`` with ``X ∈ R^{N×d}`` — the diagonal
Hessian block of linear + CE (chapter 05). One probe per matvec (the loop of PyHessian-style
tools) streams ``X`` from memory twice per Lanczos step *per probe*; all probes through one
matvec turn those matrix–vector products into one matrix–matrix product per step.

Block mode (``--blocks``): the full linear + CE Hessian (``P = C·d``, ``C`` class blocks of size
``d``) as a matrix-free operator; every block's spectrum ``H_cc`` is estimated by
:func:`hesslib.spectral.block_lanczos_all` (one full matvec of width ``k·C`` per step) against
block after block (one per-block Lanczos with batched probes) and against the fully
sequential per-block, per-probe loop.

All variants use the same probes, so their nodes agree to rounding; accuracy against exact
eigenvalues (the operators are small enough to diagonalise) is reported for each.

    python benchmarks/bench_slq.py [--json] [--blocks] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from hesslib.spectral.density import slq_density
from hesslib.spectral.krylov import LanczosResult, block_lanczos_all, lanczos


def _device_name(device: torch.device) -> str:
    try:
        from hesslib.core.device import device_name

        return device_name(device)
    except Exception:
        return str(device)


def _timed(fn, repeats: int):
    """Best wall time of ``repeats`` runs and the last result (warm the operator up first)."""
    best, out = math.inf, None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _stack(results: list[LanczosResult]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([r.nodes for r in results]), torch.cat([r.weights for r in results])


def _density_error(nodes, weights, exact: torch.Tensor, sigma_rel: float) -> float:
    """L1 distance between the SLQ density and the exact eigenvalues blurred with the same σ."""
    spec = slq_density((nodes, weights), sigma_rel=sigma_rel, num_grid=1024)
    d = exact.numel()
    uniform = torch.full((1, d), 1 / d, dtype=torch.float64)
    ref = slq_density((exact[None].cpu(), uniform), grid=spec.grid, sigma=spec.sigma)
    return float(torch.trapezoid((spec.density - ref.density).abs(), spec.grid))


def _gram_operator(args, device):
    """``V ↦ (1/N) Xᵀ (λ ⊙ (X V))``: two passes over ``X`` per call, whatever the width."""
    g = torch.Generator().manual_seed(args.seed)
    N, d = args.N, args.d
    X = torch.randn(N, d, generator=g, dtype=torch.float64).to(device)  # (N, d)
    lam = torch.rand(N, generator=g, dtype=torch.float64).to(device)  # λ_n

    def matvec(V):  # (d, k) -> (d, k); rows-of-V layout: (k, N) then (k, d) GEMMs
        return (((V.T @ X.T) * lam) @ X).T / N

    def exact():
        return torch.linalg.eigvalsh((X.T * lam) @ X / N)

    return matvec, d, exact, "v -> (1/N) X^T (lam * (X v)), X: N x d"


def _hvp_operator(args, device):
    """Autograd HVP (``jvp`` of ``grad``, vmapped over probes) of mean CE of a linear model."""
    from torch.func import grad, jvp, vmap

    g = torch.Generator().manual_seed(args.seed)
    N, d, C = args.N, args.d, args.C
    X = torch.randn(N, d, generator=g, dtype=torch.float64).to(device)  # (N, d)
    y = torch.randint(0, C, (N,), generator=g).to(device)
    theta = (torch.randn(C * d, generator=g, dtype=torch.float64) / math.sqrt(d)).to(device)

    def loss(t):
        return torch.nn.functional.cross_entropy(X @ t.reshape(C, d).T, y)  # rows v_1..v_C

    def hvp1(v):
        return jvp(grad(loss), (theta,), (v,))[1]

    def matvec(V):  # (P, k) -> (P, k)
        return vmap(hvp1, in_dims=1, out_dims=1)(V)

    def exact():
        eye = torch.eye(C * d, dtype=torch.float64, device=device)
        H = torch.cat([matvec(eye[:, i : i + 256]) for i in range(0, C * d, 256)], dim=1)
        return torch.linalg.eigvalsh((H + H.T) / 2)

    return matvec, C * d, exact, "torch.func HVP of mean CE, linear model C x d"


def bench_probes(args, device) -> dict:
    g = torch.Generator().manual_seed(args.seed + 1)
    k, s = args.probes, args.steps
    build = _hvp_operator if args.operator == "hvp" else _gram_operator
    matvec, d, exact_fn, description = build(args, device)
    probes = (torch.randint(0, 2, (d, k), generator=g).double() * 2 - 1).to(device)
    matvec(probes), matvec(probes[:, :1])  # warm-up: allocations, BLAS initialisation

    def batched():
        return [lanczos(matvec, d, num_steps=s, probes=probes)]

    def sequential():
        return [lanczos(matvec, d, num_steps=s, probes=probes[:, i : i + 1]) for i in range(k)]

    t_b, res_b = _timed(batched, args.repeats)
    t_s, res_s = _timed(sequential, args.repeats)
    nb, wb = _stack(res_b)
    ns, ws = _stack(res_s)
    exact = exact_fn()
    spec_b = slq_density((nb, wb), sigma_rel=args.sigma_rel)
    spec_s = slq_density((ns, ws), grid=spec_b.grid, sigma_rel=args.sigma_rel)
    return {
        "mode": "probes",
        "operator": description,
        "setting": dict(
            N=args.N,
            d=args.d,
            C=args.C if args.operator == "hvp" else None,
            dim=d,
            num_probes=k,
            num_steps=s,
            sigma_rel=args.sigma_rel,
        ),  # fmt: skip
        "time_batched_s": t_b,
        "time_sequential_s": t_s,
        "speedup": t_s / t_b,
        "max_node_diff": float((nb - ns).abs().max()),
        "density_l1_batched_vs_sequential": float(
            torch.trapezoid((spec_b.density - spec_s.density).abs(), spec_b.grid)
        ),
        "density_l1_vs_exact_batched": _density_error(nb, wb, exact, args.sigma_rel),
        "density_l1_vs_exact_sequential": _density_error(ns, ws, exact, args.sigma_rel),
    }


def bench_blocks(args, device) -> dict:
    g = torch.Generator().manual_seed(args.seed)
    N, d, C, k, s = args.N, args.d, args.C, args.probes, args.steps
    P = C * d
    X = torch.randn(N, d, generator=g, dtype=torch.float64).to(device)  # (N, d)
    V0 = torch.randn(C, d, generator=g, dtype=torch.float64).to(device) / math.sqrt(d)
    p = torch.softmax(X @ V0.T, dim=1)  # (N, C) at a LeCun-initialised linear model

    def matvec_full(U):  # (P, K) -> (P, K), Hessian of mean CE in V, rows v_1..v_C
        K = U.shape[1]
        Z = (X @ U.reshape(C, d, K).permute(1, 0, 2).reshape(d, C * K)).reshape(N, C, K)
        A = p[:, :, None] * (Z - (p[:, :, None] * Z).sum(1, keepdim=True))  # (N, C, K)
        out = (X.T @ A.reshape(N, C * K)).reshape(d, C, K) / N  # (d, C, K)
        return out.permute(1, 0, 2).reshape(P, K)

    slices = [slice(c * d, (c + 1) * d) for c in range(C)]
    probes = [(torch.randint(0, 2, (d, k), generator=g).double() * 2 - 1).to(device)] * C
    matvec_full(torch.ones(P, k * C, dtype=torch.float64, device=device))  # warm-up

    def embed(c):
        def mv(V):  # the per-block matvec a block-after-block loop would use
            Z = torch.zeros(P, V.shape[1], dtype=V.dtype, device=V.device)
            Z[slices[c]] = V
            return matvec_full(Z)[slices[c]]

        return mv

    def together():
        return block_lanczos_all(matvec_full, slices, P, num_steps=s, probes=probes)

    def block_after_block():
        return [lanczos(embed(c), d, num_steps=s, probes=probes[c]) for c in range(C)]

    def per_probe_per_block():
        return [
            lanczos(embed(c), d, num_steps=s, probes=probes[c][:, i : i + 1])
            for c in range(C)
            for i in range(k)
        ]

    t_all, r_all = _timed(together, args.repeats)
    t_bab, r_bab = _timed(block_after_block, args.repeats)
    t_seq, r_seq = _timed(per_probe_per_block, args.repeats)
    n_all, w_all = _stack(r_all)
    n_bab, _ = _stack(r_bab)
    n_seq, _ = _stack(r_seq)
    errs = []
    for c in range(C):
        lam_c = p[:, c] * (1 - p[:, c])
        exact = torch.linalg.eigvalsh((X.T * lam_c) @ X / N)  # H_cc = (1/N) Xᵀ Λ_c X
        errs.append(_density_error(r_all[c].nodes, r_all[c].weights, exact, args.sigma_rel))
    return {
        "mode": "blocks",
        "operator": "linear + CE Hessian (closed-form matvec), C class blocks of size d",
        "setting": dict(N=N, d=d, C=C, P=P, num_probes=k, num_steps=s, sigma_rel=args.sigma_rel),
        "time_all_blocks_together_s": t_all,
        "time_block_after_block_s": t_bab,
        "time_per_block_per_probe_s": t_seq,
        "speedup_vs_block_after_block": t_bab / t_all,
        "speedup_vs_per_block_per_probe": t_seq / t_all,
        "max_node_diff_vs_block_after_block": float((n_all - n_bab).abs().max()),
        "max_node_diff_vs_per_block_per_probe": float((n_all - n_seq).abs().max()),
        "density_l1_vs_exact_mean_over_blocks": sum(errs) / C,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--blocks", action="store_true", help="blockwise spectra instead of probes")
    ap.add_argument("--operator", choices=["gram", "hvp"], default="gram", help="probe mode")
    ap.add_argument("--N", type=int, default=None, help="samples (default 8000; blocks 4000)")
    ap.add_argument("--d", type=int, default=None, help="input dimension (default 800; 200)")
    ap.add_argument("--C", type=int, default=10, help="classes = blocks (--blocks)")
    ap.add_argument("--probes", type=int, default=None, help="probes (default 16; blocks 4)")
    ap.add_argument("--steps", type=int, default=None, help="Lanczos steps (default 60; 30)")
    ap.add_argument("--sigma-rel", type=float, default=0.02, help="relative blur width")
    ap.add_argument("--repeats", type=int, default=1, help="timed repeats (best is reported)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    defaults = {"N": (8000, 4000), "d": (800, 200), "probes": (16, 4), "steps": (60, 30)}
    for key, (plain, blocks) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, blocks if args.blocks else plain)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out = bench_blocks(args, device) if args.blocks else bench_probes(args, device)
    out.update(
        torch=torch.__version__,
        device=_device_name(device),
        threads=torch.get_num_threads(),
    )
    if not args.json:
        for key, val in out.items():
            print(f"{key:>40}: {val:.4g}" if isinstance(val, float) else f"{key:>40}: {val}")
    else:
        for key in [k for k in out if k.startswith("speedup")]:
            print(f"{key}: {out[key]:.2f}x")
        print(json.dumps(out))


if __name__ == "__main__":
    main()
