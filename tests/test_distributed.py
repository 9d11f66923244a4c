"""hesslib.distributed on two real processes (gloo, CPU, loopback only).

One pair of spawned ranks runs every distributed computation, the clear-error cases and, last,
a rank that raises; the parent compares their results with single-process hesslib in float64.
A second test runs the command of book/scaling_out.md through torchrun.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import hesslib as hl
from hesslib.distributed import cli
from hesslib.distributed import comm as hd
from hesslib.distributed import ops as hds
from hesslib.nets import transformer as tr
from hesslib.spectral import files as spectra_io
from hesslib.spectral.krylov import block_lanczos_all, lanczos

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 20  # process-group timeout inside the ranks
JOIN_S = 50  # the parent gives up on the ranks after this long
N, D, M, C = 23, 5, 3, 4  # N and P = m(d + C) = 27 are odd: uneven shards of samples and columns
SLQ = dict(num_steps=12, num_probes=3, seed=7)  # 3 probes on 2 ranks: uneven too
BSLQ = dict(num_steps=4, num_probes=3, seed=8)


def _problem(m: int = M, seed: int = 0):
    data = hl.gaussian_data(N, D, C, seed=seed, device="cpu")
    net = hl.one_hidden_net(D, m, C, seed=seed + 1, device="cpu")
    return net, data.X, data.y


def _tiny_gpt():
    tokens, alphabet = tr.char_tokens(tr.zen_text())
    data = tr.token_windows(tokens, 3, num=9, vocab_size=len(alphabet), device="cpu")
    return tr.gpt(len(alphabet), context=3, width=4, seed=3, device="cpu"), data.X, data.y


def _probe_block(P: int, k: int = 3) -> torch.Tensor:
    return torch.randn(P, k, generator=torch.Generator().manual_seed(11), dtype=torch.float64)


def _error(fn) -> str:
    try:
        fn()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def _worker(rank: int, world_size: int, port: int, outdir: str) -> None:
    out: dict = {}
    path = f"{outdir}/rank{rank}.pt"
    try:
        _stages(rank, world_size, port, out)
    except Exception:
        out["fatal"] = traceback.format_exc()
    torch.save(out, path)
    if "fatal" in out:
        return
    # last: rank 1 fails before a collective; rank 0 must get a clear error, not hang
    if rank == 1:
        raise RuntimeError("rank 1 fails on purpose")
    t0 = time.perf_counter()
    net, X, y = _problem()
    out["crash"] = _error(lambda: hd.distributed_hvp(net, X, y, _probe_block(27)))
    out["crash_s"] = time.perf_counter() - t0
    torch.save(out, path)


def _stages(rank: int, world_size: int, port: int, out: dict) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        GLOO_SOCKET_IFNAME="lo",
    )
    torch.set_num_threads(1)
    hd.init_distributed(timeout=timedelta(seconds=TIMEOUT_S))
    out["backend"] = torch.distributed.get_backend()
    net, X, y = _problem()
    rows = hd.shard_range(N)
    out["shard"] = (rows.start, rows.stop)
    f_r, theta = hd.sharded_loss(net, X, y)
    out["loss"] = hd.all_reduce_sum(f_r(theta).detach().clone())
    V = _probe_block(theta.numel())
    out["hvp"] = hd.distributed_hvp(net, X, y, V)
    out["hvp1"] = hd.distributed_hvp(net, X, y, V[:, 0])
    mv = hd.DataParallelMatvec(f_r, theta, chunk_size=2)
    out["hvp_chunked"], out["bytes"] = mv(V), mv.bytes_reduced
    g, gX, gy = _tiny_gpt()
    out["gpt_hvp"] = hd.distributed_hvp(
        g, gX, gy, _probe_block(sum(p.numel() for p in g.parameters()), 2)
    )
    for mode in hd.MODES:
        out[f"H_{mode}"] = hds.distributed_full_hessian(net, X, y, mode=mode, chunk_size=5)
        stats: dict = {}
        s = hds.distributed_slq(net, X, y, mode=mode, stats=stats, **SLQ)
        out[f"slq_{mode}"] = (s.nodes, s.weights, stats)
        bs = hds.distributed_lanczos(net, X, y, mode=mode, layout=net.layout(), **BSLQ)
        out[f"bslq_{mode}"] = [(r.nodes, r.weights) for r in bs]
    # clear errors, raised on every rank alike; the group stays usable afterwards
    one = hl.gaussian_data(1, D, C, seed=0, device="cpu")
    out["err_world"] = _error(lambda: hd.distributed_hvp(net, one.X, one.y, V))
    out["err_probes"] = _error(
        lambda: hds.distributed_slq(net, X, y, mode="probe", num_steps=3, num_probes=1, seed=0)
    )
    out["err_shape"] = _error(lambda: hd.distributed_hvp(*_problem(m=M + rank), V[:27]))
    out["err_params"] = _error(lambda: hds.distributed_slq(*_problem(seed=rank), **SLQ))
    out["err_block"] = _error(lambda: mv(V[:, : 2 + rank]))
    out["err_memory"] = _error(
        lambda: hds.distributed_full_hessian(net, X, y, max_bytes=None if rank == 0 else 10)
    )
    out["after_errors"] = hd.distributed_hvp(net, X, y, V)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, reference):  # reference first: the forked ranks start warmed up
    outdir = tmp_path_factory.mktemp("ranks")
    # fork: the ranks inherit the imported (and warmed-up) torch instead of importing it again
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, str(outdir))) for r in range(2)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + JOIN_S
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert not hung, f"ranks {hung} still running after {JOIN_S} s: a collective hung"
    res = [torch.load(outdir / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for r, out in enumerate(res):
        assert "fatal" not in out, f"rank {r} failed:\n{out['fatal']}"
    return res, [p.exitcode for p in procs]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def reference(page_run):  # the torchrun command starts first and overlaps with the rest
    net, X, y = _problem()
    f, theta = hl.flat_loss(net, X, y, "ce")
    ref = {
        "loss": f(theta).detach(),
        "H": hl.full_hessian(f, theta),
        "hvp": hl.hvp(f, theta, _probe_block(theta.numel())),
    }

    def mv(V):
        return hl.hvp(f, theta, V)

    ref["slq"] = lanczos(mv, theta.numel(), **SLQ)
    ref["bslq"] = block_lanczos_all(mv, net.layout(), theta.numel(), **BSLQ)
    g, gX, gy = _tiny_gpt()
    gf, gtheta = hl.flat_loss(g, gX, gy, "ce")
    ref["gpt_hvp"] = hl.hvp(gf, gtheta, _probe_block(gtheta.numel(), 2))
    return ref


def test_shards_are_uneven_and_cover_the_data(ranks, reference):
    (r0, r1), _ = ranks
    assert r0["backend"] == "gloo"
    assert r0["shard"] == (0, 12) and r1["shard"] == (12, 23)
    for r in (r0, r1):  # Σ_r (n_r/N) mean_r = the full-data mean, exactly up to round-off
        assert _rel(r["loss"], reference["loss"]) < 1e-12


def test_hvp_equals_single_process(ranks, reference):
    (r0, r1), _ = ranks
    for r in (r0, r1):
        assert _rel(r["hvp"], reference["hvp"]) < 1e-10
        assert _rel(r["hvp1"], reference["hvp"][:, 0]) < 1e-10
        assert _rel(r["hvp_chunked"], reference["hvp"]) < 1e-10
        assert _rel(r["gpt_hvp"], reference["gpt_hvp"]) < 1e-10  # (N·T,) targets sharded
        assert r["bytes"] == 27 * 3 * 8  # one all_reduce of the (P, k) float64 block
    assert torch.equal(r0["hvp"], r1["hvp"])


def test_full_hessian_gathered_on_rank0(ranks, reference):
    (r0, r1), _ = ranks
    for mode in hd.MODES:
        assert r1[f"H_{mode}"] is None
        assert r0[f"H_{mode}"].shape == (27, 27)
        assert _rel(r0[f"H_{mode}"], reference["H"]) < 1e-10


def test_slq_equals_single_process_and_is_identical_on_ranks(ranks, reference):
    (r0, r1), _ = ranks
    ref, bref = reference["slq"], reference["bslq"]
    for mode in hd.MODES:
        n0, w0, stats = r0[f"slq_{mode}"]
        n1, w1, _ = r1[f"slq_{mode}"]
        assert torch.equal(n0, n1) and torch.equal(w0, w1)  # the same on every rank
        assert _rel(n0, ref.nodes) < 1e-10 and float((w0 - ref.weights).abs().max()) < 1e-10
        for (bn, bw), (cn, cw), rb in zip(
            r0[f"bslq_{mode}"], r1[f"bslq_{mode}"], bref, strict=True
        ):
            assert torch.equal(bn, cn) and torch.equal(bw, cw)
            assert _rel(bn, rb.nodes) < 1e-10 and float((bw - rb.weights).abs().max()) < 1e-10
        assert stats["world_size"] == 2 and stats["matvec_calls"] == SLQ["num_steps"]
    assert r0["slq_data"][2]["bytes_reduced"] == SLQ["num_steps"] * 27 * 3 * 8
    assert r0["slq_probe"][2]["bytes_reduced"] == 0


def test_clear_errors_on_every_rank(ranks):
    (r0, r1), _ = ranks
    for r in (r0, r1):
        assert r["err_world"].startswith("ValueError") and "world size 2 exceeds" in r["err_world"]
        assert "world size 2 exceeds the 1 probes" in r["err_probes"]
        assert r["err_shape"].startswith("ValueError") and "differs across ranks" in r["err_shape"]
        assert "(27,)" in r0["err_shape"] and "(36,)" in r0["err_shape"]
        assert "parameters differ across ranks" in r["err_params"]
        assert "HVP block shape" in r["err_block"] and "(27, 2, 8)" in r["err_block"]
        assert _rel(r["after_errors"], r0["hvp"]) == 0.0  # the group still works
    assert r1["err_memory"].startswith("MemoryError")
    assert r0["err_memory"].startswith("DistributedError")
    assert "rank 1 failed the memory check" in r0["err_memory"]


def test_a_failing_rank_stops_the_others_with_a_clear_error(ranks):
    (r0, _), exitcodes = ranks
    assert exitcodes == [0, 1]  # rank 1 raised; rank 0 returned normally with the error below
    assert r0["crash"].startswith("DistributedError")
    assert "Another rank has most likely failed" in r0["crash"]
    assert r0["crash_s"] < TIMEOUT_S + 5


def test_single_process_is_world_size_one():
    assert hd.rank_and_world_size() == (0, 1)
    net, X, y = _problem()
    f, theta = hl.flat_loss(net, X, y, "ce")
    V = _probe_block(theta.numel())
    assert torch.equal(hd.distributed_hvp(net, X, y, V), hl.hvp(f, theta, V))
    assert [len(hd.shard_range(23, rank=r, world_size=3)) for r in range(3)] == [8, 8, 7]
    with pytest.raises(ValueError, match="world size 4 exceeds the 3 samples"):
        hd.shard_range(3, rank=0, world_size=4)
    with pytest.raises(ValueError, match="mode must be one of"):
        hds.distributed_slq(net, X, y, mode="pipeline", **SLQ)


@pytest.mark.parametrize(
    "env, match",
    [
        ({"WORLD_SIZE": "0", "RANK": "0"}, "WORLD_SIZE must"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK must lie"),
        ({"WORLD_SIZE": "two", "RANK": "0"}, "an integer"),
    ],
)
def test_bad_world_sizes_are_refused(monkeypatch, env, match):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=match):
        hd.init_distributed()


@pytest.fixture(scope="module")
def page_run(tmp_path_factory):
    """Start the page's 2-process command at once; it runs while the other tests do."""
    page = (ROOT / "book" / "scaling_out.md").read_text(encoding="utf-8")
    cmds = re.findall(r"^torchrun .*--nproc-per-node 2 .*-m hesslib\.cli slq.*$", page, re.M)
    assert cmds, "book/scaling_out.md shows no 2-process torchrun command"
    argv = shlex.split(cmds[0])
    cwd = tmp_path_factory.mktemp("page")
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    # `torchrun` is `python -m torch.distributed.run`, run here with this interpreter
    cmd = [sys.executable, "-m", "torch.distributed.run", *argv[1:]]
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    yield proc, argv, cwd
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_the_scaling_out_page_command_runs_on_two_cpu_processes(page_run):
    proc, argv, cwd = page_run
    try:
        log, _ = proc.communicate(timeout=JOIN_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        log, _ = proc.communicate()
        pytest.fail(f"the page's torchrun command ran past {JOIN_S} s:\n{log[-3000:]}")
    assert proc.returncode == 0, log[-4000:]
    out = argv[argv.index("--out") + 1]
    saved = spectra_io.load_block_spectra(cwd / out)
    assert saved.settings["world_size"] == 2 and saved.settings["backend"] == "gloo"
    # the same computation on one process (and the CLI's default dtype: hl.nets.gpt builds its
    # parameters in the default dtype before casting them)
    torch.set_default_dtype(torch.float32)
    args = cli.build_parser().parse_args(argv[argv.index("slq") :])
    cfg = hl.nets.spectra_settings(args.model, args.profile)
    pb = hl.nets.spectra_problem(
        cfg, partition=args.partition, seed=args.seed, device="cpu", dtype=torch.float64
    )
    layout = pb.layout
    assert saved.names == layout.names and saved.sizes == layout.sizes
    f, theta = hl.flat_loss(pb.net, pb.data.X, pb.data.y, pb.loss)
    ref = block_lanczos_all(
        lambda V: hl.hvp(f, theta, V),
        layout,
        theta.numel(),
        num_steps=cfg.steps,
        num_probes=cfg.probes,
        seed=args.seed,
    )
    for got, want in zip(saved.results, ref, strict=True):
        assert _rel(got.nodes, want.nodes) < 1e-10
        assert float((got.weights - want.weights).abs().max()) < 1e-10
    assert len(saved.spectra()) == layout.num_blocks


# --- the command line and the rendezvous: refused early, reported in seconds ------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--timeout", "-1"], "argument --timeout: must be a number of seconds > 0"),
        (["--timeout", "nan"], "argument --timeout: must be a number of seconds > 0"),
        (["--rendezvous-timeout", "0"], "argument --rendezvous-timeout: must be a number"),
        (["--steps", "0"], "argument --steps: must be an integer >= 1"),
        (["--probes", "x"], "argument --probes: must be an integer >= 1"),
        (["--seed", "-1"], "argument --seed: must be an integer >= 0"),
        (["--out", "/nonexistent/dir/x.pt"], "the directory /nonexistent/dir does not exist"),
    ],
)
def test_cli_refuses_bad_arguments_before_any_work(monkeypatch, capsys, tmp_path, args, message):
    def never(*a, **k):
        raise AssertionError("the command started computing before checking its arguments")

    monkeypatch.setattr(cli, "init_distributed", never)
    monkeypatch.setattr(cli, "spectra_settings", never)
    with pytest.raises(SystemExit) as exc:
        cli.main(["slq", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_out_must_be_a_writable_file_name(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "init_distributed", lambda **k: (_ for _ in ()).throw(AssertionError))
    with pytest.raises(SystemExit):
        cli.main(["slq", "--out", str(tmp_path)])
    assert "is a directory, not a file name" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if not os.access(locked, os.W_OK):  # (root may write anywhere)
        with pytest.raises(SystemExit):
            cli.main(["slq", "--out", str(locked / "x.pt")])
        assert "is not writable" in capsys.readouterr().err


def test_init_distributed_refuses_non_positive_timeouts():
    with pytest.raises(ValueError, match="timeout must be a finite number > 0"):
        hd.init_distributed(timeout=-1)
    with pytest.raises(ValueError, match="rendezvous_timeout must be a finite number > 0"):
        hd.init_distributed(rendezvous_timeout=timedelta(seconds=0))


def _lonely_rank(rank: int, world_size: int, port: int, path: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        GLOO_SOCKET_IFNAME="lo",
        TORCH_CPP_LOG_LEVEL="FATAL",
    )
    t0 = time.perf_counter()
    err = _error(lambda: hd.init_distributed(rendezvous_timeout=2))
    torch.save({"error": err, "seconds": time.perf_counter() - t0}, path)


@pytest.mark.parametrize("rank", [0, 2])
def test_a_rank_that_never_starts_is_named_within_seconds(tmp_path, rank):
    """Only one of three ranks starts: it is told, in seconds, who is missing."""
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    path = str(tmp_path / "out.pt")
    proc = ctx.Process(target=_lonely_rank, args=(rank, 3, _free_port(), path))
    proc.start()
    proc.join(30)
    if proc.is_alive():
        proc.kill()
        pytest.fail("the lonely rank waited more than 30 s")
    out = torch.load(path, weights_only=False)
    assert out["error"].startswith("DistributedError"), out["error"]
    assert out["seconds"] < 15
    if rank == 0:  # rank 0 hosts the rendezvous: it knows who arrived
        assert "ranks [1, 2] did not start within 2 s (arrived: ranks [0])" in out["error"]
    else:
        assert (
            "could not reach the rendezvous" in out["error"] and "rank 0 hosts it" in out["error"]
        )
