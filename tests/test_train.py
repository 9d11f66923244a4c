"""Full-batch Adam: hand-written gradients equal autograd; trajectories equal torch.optim.Adam."""

from __future__ import annotations

import math

import pytest
import torch

import hesslib as hl
from hesslib.train.mlp_grad import MLPGrad


def _models(d, C):
    return {
        "linear": hl.linear_net(d, C, seed=1, device="cpu"),
        "one_hidden": hl.one_hidden_net(d, 4, C, seed=2, device="cpu"),
        "deep": hl.nets.deep_net(d, 6, C, depth=4, seed=3, device="cpu"),
    }


@pytest.fixture
def data():
    return hl.gaussian_data(40, 7, 5, seed=0, device="cpu")


@pytest.mark.parametrize("kind", ["linear", "one_hidden", "deep"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("chunk", [None, 7])
def test_mlp_gradient_matches_autograd(data, kind, loss, chunk):
    """Hand-written gradient, in one chunk of samples or in chunks of 7 (40 = 5·7 + 5)."""
    net = _models(data.d, data.num_classes)[kind]
    f, theta = hl.flat_loss(net, data.X, data.y, loss)
    t = theta.clone().requires_grad_(True)
    value = f(t)
    (ref,) = torch.autograd.grad(value, t)
    value = value.detach()
    grad_fn = MLPGrad([p.shape for p in net.parameters()], data.X, data.y, loss, chunk=chunk)
    g = torch.zeros_like(theta)
    out = grad_fn(theta.clone(), g)
    assert len(grad_fn.bounds) == (1 if chunk is None else 6)
    assert float((g - ref).abs().max()) < 1e-14 * max(1.0, float(ref.abs().max()))
    assert abs(float(out) - float(value)) < 1e-13


@pytest.mark.parametrize("kind", ["one_hidden", "deep"])
def test_trajectory_equals_torch_adam(data, kind):
    """float64, cosine schedule with warm-up: same iterates as torch.optim.Adam + autograd."""
    net = _models(data.d, data.num_classes)[kind]
    steps, lr = 25, 0.05
    res = hl.train_adam(
        net,
        data.X,
        data.y,
        steps=steps,
        lr=lr,
        schedule="cosine",
        warmup=3,
        checkpoints=[steps],
        dtype=torch.float64,
        progress=False,
    )
    model = _models(data.d, data.num_classes)[kind]
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=False)
    lrs = hl.train.lr_schedule(lr, steps, schedule="cosine", warmup=3)
    ref_losses = []
    for t in range(steps):
        for group in opt.param_groups:
            group["lr"] = float(lrs[t])
        opt.zero_grad()
        value = hl.core.cross_entropy(model(data.X), data.y)
        ref_losses.append(float(value))
        value.backward()
        opt.step()
    final = torch.nn.utils.parameters_to_vector(res.at(steps).model.parameters())
    expected = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    assert float((final - expected).abs().max()) < 1e-12
    assert torch.allclose(
        res.losses[:steps], torch.tensor(ref_losses, dtype=torch.float64), rtol=0, atol=1e-12
    )
    assert res.method == "mlp"


def test_autograd_path_equals_mlp_path(data):
    net = _models(data.d, data.num_classes)["one_hidden"]
    kw = dict(steps=15, lr=0.03, loss="mse", dtype=torch.float64, progress=False)
    a = hl.train_adam(net, data.X, data.y, method="mlp", **kw)
    b = hl.train_adam(net, data.X, data.y, method="autograd", **kw)
    assert b.method == "autograd"
    assert torch.allclose(a.losses, b.losses, rtol=0, atol=1e-13)


def test_checkpoints_callback_and_untouched_model(data):
    net = _models(data.d, data.num_classes)["one_hidden"]
    before = net.W.detach().clone()
    seen = []

    def cb(step, model):
        seen.append((step, model.W.dtype))
        return float(hl.core.cross_entropy(model(data.X), data.y))

    res = hl.train_adam(
        net,
        data.X,
        data.y,
        steps=30,
        lr=0.02,
        checkpoints=[30, 0, 7, 7],
        callback=cb,
        progress=False,
    )
    assert [c.step for c in res.checkpoints] == [0, 7, 30]
    assert seen == [(0, torch.float64), (7, torch.float64), (30, torch.float64)]
    assert torch.equal(net.W.detach(), before)
    assert torch.equal(res.at(0).model.W.detach(), before.to(torch.float32).to(torch.float64))
    for ck in res.checkpoints:
        assert ck.record == pytest.approx(ck.loss, abs=1e-12)
        # the float32 training loss at that step agrees with the float64 evaluation
        assert abs(float(res.losses[ck.step]) - ck.loss) < 1e-5
    assert res.losses.shape == (31,) and res.lrs.shape == (30,)
    assert res.checkpoints[-1].loss < res.checkpoints[0].loss
    with pytest.raises(ValueError, match="no checkpoint"):
        res.at(3)


def test_deterministic(data):
    net = _models(data.d, data.num_classes)["deep"]
    kw = dict(steps=20, lr=0.01, progress=False)
    a = hl.train_adam(net, data.X, data.y, **kw)
    b = hl.train_adam(net, data.X, data.y, **kw)
    assert torch.equal(a.losses, b.losses)


def test_learnable_labels_reach_low_loss():
    """Labels from a teacher of the same architecture: Adam drives the CE loss far down."""
    X = hl.gaussian_data(200, 10, 3, seed=5, device="cpu").X
    teacher = hl.one_hidden_net(10, 16, 3, seed=6, device="cpu")
    y = teacher(X).argmax(dim=1)
    student = hl.one_hidden_net(10, 16, 3, seed=7, device="cpu")
    res = hl.train_adam(student, X, y, steps=400, lr=0.02, progress=False)
    assert float(res.losses[-1]) < 0.1 * float(res.losses[0])


def test_lr_schedule():
    lrs = hl.train.lr_schedule(1.0, 100, schedule="cosine", min_lr=0.1)
    assert float(lrs[0]) == pytest.approx(1.0)
    assert float(lrs[50]) == pytest.approx(0.55, abs=1e-12)
    assert bool((lrs[1:] <= lrs[:-1]).all())
    w = hl.train.lr_schedule(2.0, 10, schedule="cosine", warmup=4)
    assert w[:4].tolist() == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert float(w[4]) == pytest.approx(2.0)
    c = hl.train.lr_schedule(0.3, 5)
    assert c.tolist() == [0.3] * 5
    assert float(w[-1]) == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 5 / 6)))


