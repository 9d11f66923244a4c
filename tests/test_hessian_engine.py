"""The structured general path (linear head), its HVPs, the memory budget and the input checks.

``tests/test_hessian.py`` checks ``hl.full_hessian``/``hl.hvp`` against the reference on every
model family; this file checks *which* path runs and that it is right where it matters: the
head is found (or refused) as it should be, a wrong structured result cannot get through, the
chunk size comes from a budget that counts intermediates, and a Hessian that does not fit is
refused with the bytes of the result and of the work before anything large is allocated.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import hesslib as hl
from hesslib.core import head_hessian, linear_head, workspace


def _close(A: torch.Tensor, ref: torch.Tensor, rtol: float = 1e-12) -> None:
    err = float((A - ref).abs().max())
    assert err <= rtol * float(ref.abs().max()), f"max error {err:.3e}"


def _wide_problem(N=40, d=6, m=3, C=12, seed=0):
    """A one-hidden-layer net whose logits dominate (C ≫ m), as in the talk's setting."""
    data = hl.gaussian_data(N, d, C, seed=seed, device="cpu")
    net = hl.one_hidden_net(d, m, C, seed=seed + 1, device="cpu")
    return net, data.X, data.y


class _InOut(nn.Module):
    """Weights stored (in, out): ``tanh(X A) B`` — the head is ``a @ B``."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.A = nn.Parameter(torch.randn(4, 5, generator=g, dtype=torch.float64) / 2)
        self.B = nn.Parameter(torch.randn(5, 3, generator=g, dtype=torch.float64) / 2)

    def forward(self, X):
        return torch.tanh(X @ self.A) @ self.B


class _Tied(nn.Module):
    """The head weight is also the embedding: not a head the structure may use."""

    def __init__(self):
        super().__init__()
        self.E = nn.Parameter(torch.randn(3, 4, generator=torch.Generator().manual_seed(4)))

    def forward(self, X):
        return torch.tanh(X @ self.E.T @ self.E) @ self.E.T


class _Scaled(nn.Module):
    """Logits scaled after the last layer: ``2 (a Wᵀ)`` is no plain linear head."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))

    def forward(self, X):
        return 2 * self.lin(X)


def _sequential():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def _xy(N=9, d=4, C=3, seed=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, d, generator=g, dtype=torch.float64), torch.randint(C, (N,), generator=g)


# ------------------------------------------------------------------------------ head detection
def test_the_head_of_every_model_family_is_found(hessian_case):
    f, theta = hessian_case.flat_loss("ce")
    head = linear_head.find_linear_head(f, theta)
    expected = {"linear": "V", "one_hidden": "V", "deep": None, "cnn": "head.weight",
                "gpt": "head.weight"}[hessian_case.name.split("-")[0]]  # fmt: skip
    assert head is not None
    assert head.weight == (expected or hessian_case.model.weight_names[-1])
    assert head.num_rows * head.num_outputs == f.logits(theta).numel()


@pytest.mark.parametrize(
    "model, weight, bias, out_in",
    [(_sequential, "2.weight", "2.bias", True), (_InOut, "B", None, False)],
)
def test_head_with_bias_and_in_out_layout(model, weight, bias, out_in):
    X, y = _xy()
    f, theta = hl.flat_loss(model(), X, y, "ce")
    head = linear_head.find_linear_head(f, theta)
    assert (head.weight, head.bias, head.out_in) == (weight, bias, out_in)
    for loss in ("ce", "mse"):
        f, theta = hl.flat_loss(model(), X, y, loss)
        ref = hl.hessian_reference(f, theta)
        _close(hl.full_hessian(f, theta), ref)
        V = torch.randn(theta.numel(), 3, generator=torch.Generator().manual_seed(1))
        _close(head_hessian.head_terms(f, theta).hvp(V), ref @ V)


