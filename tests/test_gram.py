"""Output-layer CE block norms from Gram matrices against the dense Hessian (float64)."""

from __future__ import annotations

import pytest
import torch

import hesslib as hl
from hesslib.core import gram

CASES = [(40, 6, 7), (25, 3, 2), (60, 10, 12), (9, 12, 5)]  # (N, d, C), includes C = 2, d > N


def _dense(N, d, C, seed):
    data = hl.gaussian_data(N, d, C, seed=seed, device="cpu")
    net = hl.linear_net(d, C, seed=seed + 1, device="cpu")
    H = hl.closed_form_hessian(net, data.X, data.y, loss="ce")
    P = torch.softmax(data.X @ net.V.detach().T, dim=1)
    return data.X, P, hl.block_norms(H, net.layout())


@pytest.mark.parametrize("shape", CASES, ids=lambda s: "N{}-d{}-C{}".format(*s))
def test_block_norms_match_dense(shape):
    A, P, dense = _dense(*shape, seed=sum(shape))
    gram = hl.output_block_norms_gram(A, P)
    assert float((gram - dense).abs().max()) <= 1e-12 * float(dense.max())
    sub = hl.output_block_norms_gram(A, P, classes=[1, 0])
    assert torch.allclose(sub, dense[[1, 0]][:, [1, 0]], rtol=1e-12, atol=0)


@pytest.mark.parametrize("shape", CASES, ids=lambda s: "N{}-d{}-C{}".format(*s))
def test_block_stats_match_dense(shape):
    A, P, dense = _dense(*shape, seed=sum(shape))
    ref = hl.core.stats_from_norms(dense)
    for chunk in (1, 3, 8192):  # class chunks must not change the sums
        st = hl.core.output_block_stats_gram(A, P, chunk=chunk)
        assert st.num_classes == shape[2]
        assert st.rms_ratio == pytest.approx(ref.rms_ratio, rel=1e-10)
        assert st.diag_mass == pytest.approx(ref.diag_mass, rel=1e-12)
        assert st.intuition_ratio == pytest.approx(1 / (shape[2] - 1))


def test_prediction_is_the_second_moment_formula_per_block():
    N, d, C = 50, 8, 5
    A, P, _ = _dense(N, d, C, seed=3)
    st = hl.core.output_block_stats_gram(A, P)
    S = torch.diag_embed(P) - P[:, :, None] * P[:, None, :]  # (N, C, C)
    m2 = torch.tensor(
        [
            [d * hl.second_moment_prediction(S[:, c, e], gamma=d / N) for e in range(C)]
            for c in range(C)
        ]
    )
    eye = torch.eye(C, dtype=torch.bool)
    expected = (m2[~eye].mean() / m2[eye].mean()).sqrt()
    assert st.predicted_ratio == pytest.approx(float(expected), rel=1e-10)


def test_lm_head_stats_chunks_and_scale():
    a = hl.lm_head_block_stats(64, 16, 50, seed=1, chunk=7, device="cpu")
    b = hl.lm_head_block_stats(64, 16, 50, seed=1, chunk=4096, device="cpu")
    assert a.rms_ratio == pytest.approx(b.rms_ratio, rel=1e-12)
    big = hl.lm_head_block_stats(256, 32, 32768, seed=0, device="cpu")
    assert 0.8 < big.rms_ratio * 32767 < 2.0  # about 1/C, a bit above 1/(C-1)
    assert big.rms_ratio == pytest.approx(big.predicted_ratio, rel=0.1)
    assert big.diag_mass > 0.9999


def test_gram_input_errors():
    A = torch.randn(5, 3, dtype=torch.float64)
    P = torch.softmax(torch.randn(5, 4, dtype=torch.float64), 1)
    with pytest.raises(ValueError, match="rows"):
        hl.output_block_norms_gram(A, P[:4])
    with pytest.raises(ValueError, match="classes"):
        hl.output_block_norms_gram(A, P, classes=[4])
    with pytest.raises(ValueError, match="num_classes"):
        hl.core.output_block_stats_gram(A, P[:, :1])
    with pytest.raises(ValueError, match="non-finite"):
        hl.core.output_block_stats_gram(A * float("nan"), P)
    with pytest.raises(ValueError, match="num_classes"):
        hl.lm_head_block_stats(4, 2, 1)


def test_every_second_moment_user_calls_the_one_formula():
    """γ E[λ²] + (E λ)² has one implementation, ``hesslib.core.gram.second_moment``: the rmt
    function, the batched form, the output-layer stats and ``predicted_block_ratios`` agree."""
    from hesslib.core import block_ratios
    from hesslib.rmt import laws

    assert laws.sample_second_moment is gram.sample_second_moment
    assert block_ratios.second_moment is gram.second_moment
    assert block_ratios.sample_second_moment is gram.sample_second_moment
    gen = hl.make_generator(4)
    lam = torch.rand(300, 3, generator=gen, dtype=torch.float64) - 0.2

    def formula(x, gamma):  # the one implementation, on explicit moments
        return gram.second_moment(float((x * x).mean()), float(x.mean()) ** 2, gamma=gamma)

    batched = gram.sample_second_moment(lam, gamma=0.7)
    for j in range(3):
        ref = formula(lam[:, j], 0.7)
        assert hl.rmt.second_moment_prediction(lam[:, j], gamma=0.7) == pytest.approx(
            ref, rel=1e-12
        )
        assert float(batched[j]) == pytest.approx(ref, rel=1e-12)
    # output-layer stats and predicted_block_ratios: per class block (c, e), weights S[:, c, e]
    N, d = 40, 6
    for C, n_indep in ((5, 30), (9, 7)):  # C ≤ N' (class sums) and C > N' (Gram sums)
        net = hl.linear_net(d, C, seed=C, device="cpu")
        X = torch.randn(n_indep, d, generator=gen, dtype=torch.float64)
        P = torch.softmax(X @ net.V.detach().T, 1)
        S = torch.diag_embed(P) - P[:, :, None] * P[:, None, :]  # (N', C, C)
        m2 = torch.tensor([[formula(S[:, c, e], d / N) for e in range(C)] for c in range(C)])
        eye = torch.eye(C, dtype=torch.bool)
        q = hl.predicted_block_ratios(net, X, N=N, loss="ce")
        assert q.vv_sq[0] == pytest.approx(d * float(m2[~eye].mean()), rel=1e-12)
        assert q.vv_sq[1] == pytest.approx(d * float(m2[eye].mean()), rel=1e-12)
        m2_own = torch.tensor(
            [[formula(S[:, c, e], d / n_indep) for e in range(C)] for c in range(C)]
        )
        st = hl.core.output_block_stats_gram(X, P)  # its γ is d / N' (the features are X)
        ratio = float((m2_own[~eye].mean() / m2_own[eye].mean()).sqrt())
        assert st.predicted_ratio == pytest.approx(ratio, rel=1e-12)