def test_checkpoint_steps():
    assert hl.train.checkpoint_steps(1000) == [0, 10, 250, 500, 1000]
    assert hl.train.checkpoint_steps(50) == [0, 1, 12, 25, 50]
    s = hl.train.checkpoint_steps(1000, (0.0, 1.0), extra_log=4)
    assert s == [0, 1, 10, 100, 1000]


def test_bad_inputs(data):
    net = _models(data.d, data.num_classes)["one_hidden"]
    with pytest.raises(ValueError, match="checkpoints"):
        hl.train_adam(net, data.X, data.y, steps=5, checkpoints=[6], progress=False)
    with pytest.raises(ValueError, match="lr"):
        hl.train_adam(net, data.X, data.y, steps=5, lr=-1.0, progress=False)
    with pytest.raises(ValueError, match="schedule"):
        hl.train_adam(net, data.X, data.y, steps=5, schedule="linear", progress=False)
    with pytest.raises(ValueError, match="loss"):
        hl.train_adam(net, data.X, data.y, steps=5, loss="hinge", progress=False)
    with pytest.raises(ValueError, match="method"):
        hl.train_adam(torch.nn.Linear(7, 5), data.X, data.y, steps=5, method="mlp", progress=False)
    with pytest.raises(TypeError, match="steps"):
        hl.train_adam(net, data.X, data.y, steps=2.5, progress=False)
    with pytest.raises(FloatingPointError, match="diverged"):
        hl.train_adam(net, data.X * 1e30, data.y, steps=3, lr=1e10, progress=False)


def test_any_module_uses_autograd(data):
    model = torch.nn.Sequential(torch.nn.Linear(7, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5))
    model = model.to(torch.float64)
    res = hl.train_adam(model, data.X, data.y, steps=30, lr=0.01, progress=False)
    assert res.method == "autograd"
    assert float(res.losses[-1]) < float(res.losses[0])


def test_speed_helpers(data):
    net = _models(data.d, data.num_classes)["one_hidden"]
    slow = hl.train.textbook_adam_speed(net, data.X, data.y, steps=5)
    fast, slow2 = hl.train.compare_adam_speed(net, data.X, data.y, steps=5, repeats=2)
    assert slow > 0 and fast > 0 and slow2 > 0
    with pytest.raises(ValueError, match="repeats"):
        hl.train.compare_adam_speed(net, data.X, data.y, repeats=0)


def test_threads_restored(data):
    net = _models(data.d, data.num_classes)["one_hidden"]
    before = torch.get_num_threads()
    seen = []
    hl.train_adam(
        net,
        data.X,
        data.y,
        steps=3,
        progress=False,
        checkpoints=[1],
        callback=lambda step, m: seen.append(torch.get_num_threads()),
    )
    assert seen == [1]  # a small problem runs single-threaded
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        hl.train_adam(net, data.X, data.y, steps=3, progress=False, threads=0)
    assert torch.get_num_threads() == before