@pytest.mark.parametrize("model", [_Tied, _Scaled])
def test_no_head_falls_back_to_hvp_columns(model):
    X, y = _xy()
    f, theta = hl.flat_loss(model().double(), X, y, "ce")
    assert linear_head.find_linear_head(f, theta) is None
    _close(hl.full_hessian(f, theta), hl.hessian_reference(f, theta))


def test_body_whose_rows_interact_batch_statistics():
    """The body may couple the rows (a CNN normalised with batch statistics): only the head
    and the loss are per row."""
    data = hl.nets.digits_data(num=6, seed=31, device="cpu", dtype=torch.float64)
    net = hl.nets.small_cnn(channels=(2, 2, 2), seed=32, device="cpu", normalize=True)
    f, theta = hl.flat_loss(net, data.X, data.y, "ce")
    assert linear_head.find_linear_head(f, theta) is not None
    _close(hl.full_hessian(f, theta), hl.hessian_reference(f, theta))


def test_a_wrong_structured_result_is_caught_by_the_probe(monkeypatch):
    net, X, y = _wide_problem()
    f, theta = hl.flat_loss(net, X, y, "ce")
    ref = hl.hessian_reference(f, theta)
    monkeypatch.setattr(head_hessian.HeadTerms, "hessian", lambda self, **kw: torch.zeros_like(ref))
    with pytest.warns(UserWarning, match="probe check"):
        H = hl.full_hessian(f, theta)
    _close(H, ref)


# ------------------------------------------------------------------------- structured HVPs
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_head_hvp_where_logits_dominate(loss):
    net, X, y = _wide_problem()
    f, theta = hl.flat_loss(net, X, y, loss)
    ref = hl.hessian_reference(f, theta)
    V = torch.randn(theta.numel(), 5, generator=torch.Generator().manual_seed(2))
    assert hl.core.hessian._state(f, theta)["head_hvp"]  # the structured HVP is the one used
    _close(hl.hvp(f, theta, V), ref @ V)
    _close(hl.hvp(f, theta, V[:, 0]), ref @ V[:, 0])
    _close(hl.full_hessian(f, theta, method="hvp"), ref)


def test_float32_general_path_matches_float64():
    net, X, y = _wide_problem()
    net32 = hl.OneHiddenNet(net.W.detach().float(), net.V.detach().float())
    f, theta = hl.flat_loss(net, X, y, "ce")
    f32, theta32 = hl.flat_loss(net32, X.float(), y, "ce")
    H32 = hl.full_hessian(f32, theta32)
    assert H32.dtype == torch.float32
    _close(H32.double(), hl.closed_form_hessian(net, X, y, loss="ce"), rtol=1e-5)


def test_hvp_reuses_its_state_until_theta_changes():
    net, X, y = _wide_problem()
    f, theta = hl.flat_loss(net, X, y, "ce")
    v = torch.randn(theta.numel())
    first = hl.hvp(f, theta, v)
    state = hl.core.hessian._state(f, theta)
    assert hl.core.hessian._state(f, theta) is state
    theta.mul_(1.5)  # in place: the cached terms belong to the old point
    after = hl.hvp(f, theta, v)
    assert not torch.allclose(first, after)
    _close(after, hl.hessian_reference(f, theta) @ v)


@pytest.mark.parametrize("family", ["gpt", "cnn"])
def test_the_three_batched_hvps_agree_and_the_fastest_is_remembered(family):
    from hesslib.core import hessian, hvp_methods
    from hesslib.nets import zoo

    cfg = zoo.spectra_settings(family, "quick")
    prob = zoo.spectra_problem(cfg, dtype=torch.float64, device="cpu")
    f, theta = hl.flat_loss(prob.net, prob.data.X, prob.data.y, "ce")
    V = torch.randn(theta.numel(), 5, generator=torch.Generator().manual_seed(0), dtype=theta.dtype)
    ref = hvp_methods.reverse_over_reverse(*hvp_methods.gradient_graph(f, theta))(V)
    for make in (hvp_methods.forward_over_reverse, hvp_methods.vjp_of_grad):
        _close(make(f, theta)(V), ref)
    key = hvp_methods.signature(f, theta)
    hvp_methods.FASTEST.pop(key, None)
    _close(hl.hvp(f, theta, V), ref)  # tunes: measures the three, keeps the fastest
    name, width = hvp_methods.FASTEST[key]
    assert name in ("rr", "vjp", "fwd") and width in (5, *hvp_methods.WIDTHS)
    g, theta2 = hl.flat_loss(prob.net, prob.data.X, prob.data.y, "ce")  # same architecture
    _close(hl.hvp(g, theta2, V), ref)
    assert hessian._state(g, theta2)["method"] == hvp_methods.FASTEST[key]


