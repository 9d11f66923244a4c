"""Bad input gets a clear error naming the argument; the library half of the "hostile input"
issue's reproductions (closed forms, blocks, dtypes, random-matrix laws, JS distances, SLQ),
each ending in a clear error or the right answer. ``tests/test_fuzz.py`` tries every public
function; ``tests/test_book_cli.py``, ``test_cifar.py`` and ``test_distributed.py`` hold the
build, download and command-line reproductions."""

from __future__ import annotations

import re

import pytest
import torch

import hesslib as hl


@pytest.fixture
def small():
    data = hl.gaussian_data(8, 4, 3, seed=0, device="cpu")
    net = hl.one_hidden_net(4, 2, 3, seed=0, device="cpu")
    return data, net


def test_num_classes_below_two():
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        hl.gaussian_data(10, 3, 1)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        hl.one_hidden_net(3, 2, 1)


def test_wrong_shapes(small):
    data, net = small
    with pytest.raises(ValueError, match="X must have 2 dimensions"):
        hl.core.one_hidden_hessian(data.X[0], data.y, net.W.detach(), net.V.detach())
    with pytest.raises(ValueError, match=r"W must have shape \(m, 4\) to match X"):
        hl.core.one_hidden_hessian(data.X, data.y, net.W.detach()[:, :3], net.V.detach())
    with pytest.raises(ValueError, match=r"y must have shape \(8,\)"):
        hl.core.one_hidden_hessian(data.X, data.y[:5], net.W.detach(), net.V.detach())


def test_labels_out_of_range(small):
    data, net = small
    y = data.y.clone()
    y[0] = 3
    with pytest.raises(ValueError, match=r"labels outside \[0, 3\)"):
        hl.core.one_hidden_hessian(data.X, y, net.W.detach(), net.V.detach())
    with pytest.raises(TypeError, match="integer class indices"):
        hl.core.one_hidden_hessian(data.X, data.y.double(), net.W.detach(), net.V.detach())


def test_non_finite_data(small):
    data, net = small
    X = data.X.clone()
    X[1, 2] = float("inf")
    with pytest.raises(ValueError, match="X contains non-finite"):
        hl.core.one_hidden_hessian(X, data.y, net.W.detach(), net.V.detach())


def test_unknown_loss_and_init(small):
    data, net = small
    with pytest.raises(ValueError, match="loss must be 'ce' or 'mse'"):
        hl.core.one_hidden_hessian(data.X, data.y, net.W.detach(), net.V.detach(), loss="hinge")
    with pytest.raises(ValueError, match="init must be one of"):
        hl.one_hidden_net(3, 2, 2, init="xavier")


def test_dtype_mismatch(small):
    data, net = small
    with pytest.raises(TypeError, match="W must have X's dtype"):
        hl.core.one_hidden_hessian(data.X, data.y, net.W.detach().float(), net.V.detach())


def test_seed_and_profile_errors():
    with pytest.raises(ValueError, match="seed must be non-negative"):
        hl.seed_everything(-1)
    with pytest.raises(ValueError, match="profile must be one of"):
        hl.resolve_profile("fast", {"quick": {"N": 1}, "default": {"N": 2}})
    with pytest.raises(ValueError, match="unknown setting 'M'"):
        hl.resolve_profile("quick", {"quick": {"N": 1}}, M=3)
    assert hl.resolve_profile("quick", {"quick": {"N": 1}}, N=None, verbose=False).N == 1


def test_determinism():
    a = hl.gaussian_data(20, 5, 4, seed=7, device="cpu")
    b = hl.gaussian_data(20, 5, 4, seed=7, device="cpu")
    assert torch.equal(a.X, b.X) and torch.equal(a.y, b.y)
    assert torch.equal(hl.one_hidden_net(5, 2, 4, seed=3).W, hl.one_hidden_net(5, 2, 4, seed=3).W)


def test_portable_randn_depends_only_on_the_generator():
    x = hl.core.portable_randn(3, 4, generator=hl.make_generator(5), dtype=torch.float32)
    ref = torch.randn(3, 4, generator=hl.make_generator(5), dtype=torch.float64)
    assert x.shape == (3, 4) and x.dtype == torch.float32
    assert torch.equal(x, ref.float())
    # the data of the Gaussian setting are such draws
    data = hl.gaussian_data(6, 2, 3, seed=5, device="cpu")
    ref = torch.randn(6, 2, generator=hl.make_generator(5), dtype=torch.float64)
    assert torch.equal(data.X, ref)


