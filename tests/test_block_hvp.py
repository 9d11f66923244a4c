"""Block-diagonal HVPs (each block through its own part of the graph) against the dense Hessian."""

import pytest
import torch
from torch import nn

import hesslib as hl
from hesslib.core import block_hvp
from hesslib.nets import zoo
from hesslib.spectral.blockwise import hvp_matvec


def _blockdiag(H: torch.Tensor, spans) -> torch.Tensor:
    D = torch.zeros_like(H)
    for a, b in spans:
        D[a:b, a:b] = H[a:b, a:b]
    return D


def _reference(f, theta, spans, Z: torch.Tensor) -> torch.Tensor:
    """``D Z``: from the dense Hessian where it is small, else from full HVPs (``hl.hvp``) of
    each block's piece of ``Z``."""
    if theta.numel() <= 2000:
        return _blockdiag(hl.hessian_reference(f, theta), spans) @ Z
    out = torch.zeros_like(Z)
    for a, b in spans:
        E = torch.zeros_like(Z)
        E[a:b] = Z[a:b]
        out[a:b] = hl.hvp(f, theta, E)[a:b]
    return out


def _problem(model: str, partition: str = "module"):
    cfg = zoo.spectra_settings(model, "quick")
    prob = zoo.spectra_problem(cfg, partition=partition, dtype=torch.float64, device="cpu")
    f, theta = hl.flat_loss(prob.net, prob.data.X, prob.data.y, "ce")
    off = prob.layout.offsets
    return f, theta, prob.layout, [(int(off[i]), int(off[i + 1])) for i in range(len(off) - 1)]


