"""Chapter 02 examples: exact Hessians (sympy) vs autograd, and the link rule of the graph."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import sympy as sp  # noqa: E402
import torch  # noqa: E402

import hesslib as hl  # noqa: E402


@pytest.mark.parametrize("key", hl.symbolic.TALK_EXAMPLES)
def test_talk_examples_exact_vs_autograd_and_links(key):
    ex = hl.symbolic.talk_example(key)
    for seed in range(3):
        chk = hl.symbolic.verify_example(ex, seed=seed)
        assert chk.max_err < 1e-12
        assert chk.pattern_ok  # links of the graph == entries that are not identically zero
        assert torch.allclose(chk.H_exact, chk.H_exact.T)


def test_siso_values():
    ex = hl.symbolic.talk_example("1")
    w, v = 1.5, -0.7
    H = hl.symbolic.hessian_at(ex, [w, v])
    expected = torch.tensor([[v**2, 2 * w * v], [2 * w * v, w**2]], dtype=torch.float64)
    assert torch.allclose(H, expected, atol=1e-15)


def test_simo_chains_zeros_are_missing_links():
    ex = hl.symbolic.talk_example("2-1")
    assert ex.labels == ("w_{1}", "w_{2}", "v_{1}", "v_{2}")
    H = hl.symbolic.symbolic_hessian(ex)
    w1, w2, v1, v2 = ex.symbols
    assert H[0, 1] == 0 and H[0, 3] == 0 and H[2, 3] == 0  # w1-w2, w1-v2, v1-v2: no link
    assert sp.simplify(H[0, 2] - 2 * w1 * v1) == 0
    pat = hl.symbolic.predicted_pattern(ex)
    assert (pat == np.array([[2, 0, 2, 0], [0, 2, 0, 2], [2, 0, 2, 0], [0, 2, 0, 2]])).all()
    assert hl.symbolic.verify_example(ex).num_zero == 8


def test_simo_full_link_kinds_and_exact_class_block_zero():
    ex = hl.symbolic.talk_example("2-2")
    L = hl.symbolic.link_graph(ex)
    i = {lab: k for k, lab in enumerate(ex.labels)}
    assert L.edges[i["w_{1}"], i["v_{1,1}"]]["kind"] == "direct"
    assert L.edges[i["w_{1}"], i["v_{1,2}"]]["kind"] == "indirect"
    assert L.edges[i["w_{1}"], i["w_{2}"]]["kind"] == "indirect"
    assert not L.has_edge(i["v_{1,1}"], i["v_{2,1}"])  # different outputs
    H = hl.symbolic.symbolic_hessian(ex)
    w1, w2 = ex.symbols[:2]
    v11, v12, v21, v22 = ex.symbols[2:]
    assert sp.simplify(H[0, 1] - (v11 * v12 + v21 * v22)) == 0  # the cross term
    assert sp.simplify(H[0, 3] - v11 * w2) == 0  # indirect: no residual
    assert sp.simplify(H[0, 2] - (2 * v11 * w1 + v12 * w2)) == 0  # direct: contains R_1
    assert all(H[a, b] == 0 for a in (2, 3) for b in (4, 5))


def test_mimo_kronecker_structure():
    ex = hl.symbolic.talk_example("3")
    chk = hl.symbolic.verify_example(ex, seed=4)
    W, V = (torch.tensor(a) for a in ex.matrices(chk.theta))
    H = chk.H_exact
    assert torch.allclose(H[:4, :4], torch.kron(V.T @ V, torch.eye(2, dtype=V.dtype)), atol=1e-12)
    assert torch.allclose(H[4:, 4:], torch.kron(torch.eye(2, dtype=V.dtype), W @ W.T), atol=1e-12)
    assert torch.allclose(hl.two_layer_hessian(W, V), H, atol=1e-12)
    assert chk.num_zero == 16


@pytest.mark.parametrize("shape", [(4, 3, 5), (1, 2, 6), (3, 1, 2)])
def test_two_layer_hessian_matches_autograd_with_targets(shape):
    d, m, C = shape
    gen = hl.make_generator(sum(shape))
    W = torch.randn(m, d, generator=gen, dtype=torch.float64)
    V = torch.randn(C, m, generator=gen, dtype=torch.float64)
    Y = torch.randn(C, d, generator=gen, dtype=torch.float64)
    ex = hl.symbolic.linear_example(d, m, C, Y=Y.numpy())
    theta = torch.cat([W.reshape(-1), V.reshape(-1)])
    ref = hl.hessian_reference(hl.symbolic.torch_loss(ex), theta)
    assert torch.allclose(hl.two_layer_hessian(W, V, Y), ref, atol=1e-12)
    # the residual term lives exactly on the direct links of H_wv
    diff = hl.two_layer_hessian(W, V, Y) - hl.two_layer_hessian(W, V, V @ W)
    direct = torch.tensor(hl.symbolic.predicted_pattern(ex) == 2)
    Pw = m * d
    assert torch.equal(diff[:Pw, Pw:] != 0, direct[:Pw, Pw:])
    assert float(diff[:Pw, :Pw].abs().max()) == 0.0 and float(diff[Pw:, Pw:].abs().max()) == 0.0


def test_masked_example_pattern_and_layout():
    mask = [[1, 1, 0], [0, 1, 1]]
    ex = hl.symbolic.linear_example(2, 3, 2, mask=mask)
    assert ex.num_params == 6 + 4 and ex.layout.sizes == (2, 2, 2, 2, 2)
    chk = hl.symbolic.verify_example(ex, seed=1)
    assert chk.pattern_ok and chk.max_err < 1e-12
    i = {lab: k for k, lab in enumerate(ex.labels)}
    assert chk.H[i["w_{1,1}"], i["w_{3,1}"]] == 0  # hidden 1 and 3 share no output
    assert chk.H[i["w_{1,1}"], i["w_{3,2}"]] == 0  # nor an input
    assert chk.H[i["w_{1,1}"], i["w_{2,1}"]] != 0
    assert chk.num_zero == 46
    G = hl.symbolic.network_graph(ex)
    assert G.number_of_edges() == 6 + 4 and G.number_of_nodes() == 2 + 3 + 2


def test_bad_inputs():
    with pytest.raises(ValueError, match="mask must have shape"):
        hl.symbolic.linear_example(2, 2, 2, mask=[[1, 1]])
    with pytest.raises(ValueError, match="at least one weight"):
        hl.symbolic.linear_example(2, 2, 2, mask=[[1, 0], [1, 0]])
    with pytest.raises(ValueError, match="key must be one of"):
        hl.symbolic.talk_example("4")
    with pytest.raises(ValueError, match="Y must have shape"):
        hl.symbolic.linear_example(2, 2, 2, Y=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="V must have shape"):
        hl.two_layer_hessian(torch.zeros(2, 3), torch.zeros(4, 5))


def test_drawing_functions_run():
    ex = hl.symbolic.talk_example("3")
    chk = hl.symbolic.verify_example(ex)
    fig, axes = plt.subplots(1, 4)
    hl.plot.network(ex, ax=axes[0])
    hl.plot.links(ex, ax=axes[1])
    hl.plot.pattern(ex, chk.H_exact, ax=axes[2])
    hl.plot.link_matrix(ex, ax=axes[3])
    assert len(axes[2].get_xticklabels()) == ex.num_params
    assert (
        len(axes[1].patches) == hl.symbolic.link_graph(ex).number_of_edges()
    )  # one curve per link
    plt.close(fig)
    assert r"\begin{array}" in hl.symbolic.hessian_latex(ex, chk.H, rows=range(2))
