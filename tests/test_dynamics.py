"""The H_wv decomposition helpers of chapter 03 against hl.hwv_decomposition and autograd."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import hesslib as hl


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_residual_columns_match_decomposition(problem, loss):
    data, net = problem
    m, d = net.W.shape
    C = net.V.shape[0]
    W, V = net.W.detach(), net.V.detach()
    residual, _ = hl.hwv_decomposition(data.X, data.y, W, V, loss=loss)
    R = hl.chapters.dynamic_force.residual_columns(data.X, data.y, W, V, loss=loss)  # (m, d, C)
    blocks = residual.view(m, d, C, m)
    for k in range(m):
        assert torch.allclose(blocks[k, :, :, k], R[k], rtol=0, atol=1e-15)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_norms_and_snapshot(problem, loss):
    data, net = problem
    m, d = net.W.shape
    W, V = net.W.detach(), net.V.detach()
    n = hl.chapters.dynamic_force.hwv_norms(data.X, data.y, W, V, loss=loss)
    f, theta = hl.flat_loss(net, data.X, data.y, loss)
    H = hl.hessian_reference(f, theta)
    Pw = m * d
    residual, rest = hl.hwv_decomposition(data.X, data.y, W, V, loss=loss)
    assert n.total == pytest.approx(float(H[:Pw, Pw:].norm()), rel=1e-12)
    assert n.residual == pytest.approx(float(residual.norm()), rel=1e-12)
    assert n.rest == pytest.approx(float(rest.norm()), rel=1e-12)
    snap = hl.chapters.dynamic_force.hessian_snapshot(
        net, data.X, data.y, loss=loss, step=3, max_pixels=10_000
    )
    assert snap.step == 3 and snap.factor == 1
    assert snap.hwv.total == pytest.approx(n.total, rel=1e-12)
    assert snap.hwv.residual == pytest.approx(n.residual, rel=1e-12)
    assert snap.hwv.rest == pytest.approx(n.rest, rel=1e-9, abs=1e-12)
    assert snap.hwv.own_column_fraction == pytest.approx(n.own_column_fraction, rel=1e-12)
    assert np.allclose(snap.image, H.abs().numpy(), rtol=0, atol=1e-14)
    stats = hl.block_stats(H, net.layout(), group="V")
    assert snap.ratio_vv == pytest.approx(stats.rms_ratio, rel=1e-12)
    if m > 1:
        assert snap.ratio_ww == pytest.approx(hl.block_ratio(H, net.layout(), group="W"), rel=1e-12)
    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(t), t)
    assert snap.grad_norm == pytest.approx(float(g.norm()), rel=1e-12)
    assert snap.loss == pytest.approx(float(f(theta)), rel=1e-14)
    assert snap.norm_vv == pytest.approx(float(H[Pw:, Pw:].norm()), rel=1e-12)


def test_residual_vanishes_at_a_perfect_fit():
    """MSE with m >= N: choose V so that f(x_n) = e_{y_n} exactly; H_wv is then the rest alone."""
    N, d, m, C = 6, 5, 8, 3
    data = hl.gaussian_data(N, d, C, seed=4, device="cpu")
    net = hl.one_hidden_net(d, m, C, seed=5, device="cpu")
    A = torch.relu(data.X @ net.W.detach().T)  # (N, m), full row rank
    E = torch.nn.functional.one_hot(data.y, C).to(torch.float64)
    V = torch.linalg.lstsq(A, E).solution.T  # (C, m): A Vᵀ = E
    assert float((A @ V.T - E).abs().max()) < 1e-12
    n = hl.chapters.dynamic_force.hwv_norms(data.X, data.y, net.W.detach(), V, loss="mse")
    assert n.residual < 1e-12
    assert n.total == pytest.approx(n.rest, rel=1e-10)
    assert n.total > 1e-3


def test_one_column_structure_at_init_large_C():
    """At initialisation with many classes, almost all of H_wv sits in the own columns."""
    data = hl.gaussian_data(400, 30, 60, seed=0, device="cpu")
    net = hl.one_hidden_net(30, 4, 60, seed=1, device="cpu")
    n = hl.chapters.dynamic_force.hwv_norms(data.X, data.y, net.W.detach(), net.V.detach())
    assert n.own_column_fraction > 0.9
    assert n.rest < 0.5 * n.residual


def test_hwv_column_norms():
    m, d, C = 3, 4, 5
    blocks = torch.zeros(m, d, C, m, dtype=torch.float64)
    for k in range(m):
        blocks[k, :, :, k] = k + 1.0
    M = hl.chapters.dynamic_force.hwv_column_norms(blocks.reshape(m * d, C * m), m)
    assert torch.allclose(M, torch.diag(torch.tensor([1.0, 2.0, 3.0]) * (d * C) ** 0.5))
    with pytest.raises(ValueError, match="shape"):
        hl.chapters.dynamic_force.hwv_column_norms(torch.zeros(7, 9), 2)


def test_log_correlation_and_table():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    assert hl.core.log_correlation(x, 3 * x**2) == pytest.approx(1.0)
    assert hl.core.log_correlation(x, 1 / x) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="positive"):
        hl.core.log_correlation(x, -x)
    with pytest.raises(ValueError, match="same length"):
        hl.core.log_correlation(x, x[:3])
    data = hl.gaussian_data(30, 4, 3, seed=0, device="cpu")
    net = hl.one_hidden_net(4, 2, 3, seed=1, device="cpu")
    snaps = [
        hl.chapters.dynamic_force.hessian_snapshot(net, data.X, data.y, step=s) for s in (0, 5)
    ]
    table = hl.chapters.dynamic_force.snapshot_table(snaps)
    assert table["step"].tolist() == [0, 5]
    assert table["hwv"][0] == pytest.approx(snaps[0].hwv.total)


def test_snapshot_rejects_other_models():
    data = hl.gaussian_data(10, 3, 2, seed=0, device="cpu")
    with pytest.raises(TypeError, match="OneHiddenNet"):
        hl.chapters.dynamic_force.hessian_snapshot(
            hl.linear_net(3, 2, device="cpu"), data.X, data.y
        )


def test_snapshot_gif_and_html():
    from PIL import Image

    data = hl.gaussian_data(30, 4, 3, seed=0, device="cpu")
    net = hl.one_hidden_net(4, 2, 3, seed=1, device="cpu")
    snaps = [
        hl.chapters.dynamic_force.hessian_snapshot(net, data.X, data.y, step=s) for s in (0, 1, 2)
    ]
    gif = hl.plot.snapshot_gif(snaps, boundary=8, total_steps=2, size=1.5, dpi=40)
    with Image.open(io.BytesIO(gif)) as im:
        assert im.format == "GIF" and im.n_frames == 3 and im.size == (60, 60)
    html = hl.plot.gif_html(gif, alt="x", width=100).data
    assert html.startswith('<img src="data:image/gif;base64,') and 'width="100"' in html
    with pytest.raises(ValueError, match="empty"):
        hl.plot.snapshot_gif([])


def test_track_run_trace_snapshots_and_summary():
    data = hl.gaussian_data(40, 5, 4, seed=2, device="cpu")
    net = hl.one_hidden_net(5, 3, 4, seed=3, device="cpu")
    run = hl.chapters.dynamic_force.track_run(
        net, data.X, data.y, steps=20, lr=0.02, frames=(0.0, 0.25, 1.0), extra_log=4,
        progress=False,
    )  # fmt: skip
    assert [s.step for s in run.snapshots] == [0, 5, 20]
    assert set(run.trace["step"]) >= {0, 5, 20} and len(run.trace["step"]) > 3
    assert run.losses.shape == (21,) and run.losses[-1] < run.losses[0]
    W0, V0 = (p.detach().float().double() for p in (net.W, net.V))  # trained in float32
    ref = hl.chapters.dynamic_force.hwv_norms(data.X, data.y, W0, V0)
    first = run.snapshots[0]
    assert first.hwv.total == pytest.approx(ref.total, rel=1e-12)
    # the cheap trace (float32 residual term) agrees with the float64 snapshot
    k = list(run.trace["step"]).index(20)
    assert run.trace["residual"][k] == pytest.approx(run.snapshots[-1].hwv.residual, rel=1e-5)
    assert run.trace["loss"][k] == pytest.approx(run.snapshots[-1].loss, rel=1e-12)
    summary = hl.chapters.dynamic_force.run_summary(run)
    last = run.snapshots[-1]
    assert summary["residual_ratio"] == pytest.approx(last.hwv.residual / first.hwv.residual)
    assert summary["share_final"] == pytest.approx(last.hwv_share)
    total = (last.norm_ww**2 + last.norm_vv**2 + 2 * last.hwv.total**2) ** 0.5
    assert last.hwv_share == pytest.approx(last.hwv.total / total)
    # float32 Hessians give the same numbers to float32 precision, and net stays untouched
    run32 = hl.chapters.dynamic_force.track_run(
        net, data.X, data.y, steps=20, lr=0.02, dtype=torch.float32, progress=False
    )
    assert run32.snapshots[-1].hwv.total == pytest.approx(last.hwv.total, rel=1e-4)
    assert net.W.dtype == torch.float64


def test_teacher_labels_are_fitted_exactly_by_the_teacher():
    data = hl.gaussian_data(50, 6, 5, seed=0, device="cpu")
    y = hl.chapters.dynamic_force.teacher_labels(data.X, 3, 5, seed=9)
    teacher = hl.one_hidden_net(6, 3, 5, seed=9, device="cpu")
    assert y.shape == (50,) and y.dtype == torch.int64
    assert torch.equal(teacher(data.X).argmax(1), y)
    assert int(y.max()) < 5


def test_adam_speed_times_both_loops_on_the_same_threads():
    data = hl.gaussian_data(30, 4, 3, seed=0, device="cpu")
    net = hl.one_hidden_net(4, 2, 3, seed=1, device="cpu")
    t = hl.chapters.dynamic_force.adam_speed(net, data.X, data.y, steps=3, repeats=2)
    assert set(t) == {"train_adam", "textbook"}
    assert all(v.threads == 1 and len(v.seconds) == 2 and v.min > 0 for v in t.values())
    assert "this machine" in t["textbook"].label