# -------------------------------------------------------------------------- memory budget
def test_chunk_size_comes_from_the_work_per_direction():
    k = workspace.plan_chunk(100, per_item=10, budget=1000, fixed=100, result=200, what="x")
    assert k == 70  # (1000 - 200 - 100) // 10
    assert workspace.plan_chunk(100, per_item=10, budget=1000, chunk_size=5, what="x") == 5
    with pytest.raises(MemoryError, match=r"needs 200 bytes .* for the result plus 110 bytes"):
        workspace.plan_chunk(100, per_item=10, budget=250, fixed=100, result=200, what="x")


def test_forward_bytes_counts_the_logits():
    net, X, y = _wide_problem(N=50, C=20)
    f, theta = hl.flat_loss(net, X, y, "ce")
    assert workspace.forward_bytes(f.logits, theta) >= 50 * 20 * 8


def test_a_small_budget_gives_smaller_chunks_not_a_failure(monkeypatch):
    net, X, y = _wide_problem()
    f, theta = hl.flat_loss(net, X, y, "ce")
    chunks = []
    real = workspace.plan_chunk

    def spy(*args, **kw):
        chunks.append(real(*args, **kw))
        return chunks[-1]

    monkeypatch.setattr(head_hessian, "plan_chunk", spy)
    P = theta.numel()
    free = head_hessian.head_terms(f, theta)
    per = 8 * (3 * P + 6 * 40 * (3 + 12)) + 8 * free.body_bytes
    H = hl.full_hessian(f, theta, max_bytes=P * P * 8 + 200_000 + 3 * per)
    assert min(chunks) < P  # the budget, not the column count, set the chunk
    _close(H, hl.hessian_reference(f, theta))


def test_refusal_names_result_and_work_bytes_and_real_alternatives():
    net, X, y = _wide_problem(N=400, C=50)
    f, theta = hl.flat_loss(net, X, y, "ce")
    P = theta.numel()
    with pytest.raises(MemoryError) as info:
        hl.full_hessian(f, theta, max_bytes=P * P * 8 + 1000)
    msg = str(info.value)
    assert f"{P * P * 8:,} bytes" in msg and "for the result plus" in msg and "of work" in msg
    for name in re.findall(r"hesslib\.([\w.]+)", msg):
        obj = hl
        for part in name.split("."):
            obj = getattr(obj, part)  # every alternative named exists


def test_huge_hessian_is_refused_before_any_allocation():
    net = hl.linear_net(1000, 100, device="cpu")  # P = 100 000: 80 GB of result
    X, y = _xy(N=5, d=1000, C=100)
    with pytest.raises(MemoryError, match="80,000,000,000 bytes"):
        hl.model_hessian(net, X, y, "ce")


def test_default_arguments_fit_the_gaussian_setting_budget():
    """The talk's setting: the chunks the budget gives stay within it (no 80 GB request)."""
    data = hl.gaussian_data(5000, 500, 500, seed=0, device="cpu")
    net = hl.one_hidden_net(500, 8, 500, seed=1, device="cpu")
    f, theta = hl.flat_loss(net, data.X, data.y, "ce")
    terms = head_hessian.head_terms(f, theta)
    budget = 16 * 2**30
    per = terms.hvp_bytes()
    k = workspace.plan_chunk(8000, per_item=per, budget=budget, result=8000**2 * 8, what="H")
    assert 1 <= k and k * per + 8000**2 * 8 <= budget