def test_single_thread_restores_the_thread_count():
    n = torch.get_num_threads()
    with hl.core.single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n
    with hl.core.single_thread("meta"):  # not the CPU: left alone
        assert torch.get_num_threads() == n


# --- the reproductions of the "hostile input" issue: each ends in a clear error or a right answer
@pytest.fixture
def layer():
    """``X (N, d)``, ``W (m, d)``, ``V (C, m)``, labels: a one-hidden-layer net's inputs."""
    data = hl.gaussian_data(6, 3, 4, seed=0, device="cpu")
    net = hl.one_hidden_net(3, 2, 4, seed=1, device="cpu")
    return data.X, net.W.detach(), net.V.detach(), data.y


@pytest.mark.parametrize("fn", ["hidden_layer_hessian", "output_layer_hessian", "hwv"])
def test_one_layer_closed_forms_check_their_inputs(layer, fn):
    X, W, V, y = layer

    def run(X=X, W=W, V=V, **kw):
        if fn == "hwv":
            return hl.hwv_decomposition(X, y, W, V, **kw)
        return getattr(hl, fn)(X, W, V, **kw)

    nan = X.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="X contains non-finite"):
        run(X=nan)
    with pytest.raises(ValueError, match=r"W must have shape \(m, 3\) to match X, got \(2, 2\)"):
        run(W=W[:, :2])
    with pytest.raises(ValueError, match=r"V must have shape \(C, 2\) to match W, got \(4, 1\)"):
        run(V=V[:, :1])
    with pytest.raises(TypeError, match="X must be a float32 or float64 tensor, got torch.float16"):
        run(X=X.half(), W=W.half(), V=V.half())
    with pytest.raises(TypeError, match="W must have X's dtype"):
        run(W=W.float())
    with pytest.raises(MemoryError, match="needs .* bytes"):
        run(max_bytes=100)


def test_huge_sizes_meet_the_memory_guard_not_the_allocator():
    """The issue's ``tried to allocate 75497472000000 bytes``: refused before any work."""
    X = torch.zeros(2, 3072, dtype=torch.float64)
    W = torch.zeros(1000, 3072, dtype=torch.float64)
    V = torch.zeros(10, 1000, dtype=torch.float64)
    with pytest.raises(MemoryError, match=r"needs 75,497,472,000,000 bytes"):
        hl.hidden_layer_hessian(X, W, V)
    with pytest.raises(MemoryError, match="H_vv"):
        hl.output_layer_hessian(X, W, torch.zeros(10**5, 1000, dtype=torch.float64)[:, :1000])
    with pytest.raises(MemoryError, match="Gram"):
        hl.lm_head_block_stats(10**6, 4, 3)


def test_empty_inputs_are_refused(layer):
    X, W, V, y = layer
    with pytest.raises(ValueError, match=r"X must not be empty"):
        hl.core.one_hidden_hessian(X[:0], y[:0], W, V)  # N = 0: was a ZeroDivisionError
    with pytest.raises(ValueError, match=r"W must not be empty"):
        hl.core.one_hidden_hessian(X, y, W[:0], V[:, :0])  # m = 0: was a 0x0 Hessian
    with pytest.raises(ValueError, match="X must have at least one row"):
        hl.Dataset(X[:0], y[:0], 4)


def test_model_hessian_refuses_non_finite_data(layer):
    X, _, _, y = layer
    net = hl.one_hidden_net(3, 2, 4, seed=1, device="cpu")
    nan = X.clone()
    nan[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"\bX\b.*non-finite"):
        hl.model_hessian(net, nan, y)


def test_memory_guard_recommends_functions_that_exist():
    with pytest.raises(MemoryError) as err:
        hl.core.check_memory(10**15, what="a test", max_bytes=1)
    named = re.findall(r"hesslib\.([\w.]+)", str(err.value))
    assert named
    for dotted in named:
        obj = hl
        for part in dotted.strip(".").split("."):
            obj = getattr(obj, part, None)
        assert obj is not None, f"the message recommends hesslib.{dotted}, which does not exist"


def test_full_hessian_names_a_theta_of_the_wrong_length(layer):
    X, _, _, y = layer
    net = hl.one_hidden_net(3, 2, 4, seed=1, device="cpu")
    f, theta = hl.flat_loss(net, X, y)
    with pytest.raises(ValueError, match=rf"theta must have .*\b{theta.numel()}\b"):
        hl.full_hessian(f, theta[:-1])


