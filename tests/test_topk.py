"""Top-k eigenpairs (``hl.spectral.top_eigenpairs``) against ``eigh``, with the residual check."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import hesslib as hl
from hesslib.spectral import Eigenpairs, top_eigenpairs


def _matrix(n=150, seed=0):
    """A symmetric matrix with a few separated outliers over a bulk, and its ``eigh``."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    lam = torch.cat([torch.tensor([9.0, 6.0, 4.0, -7.0], dtype=torch.float64),
                     torch.rand(n - 4, generator=g, dtype=torch.float64) * 2 - 1])  # fmt: skip
    A = (Q * lam) @ Q.T
    A = 0.5 * (A + A.T)
    return A, *torch.linalg.eigh(A)


def _reference(evals, evecs, k, which):
    order = {"largest": evals.argsort(descending=True), "smallest": evals.argsort(),
             "magnitude": evals.abs().argsort(descending=True)}[which]  # fmt: skip
    return evals[order[:k]], evecs[:, order[:k]]


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
@pytest.mark.parametrize("block_size", [None, 1, 4])
def test_matches_eigh(which, block_size):
    A, evals, evecs = _matrix()
    k = 3
    res = top_eigenpairs(lambda V: A @ V, A.shape[0], k, which=which, block_size=block_size)
    ref_vals, ref_vecs = _reference(evals, evecs, k, which)
    assert res.all_converged
    assert torch.allclose(res.eigenvalues, ref_vals, atol=1e-10, rtol=0)
    overlap = (res.eigenvectors.T @ ref_vecs).diagonal().abs()
    assert float((1 - overlap).max()) < 1e-9
    X = res.eigenvectors
    assert torch.allclose(X.T @ X, torch.eye(k, dtype=X.dtype), atol=1e-12)
    true_res = (A @ X - X * res.eigenvalues).norm(dim=0)
    assert torch.allclose(res.residual_norms, true_res, atol=1e-12)
    assert bool((res.residual_norms <= res.tol * res.scale).all())


def test_thick_restarts_converge_with_a_small_basis():
    A, evals, _ = _matrix(n=300, seed=1)
    res = top_eigenpairs(lambda V: A @ V, 300, 2, block_size=2, max_basis=8, max_matvecs=3000)
    assert res.all_converged
    assert torch.allclose(res.eigenvalues, evals.flip(0)[:2], atol=1e-10, rtol=0)


def test_budget_exhausted_reports_unconverged_pairs():
    A, _, _ = _matrix(n=300, seed=2)
    res = top_eigenpairs(lambda V: A @ V, 300, 4, which="smallest", max_matvecs=12)
    assert res.num_matvecs <= 12 + 4
    assert not res.all_converged
    assert res.residual_norms.shape == (4,) and res.converged.dtype == torch.bool


def test_result_is_a_frozen_dataclass():
    A, _, _ = _matrix(n=40)
    res = top_eigenpairs(lambda V: A @ V, 40, 2)
    assert isinstance(res, Eigenpairs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.tol = 1.0
    assert res.num_iterations >= 1 and res.num_matvecs >= 2


def test_k_equal_to_dim_gives_the_whole_spectrum():
    A, evals, _ = _matrix(n=12)
    res = top_eigenpairs(lambda V: A @ V, 12, 12)
    assert torch.allclose(res.eigenvalues, evals.flip(0), atol=1e-12, rtol=0)


def test_sharpness_of_a_network_hessian(problem):
    """Top eigenpairs of an exact Hessian through batched HVPs, against ``eigvalsh``."""
    data, net = problem
    f, theta = hl.flat_loss(net, data.X, data.y, "ce")
    H = hl.hessian_reference(f, theta)
    k = min(2, theta.numel())
    res = top_eigenpairs(lambda V: hl.hvp(f, theta, V), theta.numel(), k)
    assert res.all_converged
    ref = torch.linalg.eigvalsh(0.5 * (H + H.T)).flip(0)[:k]
    assert torch.allclose(res.eigenvalues, ref, atol=1e-10 * float(ref.abs().max()), rtol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 11}, "k must be <= dim"),
        ({"k": 0}, "k must be >= 1"),
        ({"which": "middle"}, "which must be one of"),
        ({"tol": 0.0}, "tol must be in"),
        ({"max_basis": 2, "k": 2}, "max_basis must be >= k"),
        ({"block_size": 0}, "block_size must be >= 1"),
    ],
)
def test_bad_arguments(kwargs, match):
    A = torch.eye(10, dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        top_eigenpairs(lambda V: A @ V, 10, **{"k": 1, **kwargs})


def test_matvec_of_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match="matvec must map"):
        top_eigenpairs(lambda V: V[:-1], 10, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_top_eigenpairs_on_the_device():
    A, evals, _ = _matrix()
    Ag = A.cuda()
    res = top_eigenpairs(lambda V: Ag @ V, A.shape[0], 3, device="cuda")
    assert res.eigenvectors.is_cuda and res.all_converged
    assert torch.allclose(res.eigenvalues.cpu(), evals.flip(0)[:3], atol=1e-10, rtol=0)