# ----------------------------------------------------------------------------- bad input
def test_theta_of_the_wrong_length_names_theta():
    net, X, y = _wide_problem()
    f, theta = hl.flat_loss(net, X, y, "ce")
    with pytest.raises(ValueError, match=r"theta must have shape \(54,\)"):
        hl.full_hessian(f, theta[:-1])
    with pytest.raises(ValueError, match="theta must have shape"):
        hl.hvp(f, torch.cat([theta, theta]), torch.ones(2 * theta.numel()))


def test_non_finite_inputs_are_refused():
    net, X, y = _wide_problem()
    Xn = X.clone()
    Xn[0, 0] = float("nan")
    with pytest.raises(ValueError, match="X contains non-finite"):
        hl.model_hessian(net, Xn, y, "ce")
    with torch.no_grad():
        net.W[0, 0] = float("inf")
    with pytest.raises(ValueError, match="parameters contain non-finite"):
        hl.model_hessian(net, X, y, "ce")


def test_bad_method_and_vector_shapes():
    net, X, y = _wide_problem()
    f, theta = hl.flat_loss(net, X, y, "ce")
    with pytest.raises(ValueError, match="method must be one of"):
        hl.full_hessian(f, theta, method="magic")
    with pytest.raises(ValueError, match="v must have shape"):
        hl.hvp(f, theta, torch.ones(3))
    with pytest.raises(ValueError, match="loss must be"):
        hl.flat_loss(net, X, y, "hinge")


# ------------------------------------------------------------------ CUDA only (make gpu-check)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_cuda_general_path_and_hvps_match_the_cpu(loss):
    net, X, y = _wide_problem()
    f, theta = hl.flat_loss(net, X, y, loss)
    H = hl.full_hessian(f, theta)
    net_gpu = hl.one_hidden_net(6, 3, 12, seed=1, device="cuda")
    fg, tg = hl.flat_loss(net_gpu, X.cuda(), y.cuda(), loss)
    assert tg.is_cuda and torch.equal(tg.cpu(), theta)
    _close(hl.full_hessian(fg, tg).cpu(), H)
    V = torch.randn(theta.numel(), 4, generator=torch.Generator().manual_seed(0))
    _close(hl.hvp(fg, tg, V.cuda()).cpu(), H @ V)


@cuda
def test_cuda_budget_reads_free_gpu_memory():
    free = hl.core.available_memory("cuda")
    assert 0 < free <= torch.cuda.get_device_properties(0).total_memory
    with pytest.raises(MemoryError, match="on cuda"):
        hl.core.check_memory(2 * free, what="x", device="cuda")


def test_a_remembered_pass_width_splits_the_block():
    from hesslib.core import hessian, hvp_methods
    from hesslib.nets import zoo

    cfg = zoo.spectra_settings("cnn", "quick")
    prob = zoo.spectra_problem(cfg, dtype=torch.float64, device="cpu")
    f, theta = hl.flat_loss(prob.net, prob.data.X, prob.data.y, "ce")
    V = torch.randn(
        theta.numel(), 19, generator=torch.Generator().manual_seed(0), dtype=theta.dtype
    )
    ref = hvp_methods.reverse_over_reverse(*hvp_methods.gradient_graph(f, theta))(V)
    key = hvp_methods.signature(f, theta)
    builders = {
        "rr": lambda g, t: hvp_methods.reverse_over_reverse(*hvp_methods.gradient_graph(g, t)),
        "vjp": hvp_methods.vjp_of_grad,
        "fwd": hvp_methods.forward_over_reverse,
    }
    try:
        for name, build in builders.items():
            hvp_methods.FASTEST[key] = (name, 8)  # 19 columns: passes of 8, 8 and 3
            g, theta2 = hl.flat_loss(prob.net, prob.data.X, prob.data.y, "ce")
            inner, widths = build(g, theta2), []
            hessian._state(g, theta2)["methods"] = {
                name: lambda W, inner=inner, widths=widths: widths.append(W.shape[1]) or inner(W)
            }
            _close(hl.hvp(g, theta2, V), ref)
            assert widths == [8, 8, 3]
    finally:
        hvp_methods.FASTEST.pop(key, None)