@pytest.mark.parametrize("route", ["local", "full"])
@pytest.mark.parametrize(
    ("model", "partition"),
    [("gpt", "module"), ("gpt", "fine"), ("cnn", "module"), ("one_hidden", "fine")],
)
def test_matches_the_diagonal_blocks_of_the_dense_hessian(model, partition, route):
    f, theta, layout, spans = _problem(model, partition)
    mv = hl.block_diagonal_hvp(f, theta, layout)
    Z = torch.randn(theta.numel(), 3, generator=torch.Generator().manual_seed(1), dtype=theta.dtype)
    Z[:, 2] = 0  # a zero column gives a zero column
    Z[: spans[0][1], 1] = 0  # a column without the first block
    DZ = _reference(f, theta, spans, Z)
    block_hvp._FASTER.clear()
    first = mv(Z)  # measures both routes, keeps the faster
    assert len(block_hvp._FASTER) == 1
    key = next(iter(block_hvp._FASTER))
    assert block_hvp._FASTER[key] in ("local", "full")
    block_hvp._FASTER[key] = route  # the other route gives the same product
    out = mv(Z)
    torch.testing.assert_close(first, DZ, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(out, DZ, rtol=1e-9, atol=1e-11)
    assert not out[:, 2].any()
    torch.testing.assert_close(mv(Z[:, 0]), DZ[:, 0], rtol=1e-9, atol=1e-11)  # one vector


def test_blocks_across_tensors_and_rows_outside_every_block():
    data = hl.gaussian_data(12, 4, 3, seed=0, device="cpu")
    net = hl.one_hidden_net(4, 2, 3, seed=1, device="cpu")  # W (2, 4) = 8, V (3, 2) = 6
    f, theta = hl.flat_loss(net, data.X, data.y, "ce")
    spans = [(0, 3), (5, 11)]  # inside W; across W and V; rows 3:5 and 11:14 in no block
    D = _blockdiag(hl.hessian_reference(f, theta), spans)
    Z = torch.randn(14, 4, generator=torch.Generator().manual_seed(2), dtype=theta.dtype)
    for route in ("local", "full"):
        block_hvp._FASTER.clear()
        mv = hl.block_diagonal_hvp(f, theta, [slice(a, b) for a, b in spans])
        mv(Z)
        block_hvp._FASTER[next(iter(block_hvp._FASTER))] = route
        torch.testing.assert_close(mv(Z), D @ Z, rtol=1e-10, atol=1e-12)


class _Unused(nn.Module):
    """A one-hidden-layer net with one parameter the loss never sees."""

    def __init__(self):
        super().__init__()
        self.net = hl.one_hidden_net(4, 2, 3, seed=1, device="cpu")
        self.spare = nn.Parameter(torch.ones(2, dtype=torch.float64))

    def forward(self, X):
        return self.net(X)


def test_a_parameter_the_loss_does_not_use_has_a_zero_block():
    data = hl.gaussian_data(12, 4, 3, seed=0, device="cpu")
    f, theta = hl.flat_loss(_Unused(), data.X, data.y, "ce")
    spans = [(0, 2), (2, 10), (10, 16)]  # a module's own parameters come first: spare, W, V
    mv = block_hvp.block_diagonal_hvp(f, theta, [slice(a, b) for a, b in spans])
    Z = torch.ones(16, 2, dtype=torch.float64)
    out = mv(Z)
    H = torch.zeros(16, 16, dtype=torch.float64)
    H[2:, 2:] = hl.hessian_reference(*hl.flat_loss(f.model.net, data.X, data.y, "ce"))
    torch.testing.assert_close(out, _blockdiag(H, spans) @ Z, rtol=1e-10, atol=1e-12)
    assert not out[:2].any()


def test_blockwise_spectra_are_those_of_full_hvps():
    f, theta, layout, _ = _problem("gpt")
    res = [
        hl.block_slq(hvp_matvec(f, theta, blocks=blocks), layout, theta.numel(), num_steps=6,
                     num_probes=2, seed=3)
        for blocks in (layout, None)
    ]  # fmt: skip
    for a, b in zip(*res, strict=True):
        torch.testing.assert_close(a.nodes, b.nodes, rtol=1e-8, atol=1e-10)


def test_bad_input_is_refused_by_name():
    f, theta, layout, spans = _problem("cnn")
    P = theta.numel()
    with pytest.raises(TypeError, match="f must be"):
        hl.block_diagonal_hvp(lambda t: t.sum(), theta, layout)
    with pytest.raises(ValueError, match="blocks must be non-empty, increasing"):
        hl.block_diagonal_hvp(f, theta, [slice(0, 10), slice(5, 20)])
    with pytest.raises(ValueError, match="blocks must hold at least one"):
        hl.block_diagonal_hvp(f, theta, [])
    with pytest.raises(TypeError, match="blocks must be"):
        hl.block_diagonal_hvp(f, theta, [slice(0, 10, 2)])
    with pytest.raises(ValueError, match="blocks must be non-empty"):
        hl.block_diagonal_hvp(f, theta, [slice(0, P + 1)])
    mv = hl.block_diagonal_hvp(f, theta, layout)
    with pytest.raises(ValueError, match=r"Z must have shape"):
        mv(torch.ones(P + 1, 2, dtype=theta.dtype))
    with pytest.raises(TypeError, match="Z must have theta's dtype"):
        mv(torch.ones(P, 2, dtype=torch.float32))
    Z = torch.ones(P, 2, dtype=theta.dtype)
    Z[3, 1] = float("nan")
    with pytest.raises(ValueError, match="Z contains non-finite"):
        mv(Z)


def test_a_ranks_block_product_for_distributed_block_lanczos():
    from hesslib import distributed as hd

    f, theta, layout, spans = _problem("cnn")
    Z = torch.randn(theta.numel(), 5, generator=torch.Generator().manual_seed(4), dtype=theta.dtype)
    DZ = _reference(f, theta, spans, Z)
    slices = [slice(a, b) for a, b in spans]
    torch.testing.assert_close(hd.rank_matvec(f, theta, blocks=slices)(Z), DZ)
    torch.testing.assert_close(hd.rank_matvec(f, theta, chunk_size=2, blocks=slices)(Z), DZ)

    def shard(t):  # a shard's weighted loss, as sharded_loss returns it on several ranks
        return f(t) * 0.25

    shard.flat, shard.weight = f, 0.25
    torch.testing.assert_close(hd.rank_matvec(shard, theta, blocks=slices)(Z), 0.25 * DZ)
    full = hd.rank_matvec(shard, theta, chunk_size=3)(Z)  # no blocks: the full HVP
    torch.testing.assert_close(full, 0.25 * hl.hvp(f, theta, Z))


def test_a_point_changed_in_place_gets_a_new_graph():
    f, theta, layout, spans = _problem("cnn")
    mv = hl.block_diagonal_hvp(f, theta, layout)
    Z = torch.randn(theta.numel(), 2, generator=torch.Generator().manual_seed(5), dtype=theta.dtype)
    before = mv(Z)
    theta.mul_(1.5)
    after = mv(Z)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, _reference(f, theta, spans, Z))
