"""Block utilities on hand-checkable matrices."""

from __future__ import annotations

import math

import pytest
import torch

import hesslib as hl


def test_layout_offsets_groups_and_subset():
    lay = hl.BlockLayout.uniform([("W", 2, 3), ("V", 4, 2)])
    assert lay.sizes == (3, 3, 2, 2, 2, 2)
    assert lay.offsets == (0, 3, 6, 8, 10, 12, 14)
    assert lay.group("V") == (2, 6)
    assert lay.param_slice("V") == slice(6, 14)
    assert lay.subset("V").num_params == 8
    assert lay.names[0] == "W[0]" and lay.names[-1] == "V[3]"
    with pytest.raises(ValueError, match="group must be one of"):
        lay.group("U")


def test_block_norms_hand_computed():
    H = torch.zeros(5, 5)
    H[0:2, 0:2] = 1.0  # block (0,0): 4 ones -> norm 2
    H[2:5, 2:5] = 2.0  # block (1,1): 9 twos -> norm 6
    H[0, 4] = H[4, 0] = 3.0  # off-diagonal entries -> norm 3
    lay = hl.BlockLayout((2, 3), ("a", "b"), (("all", 0, 2),))
    norms = hl.block_norms(H, lay, chunk_rows=2)
    expected = torch.tensor([[2.0, 3.0], [3.0, 6.0]])
    assert torch.allclose(norms, expected)
    stats = hl.block_stats(H, lay)
    assert math.isclose(stats.rms_ratio, 3.0 / math.sqrt((4 + 36) / 2))
    assert math.isclose(stats.diag_mass, 40 / 58)
    assert math.isclose(hl.diag_mass_fraction(H, lay), 40 / 58)
    assert math.isclose(stats.max_ratio, 3.0 / 2.0)


def test_block_diagonal_matrix_has_zero_ratio():
    H = torch.block_diag(torch.eye(3), 2 * torch.eye(3), torch.ones(3, 3))
    lay = hl.BlockLayout.uniform([("all", 3, 3)])
    assert hl.block_ratio(H, lay) == 0.0
    assert hl.diag_mass_fraction(H, lay) == 1.0


def test_group_restriction_uses_sub_matrix():
    lay = hl.BlockLayout.uniform([("W", 2, 1), ("V", 2, 1)])
    H = torch.tensor([[1.0, 5, 0, 0], [5, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])
    assert hl.block_ratio(H, lay, group="W") == 5.0
    assert hl.block_ratio(H, lay, group="V") == 1.0


def test_bad_inputs():
    lay = hl.BlockLayout.uniform([("all", 2, 2)])
    with pytest.raises(ValueError, match=r"H must have shape \(4, 4\)"):
        hl.block_norms(torch.zeros(3, 3), lay)
    with pytest.raises(ValueError, match="non-finite"):
        hl.block_norms(torch.full((4, 4), float("nan")), lay)
    with pytest.raises(ValueError, match="diagonal blocks are zero"):
        hl.block_ratio(torch.zeros(4, 4), lay)
    with pytest.raises(ValueError, match="groups must tile"):
        hl.BlockLayout((1, 1), ("a", "b"), (("x", 1, 2),))


def test_model_layouts_match_parameter_count():
    net = hl.one_hidden_net(5, 3, 4, device="cpu")
    lay = net.layout()
    assert lay.num_params == sum(p.numel() for p in net.parameters())
    assert lay.num_blocks == 3 + 4
    lin = hl.linear_net(5, 4, device="cpu")
    assert lin.layout().num_blocks == 4