def _gpt_quick():
    from hesslib.nets import zoo

    cfg = zoo.spectra_settings("gpt", "quick")
    prob = zoo.spectra_problem(cfg, dtype=torch.float64, device="cpu")
    return prob.net, prob.data.X, prob.data.y


def test_long_runs_move_to_the_linearized_hvp(monkeypatch):
    from hesslib.core import hvp_methods as hm

    net, X, y = _gpt_quick()
    f, theta = hl.flat_loss(net, X, y, "ce")
    V = torch.randn(theta.numel(), 6, generator=torch.Generator().manual_seed(0), dtype=theta.dtype)
    ref = hm.reverse_over_reverse(*hm.gradient_graph(f, theta))(V)
    _close(hm.linearized(f, theta)(V), ref)
    sig = hm.signature(f, theta)
    monkeypatch.setitem(hm.FASTEST, sig, ("fwd", 6))
    # measured before on this architecture: tracing costs 1 s, saves 0.1 s a direction
    monkeypatch.setitem(hm.LINEARIZED, sig, (1.0, 0.1))
    _close(hl.hvp(f, theta, V), ref)  # 6 directions done: 0.6 s saved < 1 s, no switch yet
    state = hl.core.hessian._state(f, theta)
    assert state["method"] == ("fwd", 6) and state["done"] == 6
    _close(hl.hvp(f, theta, V), ref)  # 12 directions: 1.2 s >= 1 s, switch (ski rental)
    assert state["method"] == ("lin", 6)
    _close(hl.hvp(f, theta, V), ref)  # the traced HVP itself
    g, theta2 = hl.flat_loss(net, X, y, "ce")  # a new point starts on the tuned method again
    monkeypatch.setitem(hm.LINEARIZED, sig, (1e9, 0.1))  # tracing never pays
    for _ in range(3):
        _close(hl.hvp(g, theta2, V), ref)
    assert hl.core.hessian._state(g, theta2)["method"] == ("fwd", 6)


def test_an_architecture_is_tried_once_and_a_failed_trace_is_remembered(monkeypatch):
    from hesslib.core import hvp_methods as hm

    net, X, y = _gpt_quick()
    f, theta = hl.flat_loss(net, X, y, "ce")
    V = torch.randn(theta.numel(), 5, generator=torch.Generator().manual_seed(1), dtype=theta.dtype)
    ref = hm.reverse_over_reverse(*hm.gradient_graph(f, theta))(V)
    sig = hm.signature(f, theta)
    monkeypatch.setitem(hm.FASTEST, sig, ("rr", 5))
    monkeypatch.setattr(hm, "TRY_LINEARIZE_AFTER_S", 0.0)
    monkeypatch.delitem(hm.LINEARIZED, sig, raising=False)
    _close(hl.hvp(f, theta, V), ref)  # tried: measured against rr on these columns
    measured = hm.LINEARIZED[sig]
    state = hl.core.hessian._state(f, theta)
    assert measured is None or (measured[0] > 0 and measured[1] > 0)
    assert state["method"][0] == ("rr" if measured is None else "lin")
    _close(hl.hvp(f, theta, V), ref)

    def fails(*args):
        raise RuntimeError("view size is not compatible")

    g, theta2 = hl.flat_loss(net, X, y, "ce")
    monkeypatch.delitem(hm.LINEARIZED, sig)
    monkeypatch.setattr(hm, "linearized", fails)
    _close(hl.hvp(g, theta2, V), ref)
    assert hm.LINEARIZED[sig] is None  # remembered: not tried again on this architecture
    assert hl.core.hessian._state(g, theta2)["method"] == ("rr", 5)