def test_block_norm_options_and_degenerate_matrices():
    layout = hl.BlockLayout.uniform([("a", 2, 2)])
    H = torch.eye(4, dtype=torch.float64)
    for bad in (-5, 0):  # -5 gave all-zero norms, 0 a raw range() error
        with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
            hl.block_norms(H, layout, chunk_rows=bad)
    with pytest.raises(TypeError, match="chunk_rows must be an int"):
        hl.block_norms(H, layout, chunk_rows=2.5)
    zero = torch.zeros(4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="H is zero"):  # was NaN
        hl.diag_mass_fraction(zero, layout)
    with pytest.raises(ValueError, match="diagonal blocks are zero"):
        hl.block_ratio(zero, layout)
    with pytest.raises(TypeError, match="layout must be a BlockLayout"):
        hl.block_norms(H, [2, 2])
    with pytest.raises(TypeError, match="sizes must be integers"):
        hl.BlockLayout((2.5, 1.5), ("a", "b"), (("g", 0, 2),))
    assert hl.diag_mass_fraction(H, layout) == 1.0


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16, torch.bfloat16])
def test_only_float32_and_float64_are_computed_in(layer, dtype):
    X, W, V, y = layer
    with pytest.raises(
        TypeError, match=rf"dtype must be torch.float32 or torch.float64, got {dtype}"
    ):
        hl.gaussian_data(4, 3, 2, dtype=dtype, device="cpu")  # int64 gave integer data
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        hl.lanczos(lambda v: v, 4, num_steps=2, dtype=dtype)  # float16 crashed inside eigh
    if dtype.is_floating_point:
        net = hl.one_hidden_net(3, 2, 4, seed=1, device="cpu")
        with pytest.raises(TypeError, match=f"X must be a float32 or float64 tensor, got {dtype}"):
            hl.closed_form_hessian(net.to(dtype), X.to(dtype), y)
        with pytest.raises(TypeError, match="W must be a float32 or float64 tensor"):
            hl.two_layer_hessian(W.to(dtype), V.to(dtype))


def test_random_matrix_laws_read_lists_in_double_precision():
    x = 1.99999999  # 2 - 1e-8: inside the support, where float32 would round it to 2.0
    ref = hl.semicircle_density(torch.tensor([x], dtype=torch.float64))
    assert float(ref) > 0
    assert torch.equal(hl.semicircle_density([x]), ref)
    assert torch.equal(hl.semicircle_density(x), ref[0])
    lam = [1.0, 1.0 + 1e-9]
    want = float(hl.core.gram.sample_second_moment(torch.tensor(lam, dtype=torch.float64),
                                                   gamma=0.5))  # fmt: skip
    assert hl.second_moment_prediction(lam, gamma=0.5) == want
    z = [0.5 + 1e-9j]
    exact = hl.stieltjes_empirical([1.0, 2.0], torch.tensor(z, dtype=torch.complex128))
    assert torch.equal(hl.stieltjes_empirical([1.0, 2.0], z), exact)
    with pytest.raises(ValueError, match="x must be array-like of real numbers"):
        hl.semicircle_density("abc")
    with pytest.raises(TypeError, match="sigma must be a finite number > 0"):
        hl.semicircle_density([0.0], sigma="1")


def test_js_distance_of_huge_or_tiny_densities_is_the_normalised_one():
    grid = torch.linspace(0.0, 1.0, 64, dtype=torch.float64)
    p, q = torch.exp(-((grid - 0.3) ** 2) * 30), torch.exp(-((grid - 0.6) ** 2) * 30)
    ref = hl.js_distance(p, q, grid)
    for scale_p, scale_q in ((1e308, 1e307), (1e-300, 1e-301), (1e300, 1e-300)):
        got = hl.js_distance(p * scale_p, q * scale_q, grid)  # was NaN near 1e308
        assert torch.isfinite(got) and float(abs(got - ref)) < 1e-12
    assert torch.equal(hl.js_distance(p * 4.0, q, grid), ref)  # ordinary scales: unchanged


def test_slq_density_refuses_a_negative_margin():
    res = hl.lanczos(lambda v: 2.0 * v, 3, num_steps=2, seed=0)
    with pytest.raises(ValueError, match="margin must be a finite number >= 0.0"):
        hl.slq_density(res, margin=-100)  # gave a decreasing grid
    with pytest.raises(ValueError, match="margin must be > 0 for a one-point spectrum"):
        hl.slq_density(res, margin=0.0)  # all nodes at 2: the grid would be one point
    two = hl.slq_density((torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]])), margin=0.0)
    assert float(two.grid[0]) == 0.0 and float(two.grid[-1]) == 1.0
