# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 The random-matrix view of the proof
#
# {doc}`Chapter 04 <04_static_force>` predicted the block ratios of cases 1–4 with one formula: a
# block $H = \frac1N\sum_n\omega_nx_nx_n^\top$ has
# $\frac1d\|H\|_F^2\approx\gamma\,\mathbb E[\omega^2] + (\mathbb E\omega)^2$ with $\gamma = d/N$.
# This chapter is about where that formula comes from, and about the gap in the argument that the
# proof of {cite}`dong2025hessian` has to close. The formula is the second moment of a *limit
# spectrum*, the generalised Marchenko–Pastur law
# {cite}`marchenko1967distribution,silverstein1995empirical`, and that law is a theorem about
# weights $\omega_n$ that are **independent** of the data. In a Hessian they are not:
# $\omega_n = p_{n,i}(1-p_{n,i})$ is computed from $x_n$ itself.
#
# We go through the random-matrix basics of the talk (spectra, Stieltjes transforms, the
# semicircle and Marchenko–Pastur laws), solve the generalised law numerically, and then test
# the proof's strategy on computed matrices: decouple the weights from the data with an
# independent copy $\tilde X$, interpolate $X(t) = \sqrt t\,X + \sqrt{1-t}\,\tilde X$, and
# measure how fast the difference vanishes as $N$ grows. The chapter ends with the second
# moments of all four cases and with stochastic Lanczos quadrature, the tool
# {doc}`chapter 06 <06_llm_implications>` uses to get spectra of Hessians too large to
# diagonalise.
#
# Conventions as in the rest of the book ({doc}`../book/notation`): $X$ is $N\times d$ with
# rows $x_n\sim\mathcal N(0, I_d)$, so the talk's $\frac1N X\Lambda X^\top$ (samples as
# columns) is $\frac1N X^\top\Omega X$ here, with $\Omega = \operatorname{diag}(\omega_n)$
# the per-sample weights; $\lambda$ is kept for eigenvalues and $s$ for Stieltjes transforms.

# %% [markdown]
# ## What you will be able to do after this chapter
#
# * compare empirical spectra with the semicircle, Marchenko–Pastur and generalised MP laws
#   (`hl.gmp_density`);
# * explain why a Hessian block is not covered by the generalised MP theorem (its weights
#   depend on the data) and how decoupling with an independent copy $\tilde X$ fixes that;
# * measure the decoupling gap of the mean Stieltjes transform against $N$ and read its rate;
# * estimate a block's spectrum from Hessian-vector products with stochastic Lanczos
#   quadrature (`hl.block_slq`).
#
# Symbols and block names are collected on {doc}`the notation page <../book/notation>`.

# %% tags=["parameters"]
profile = "default"
seed = 0
wigner_samples = (
    None  # Wigner matrices of size 1000 behind the semicircle histogram
)
gap_samples = None  # draws per N in the N sweep (list, one count per N)

# %%
import os
import time

import hesslib as hl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from hesslib.chapters import random_matrices as ch
from IPython.display import Markdown, display
from myst_nb import glue

PROFILES = {
    "quick": {
        "wig_n": 200,
        "wigner_samples": 4,
        "mp_d": 100,
        "blk_N": 400,
        "blk_d": 100,
        "blk_samples": 4,
        "C": 10,
        "t_N": 200,
        "t_samples": 8,
        "Ns": [100, 200, 400],
        "gap_samples": [48, 24, 12],
        "mom_N": 200,
        "mom_d": 20,
        "mom_Cs": [10],
        "mom_draws": 2,
        "slq_N": 400,
        "slq_d": 100,
        "slq_C": 4,
        "slq_steps": 30,
        "slq_probes": 8,
    },
    "default": {
        "wig_n": 1000,
        "wigner_samples": 40,
        "mp_d": 500,
        "blk_N": 2000,
        "blk_d": 500,
        "blk_samples": 10,
        "C": 10,
        "t_N": 1000,
        "t_samples": 40,
        "Ns": [200, 400, 800, 1600, 3200],
        "gap_samples": [384, 192, 96, 48, 24],
        "mom_N": 1000,
        "mom_d": 100,
        "mom_Cs": [10, 100],
        "mom_draws": 5,
        "slq_N": 2000,
        "slq_d": 500,
        "slq_C": 10,
        "slq_steps": 60,
        "slq_probes": 16,
    },
    "paper": {
        "wig_n": 1000,
        "wigner_samples": 1000,
        "mp_d": 1000,
        "blk_N": 8000,
        "blk_d": 2000,
        "blk_samples": 20,
        "C": 10,
        "t_N": 4000,
        "t_samples": 100,
        "Ns": [250, 500, 1000, 2000, 4000, 8000],
        "gap_samples": [1024, 512, 256, 128, 64, 32],
        "mom_N": 5000,
        "mom_d": 500,
        "mom_Cs": [10, 100, 1000],
        "mom_draws": 10,
        "slq_N": 8000,
        "slq_d": 2000,
        "slq_C": 10,
        "slq_steps": 100,
        "slq_probes": 32,
    },
}
cfg = hl.resolve_profile(
    profile,
    PROFILES,
    wigner_samples=wigner_samples,
    gap_samples=gap_samples,
)
device = hl.default_device()
print("device:", hl.device_name(device))
t_start, cpu_start = time.perf_counter(), time.process_time()
load_start = os.getloadavg()[0]

# %% [markdown]
# ## Spectra and Stieltjes transforms
#
# Random-matrix theory studies the eigenvalues $\lambda_1,\dots,\lambda_d$ of a random symmetric
# $A\in\mathbb R^{d\times d}$ through their *empirical spectral distribution*
# $\mu_A = \frac1d\sum_j\delta_{\lambda_j}$, a random probability measure, and asks for its limit as
# $d\to\infty$. A law of large numbers in a new sense: for
# $A = \frac1N\sum_nx_nx_n^\top$ with $d$ fixed, $A\to I$ and $\mu_A\to\delta_1$ as $N\to\infty$;
# with $d/N\to\gamma>0$ the spectrum spreads out to a non-trivial limit.
#
# The tool is the **Stieltjes transform** $s_\mu(z) = \int\frac{d\mu(x)}{x-z}$ for
# $\operatorname{Im}z>0$; for a matrix, $s_A(z) = \frac1d\operatorname{tr}(A-zI)^{-1}$. It
# determines $\mu$, and the density comes back by the inversion formula
# $\rho(x) = \lim_{\varepsilon\downarrow0}\frac1\pi\operatorname{Im}s_\mu(x+i\varepsilon)$.
# Expanding $\frac{1}{x-z} = -\sum_k x^k/z^{k+1}$ for large $|z|$ gives
#
# $$s_\mu(z) = -\frac1z - \frac{M_1}{z^2} - \frac{M_2}{z^3} - \cdots,\qquad
#   M_k = \int x^k\,d\mu(x),$$
#
# and for $\mu = \mu_A$ the second moment is $M_2 = \frac1d\operatorname{tr}A^2 =
# \frac1d\|A\|_F^2$: **the squared Frobenius norm of a Hessian block is the second moment of its
# spectrum.** This is why a theorem about limit spectra answers a question about block norms.
# Two more facts do the rest of the work: convergence of $s_{\mu_n}(z)$ for every $z$ is
# equivalent to weak convergence of $\mu_n$, and $s_{\mu_A}(z)$ concentrates around its mean,
# so it is enough to find $\mathbb E\,s_A(z)$.
#
# ## The semicircle law
#
# A Wigner matrix $W = (G+G^\top)/\sqrt{2n}$ with i.i.d. standard Gaussian $G$ has off-diagonal
# entries of variance $1/n$; its spectrum converges to the semicircle law
# $\rho(x) = \frac1{2\pi}\sqrt{(4-x^2)_+}$ {cite}`wigner1955characteristic`.
# `hl.rmt.wigner_eigenvalues` draws the matrices and diagonalises them:

# %%
wig = hl.rmt.wigner_eigenvalues(
    cfg.wig_n, num_samples=cfg.wigner_samples, seed=seed
)
grid_sc = torch.linspace(-2.2, 2.2, 441, dtype=torch.float64)
rho_sc = hl.semicircle_density(grid_sc)
ks_sc = hl.rmt.ks_distance(wig, grid_sc, rho_sc)
m2_sc = float((wig**2).mean())  # E tr W^2 / n = 1 + 1/n
print(
    f"{wig.numel()} eigenvalues, KS distance {ks_sc:.4f}, second moment "
    f"{m2_sc:.4f}"
)
assert ks_sc < 0.02 and abs(m2_sc - 1 - 1 / cfg.wig_n) < 0.01

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Eigenvalues of Wigner matrices (histogram over all draws) and the semicircle density (red). Size and number of draws are given in the text.", "name": "fig-05-semicircle"}}
fig, ax = plt.subplots(figsize=(6, 3.4))
hl.plot.spectrum_histogram(
    ax,
    wig,
    grid=grid_sc,
    density=rho_sc,
    bins=90,
    curve_label="semicircle",
)
ax.legend(fontsize=8)
plt.show()

# %% tags=["remove-cell"]
glue("ch05_wig_n", cfg.wig_n, display=False)
glue("ch05_wig_samples", cfg.wigner_samples, display=False)
glue("ch05_ks_sc", ks_sc, display=False)
glue("ch05_m2_sc", m2_sc, display=False)

# %% [markdown]
# Over {glue:text}`ch05_wig_samples` matrices of size {glue:text}`ch05_wig_n` the empirical
# distribution is within {glue:text}`ch05_ks_sc:.4f` of the semicircle in Kolmogorov–Smirnov
# distance, and the second moment is {glue:text}`ch05_m2_sc:.4f` (the semicircle's is 1;
# the exact finite-$n$ value is $1 + 1/n$). The talk's slide used 1000 matrices; so does the
# `paper` profile.
#
# ## The Marchenko–Pastur law
#
# For $A = \frac1N X^\top X$ with $\gamma = d/N$ the limit is the Marchenko–Pastur law
# {cite}`marchenko1967distribution`: a density on $[(1-\sqrt\gamma)^2, (1+\sqrt\gamma)^2]$,
#
# $$\rho_\gamma(x) = \frac{\sqrt{(b-x)(x-a)}}{2\pi\gamma x},\qquad a,b = (1\mp\sqrt\gamma)^2,$$
#
# plus, when $d>N$, a point mass $1 - 1/\gamma$ at zero: $A$ has rank at most $N$. Its
# Stieltjes transform solves $\gamma z\,s^2 + (z-1+\gamma)\,s + 1 = 0$. Two ratios, one on each
# side of 1:

# %%
mp = {}
for gamma in (0.25, 2.0):
    d = cfg.mp_d if gamma < 1 else 2 * cfg.mp_d
    eigs = hl.rmt.sample_covariance_eigenvalues(
        d, round(d / gamma), num_samples=5, seed=seed + 1
    )
    zero = float(
        (eigs.abs() < 1e-9 * eigs.max()).double().mean()
    )  # numerically zero
    mp[gamma] = (eigs, zero, hl.rmt.marchenko_pastur_atom(gamma))
    print(
        f"gamma = {gamma}: fraction of zero eigenvalues {zero:.4f}, MP "
        f"atom "
        f"{mp[gamma][2]:.4f}"
    )
assert mp[2.0][1] == mp[2.0][2] == 0.5 and mp[0.25][1] == 0.0

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Eigenvalues of $\\frac1N X^\\top X$ (5 draws) against the Marchenko–Pastur density. Left: $\\gamma = d/N = 1/4$. Right: $\\gamma = 2$; the histogram shows the non-zero eigenvalues (area $1/\\gamma$) and the thick line at 0 the atom of mass $1 - 1/\\gamma$.", "name": "fig-05-mp"}}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for ax, (gamma, (eigs, zero, atom)) in zip(axes, mp.items()):
    grid = torch.linspace(
        0, 1.05 * (1 + gamma**0.5) ** 2, 500, dtype=torch.float64
    )
    hl.plot.spectrum_histogram(
        ax,
        eigs,
        grid=grid,
        density=hl.marchenko_pastur_density(grid, ratio=gamma),
        atom_tol=1e-9 * float(eigs.max()),
        bins=70,
        curve_label=f"MP, $\\gamma$ = {gamma:g}",
    )
    ax.legend(fontsize=8, loc="upper right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The generalised Marchenko–Pastur law
#
# Weight the samples: $H = \frac1N\sum_n\omega_nx_nx_n^\top = \frac1N X^\top\Omega X$ with a
# diagonal $\Omega$ **independent of $X$** whose entries have a limiting law. Then
# $\mu_H$ converges to the generalised MP law
# {cite}`marchenko1967distribution,silverstein1995empirical`, whose Stieltjes transform is the
# solution with $\operatorname{Im}s>0$ of
#
# $$s = \frac{1}{-z + \mathbb E_\omega\!\left[\dfrac{\omega}{1+\gamma\omega s}\right]}.$$
#
# There is no closed form in general. `hl.gmp_density` solves the equation for the empirical
# law of a sample of $\omega$ values (by continuation from far above the real axis down to
# $x + i\varepsilon$, with damped Newton steps that never leave the upper half-plane) and
# returns $\operatorname{Im}s/\pi$. With $\omega\equiv1$ it is the MP law. Here half the
# weights are 1 and half are 4, at $\gamma = 1/4$; the dashed curve is the MP law with the same
# mean weight, to show that the shape depends on the whole law of $\omega$, not only on its
# mean:

# %%
d_g, N_g = cfg.mp_d, 4 * cfg.mp_d
lam_two = torch.tensor([1.0, 4.0], dtype=torch.float64)[
    torch.arange(N_g) % 2
]  # (N,)
eigs_g = hl.rmt.sample_covariance_eigenvalues(
    d_g, N_g, lam=lam_two, num_samples=5, seed=seed + 2
)
grid_g = torch.linspace(
    0, 1.1 * float(eigs_g.max()), 600, dtype=torch.float64
)
law_g = hl.gmp_density(grid_g, lam_two, gamma=0.25)
ks_g = hl.rmt.ks_distance(eigs_g, grid_g, law_g.density)
m2_g, m2_g_pred = (
    float((eigs_g**2).mean()),
    hl.second_moment_prediction(lam_two, gamma=0.25),
)
print(
    f"KS distance {ks_g:.4f}; second moment {m2_g:.4f}, gamma E[w^2] + (E "
    f"w)^2 = {m2_g_pred}"
)
assert ks_g < 0.03 and abs(m2_g / m2_g_pred - 1) < 0.02

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Generalised MP law: eigenvalues of $\\frac1N X^\\top\\Omega X$ with $\\omega_n\\in\\{1, 4\\}$ (half each, independent of $X$), $\\gamma = 1/4$, against the density from `hl.gmp_density` (red) and the MP law scaled to the same mean weight 2.5 (dashed).", "name": "fig-05-gmp"}}
fig, ax = plt.subplots(figsize=(6, 3.4))
hl.plot.spectrum_histogram(
    ax,
    eigs_g,
    grid=grid_g,
    density=law_g.density,
    bins=80,
    curve_label="GMP",
)
mean_lam = float(lam_two.mean())
ax.plot(
    grid_g,
    hl.marchenko_pastur_density(grid_g, ratio=0.25, sigma2=mean_lam),
    "k--",
    lw=1,
    label=f"MP, $\\sigma^2$ = {mean_lam:g}",
)
ax.legend(fontsize=8)
plt.show()

# %% tags=["remove-cell"]
glue("ch05_ks_gmp", ks_g, display=False)
glue("ch05_m2_gmp", m2_g, display=False)
glue("ch05_m2_gmp_pred", m2_g_pred, display=False)

# %% [markdown]
# The histogram follows the solved density (KS distance {glue:text}`ch05_ks_gmp:.4f`), and its
# second moment, {glue:text}`ch05_m2_gmp:.3f`, is the formula's
# $\gamma\,\mathbb E[\omega^2] + (\mathbb E\omega)^2 =$ {glue:text}`ch05_m2_gmp_pred:.3f`
# (exercise 2 derives the formula from the equation above).
#
# ## The obstacle: weights that depend on the data
#
# For the linear model with CE (case 2), the diagonal block of class $i$ is
#
# $$H_{ii} = \frac1N\sum_n p_{n,i}(1-p_{n,i})\,x_nx_n^\top = \frac1N X^\top\Omega X,\qquad
#   p_n = \operatorname{softmax}(Vx_n).$$
#
# The generalised MP theorem does not apply: $\Omega$ is a function of $X$. Dependent random
# matrix products are hard in general. What saves the day, as the talk explains, is that
# $\omega_n$ sees $x_n$ only through the $C$ numbers $Vx_n$: each $v_c^\top x_n$ is close to
# $\mathcal N(0,1)$ whatever $x_n$'s other $d - C$ directions do, so weights and data are
# *asymptotically* independent. The proof turns this into a statement about spectra by
# comparing $H_{ii}$ with a **decoupled** block
#
# $$\tilde H_{ii} = \frac1N\sum_n\tilde p_{n,i}(1-\tilde p_{n,i})\,x_nx_n^\top,\qquad
#   \tilde p_n = \operatorname{softmax}(V\tilde x_n),$$
#
# where $\tilde X$ is an independent copy of $X$: to $\tilde H_{ii}$ the generalised MP theorem
# applies. `hl.rmt.diagonal_block(X, V, i, decouple_with=X_tilde)` builds it (the same keyword as
# chapter 04's `hl.block_ratios_at_init`). Both spectra against the GMP law, with the law of
# $\omega$ taken from the same model on fresh inputs:

# %%
blk = hl.rmt.block_spectra(
    cfg.blk_N,
    cfg.blk_d,
    cfg.C,
    num_samples=cfg.blk_samples,
    seed=seed + 3,
    device=device,
)
grid_b = torch.linspace(
    0, 1.15 * float(blk.coupled.max()), 500, dtype=torch.float64
)
law_b = hl.gmp_density(
    grid_b, hl.rmt.lambda_quantiles(blk.lam), gamma=blk.gamma
)
ks_b = {
    name: hl.rmt.ks_distance(e, grid_b, law_b.density)
    for name, e in (("coupled", blk.coupled), ("decoupled", blk.decoupled))
}
print({k: round(v, 4) for k, v in ks_b.items()})
assert max(ks_b.values()) < 0.05

# %% tags=["remove-cell"]
glue("ch05_C", cfg.C, display=False)
glue("ch05_blk_N", cfg.blk_N, display=False)
glue("ch05_blk_d", cfg.blk_d, display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Spectrum of the diagonal CE block $H_{11}$ of a linear model at initialisation (left; weights computed from the data themselves) and of the decoupled block $\\tilde H_{11}$ (right; weights from an independent copy), both against the generalised MP density for the law of $\\omega = p_1(1-p_1)$ (red). Sizes in the text.", "name": "fig-05-blocks"}}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for ax, (name, e) in zip(
    axes, (("$H_{11}$", blk.coupled), ("$\\tilde H_{11}$", blk.decoupled))
):
    hl.plot.spectrum_histogram(
        ax,
        e,
        grid=grid_b,
        density=law_b.density,
        bins=70,
        label=f"eigenvalues of {name}",
        curve_label="GMP",
    )
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
sq = {
    name: float((e**2).mean())
    for name, e in (("coupled", blk.coupled), ("decoupled", blk.decoupled))
}
pred_b = hl.second_moment_prediction(blk.lam, gamma=blk.gamma)
err_b = {name: v / pred_b - 1 for name, v in sq.items()}
print("(1/d)|H|_F^2 / prediction - 1")
for k, v in err_b.items():
    print(f"{k:>10}: {v:+.4f}")
assert max(abs(v) for v in err_b.values()) < 0.05

# %% tags=["remove-cell"]
for name in ks_b:
    glue(f"ch05_ks_{name}", ks_b[name], display=False)
    glue(f"ch05_m2err_{name}", abs(err_b[name]), display=False)

# %% [markdown]
# With $N =$ {glue:text}`ch05_blk_N`, $d =$ {glue:text}`ch05_blk_d` and $C =$
# {glue:text}`ch05_C` classes, the two spectra are indistinguishable by eye and both sit on the
# GMP density (KS distances {glue:text}`ch05_ks_coupled:.4f` for $H_{11}$ and
# {glue:text}`ch05_ks_decoupled:.4f` for $\tilde H_{11}$). Their second moments
# $\frac1d\|H\|_F^2$ match $\gamma\,\mathbb E[\omega^2] + (\mathbb E\omega)^2$ to within
# {glue:text}`ch05_m2err_coupled:.2%` and {glue:text}`ch05_m2err_decoupled:.2%`. The
# dependence is there — it just does not show at this scale. The rest of the chapter measures
# how small it is.
#
# ## Interpolating between the two
#
# The proof connects $H$ and $\tilde H$ by a path. Let
# $X(t) = \sqrt t\,X + \sqrt{1-t}\,\tilde X$, $t\in[0,1]$: every $X(t)$ has the law of $X$, and
# its correlation with $X$ grows from 0 to 1. With weights computed on $X(t)$,
#
# $$H(t) = \frac1N\sum_n\omega\big(Vx_n(t)\big)\,x_nx_n^\top,\qquad H(1) = H_{ii},\quad
#   H(0) = \tilde H_{ii}.$$
#
# By the fundamental theorem of calculus,
# $\delta_N(z) = \mathbb E s_{H(1)}(z) - \mathbb E s_{H(0)}(z) = \int_0^1\frac{d}{dt}\mathbb E
# s_{H(t)}(z)\,dt$, and the talk bounds the derivative with the Cauchy integral formula and
# Stein's lemma ($\mathbb E[Zf(Z)] = \mathbb E[f'(Z)]$ for Gaussian $Z$), a Lindeberg-style
# argument, to get $\delta_N = O(N^{-1/2})$. Numerically, $\mathbb E s_{H(t)}(z)$ should be flat
# in $t$. We measure it at three points $z = \bar\omega\,\zeta$ scaled by the mean weight
# $\bar\omega = \mathbb E\omega$ (i.e. the transform of $H/\bar\omega$ at $\zeta$), with the
# same draws of $X, \tilde X$ for every $t$:

# %%
ts = np.linspace(0, 1, 6)
zeta = [0.5 + 0.5j, 1 + 0.5j, 2 + 0.5j]
curve = hl.rmt.stieltjes_along_t(
    cfg.t_N,
    cfg.t_N // 4,
    cfg.C,
    ts=ts,
    zeta=zeta,
    num_samples=cfg.t_samples,
    seed=seed + 4,
    device=device,
)
drift = (
    (curve.mean - curve.mean[-1]).abs().max(0).values
)  # (Z,) largest change along t
off_gmp = (curve.mean - curve.gmp).abs().max(
    0
).values / curve.gmp.abs()  # (Z,)
print("max |E s(t) - E s(1)|: ", drift.numpy().round(4))
print("largest standard error:", curve.sem.max(0).values.numpy().round(4))
print("max |E s(t) - s_GMP| / |s_GMP|:", off_gmp.numpy().round(4))
assert float(off_gmp.max()) < 0.05

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Monte Carlo $\\mathbb E\\,s_{H(t)}(z)$ along the interpolation ($t = 1$: the Hessian block, $t = 0$: the decoupled block), real part (left) and imaginary part (right), at three points $z = \\bar\\omega\\zeta$; bars: $\\pm 2$ standard errors. Dashed: the generalised MP value.", "name": "fig-05-interpolation"}}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for ax, part in zip(axes, ("real", "imag")):
    for k, (z, color) in enumerate(
        zip(zeta, ("tab:blue", "tab:orange", "tab:green"))
    ):
        y = getattr(curve.mean[:, k], part)
        ax.errorbar(
            ts,
            y,
            yerr=2 * curve.sem[:, k],
            fmt="o-",
            color=color,
            ms=4,
            capsize=2,
            label=f"$\\zeta$ = {z.real:g} + {z.imag:g}i",
        )
        ax.axhline(
            float(getattr(curve.gmp[k], part)), color=color, ls="--", lw=1
        )
    ax.set_xlabel("t")
    ax.set_ylabel(
        f"{'Re' if part == 'real' else 'Im'} "
        "$\\bar\\omega\\,\\mathbb{E}\\,s_{H(t)}$"
    )
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% tags=["remove-cell"]
glue("ch05_t_N", cfg.t_N, display=False)
glue("ch05_t_samples", cfg.t_samples, display=False)
glue("ch05_t_drift", float(drift.max()), display=False)
glue("ch05_t_se", float(curve.sem.max()), display=False)
glue("ch05_t_offgmp", float(off_gmp.max()), display=False)

# %% [markdown]
# Along the whole path the mean transform stays flat: at $N =$ {glue:text}`ch05_t_N`,
# $d = N/4$, over {glue:text}`ch05_t_samples` draws, it moves by at most
# {glue:text}`ch05_t_drift:.4f` (in units of $1/\bar\omega$, where the values themselves are
# of order 1; the standard error of one point is up to {glue:text}`ch05_t_se:.4f`, so the drift
# is not even resolved) and stays within {glue:text}`ch05_t_offgmp:.2%` of the generalised MP
# value. The dependence of the weights on the data leaves no visible trace in the mean
# Stieltjes transform — which is what the proof needs.
#
# ## How fast does the dependence vanish?
#
# Now the rate: $|\delta_N(z)| = |\mathbb E s_H(z) - \mathbb E s_{\tilde H}(z)|$ against $N$
# at fixed $\gamma = 1/4$ and $C$. Estimating it by averaging $s_H - s_{\tilde H}$ over draws
# is hopeless: the empirical mean of the weights, $\frac1N\sum_n\omega_n$, differs from that
# of $\tilde\omega$ by $O(N^{-1/2})$ in every draw, which shifts the whole spectrum, so a
# single draw's difference is of order $N^{-1/2}$ while its mean is far smaller.
#
# A coupling removes that noise. Let $P$ project onto the row space of $V$ (dimension $C$).
# The weights depend on $x_n$ only through $Px_n$, and for Gaussian data $Px_n$ and
# $(I-P)x_n$ are independent. Replace the $P$-component of each $x_n$ by that of $\tilde x_n$,
# $x_n' = (I-P)x_n + P\tilde x_n$, and keep the weights:
# $H' = \frac1N\sum_n\omega(Vx_n)\,x_n'x_n'^\top$. The pair $(\omega(Vx_n), x_n')$ has the
# same law as $(\omega(V\tilde x_n), x_n)$, so $H'$ has the law of $\tilde H$ and
# $\mathbb E s_{H'} = \mathbb E s_{\tilde H}$ exactly; but $H - H'$ has rank at most $2C$
# (exercise 3), so $s_H - s_{H'}$ is small in *every* draw. `hl.rmt.decoupling_gap` records both
# differences at $\zeta = 1 + i$:

# %%
t_gap = time.perf_counter()
gap = hl.rmt.decoupling_gap(
    cfg.Ns,
    gamma=0.25,
    C=cfg.C,
    zeta=[1 + 1j],
    num_samples=cfg.gap_samples,
    seed=seed + 5,
    device=device,
    progress=True,
)
delta, delta_se = (
    v[:, 0] for v in gap.gap("swap")
)  # |E s_H - E s_H~| and its SE
naive, naive_se = (v[:, 0] for v in gap.gap("naive"))
rms, rms_se = (v[:, 0] for v in gap.pathwise_rms())
print(
    pd.DataFrame(
        {
            "N": gap.Ns,
            "|delta_N|": delta,
            "SE (coupled)": delta_se,
            "SE (naive)": naive_se,
            "one draw (RMS)": rms,
        }
    ).to_string(index=False)
)
assert (
    float(gap.bound_ratio.max()) <= 1.0
)  # rank bound of exercise 3, draw by draw

# %% tags=["remove-cell"]
glue("ch05_gap_Nmin", cfg.Ns[0], display=False)
glue("ch05_gap_Nmax", cfg.Ns[-1], display=False)
glue("ch05_gap_s", time.perf_counter() - t_gap, display=False)

# %%
fit_gap = hl.core.loglog_fit(gap.Ns, delta, delta_se)
fit_rms = hl.core.loglog_fit(gap.Ns, rms, rms_se)
for name, fit in (("gap", fit_gap), ("rms", fit_rms)):
    print(f"{name}: slope {fit.slope:.3f} [{fit.low:.3f}, {fit.high:.3f}]")
if cfg.profile != "quick":  # three values of N are too few for a slope
    assert fit_gap.high < -0.5 and -1.4 < fit_gap.slope < -0.7
    assert -0.7 < fit_rms.slope < -0.35

# %% tags=["remove-cell"]
for name, fit in (("gap", fit_gap), ("rms", fit_rms)):
    for attr in ("slope", "low", "high"):
        glue(
            f"ch05_slope_{name}_{attr}", getattr(fit, attr), display=False
        )

# %% tags=["remove-cell"]
glue("ch05_naive_over_gap", float(naive_se[-1] / delta[-1]), display=False)
glue("ch05_bound_ratio", float(gap.bound_ratio.max()), display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Decoupling gap against $N$ ($\\gamma = 1/4$, $\\zeta = 1 + i$, log-log). Blue: $|\\mathbb E s_H - \\mathbb E s_{\\tilde H}|$ estimated with the rank-$2C$ coupling, $\\pm 2$ standard errors, and its weighted least-squares fit. Orange: the typical difference of one draw, $\\sqrt{\\mathbb E|s_H - s_{\\tilde H}|^2}$, and its fit. Grey: slopes $-1/2$ and $-1$ for reference.", "name": "fig-05-gap"}}
Ns = gap.Ns.double().numpy()
fig, ax = plt.subplots(figsize=(6.2, 4))
ax.errorbar(
    Ns,
    delta,
    yerr=2 * delta_se,
    fmt="o",
    color="tab:blue",
    capsize=3,
    label="$|\\mathbb{E}s_H - \\mathbb{E}s_{\\tilde H}|$ "
    "(coupled estimator)",
)
ax.plot(
    Ns,
    rms,
    "s",
    color="tab:orange",
    label="one draw: RMS of $s_H - s_{\\tilde H}$",
)
for fit, color in ((fit_gap, "tab:blue"), (fit_rms, "tab:orange")):
    ax.plot(
        Ns,
        np.exp(fit.intercept) * Ns**fit.slope,
        color=color,
        lw=1,
        label=f"fit: slope {fit.slope:.2f} "
        f"[{fit.low:.2f}, {fit.high:.2f}]",
    )
for slope, ls in ((-0.5, ":"), (-1.0, "--")):
    ax.plot(
        Ns,
        float(delta[0]) * (Ns / Ns[0]) ** slope,
        color="grey",
        ls=ls,
        lw=1,
        label=f"$N^{{{slope:g}}}$",
    )
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xticks(Ns, [f"{n:.0f}" for n in Ns], minor=False)
ax.set_xticks([], minor=True)
ax.set_xlabel("N (d = N/4)")
ax.set_ylabel("difference of Stieltjes transforms")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# The two quantities decay at different rates. One draw's difference shrinks like $N^{-1/2}$
# (fitted slope {glue:text}`ch05_slope_rms_slope:.2f`, 95 % interval
# [{glue:text}`ch05_slope_rms_low:.2f`, {glue:text}`ch05_slope_rms_high:.2f`]): the CLT-size
# fluctuation of the weights. The difference of the *means*, the $\delta_N$ of the proof, decays
# with slope {glue:text}`ch05_slope_gap_slope:.2f`
# [{glue:text}`ch05_slope_gap_low:.2f`, {glue:text}`ch05_slope_gap_high:.2f`] over
# $N =$ {glue:text}`ch05_gap_Nmin` … {glue:text}`ch05_gap_Nmax`. So the talk's $O(N^{-1/2})$ is
# an upper bound that holds with room to spare; for Gaussian data the coupling above even
# proves $|\delta_N(z)|\le 2\pi C/(d\operatorname{Im}z) = O(1/N)$ (exercise 3). Every draw
# obeyed that bound (largest ratio to it {glue:text}`ch05_bound_ratio:.3f`: the bound is
# loose in the constant, not in the rate). The $N^{-1/2}$ of the proof buys generality —
# the Stein's-lemma argument does not need the exact rotation invariance used here. At the
# largest $N$, the naive estimator's standard error is {glue:text}`ch05_naive_over_gap:.0f`
# times the gap it tries to measure.
#
# ## Second moments of the four cases
#
# With decoupling in hand, each block of {doc}`chapter 04 <04_static_force>` is a generalised-MP
# matrix, and its squared Frobenius norm per dimension is predicted by the second moment
# $\gamma\,\mathbb E[\omega^2] + (\mathbb E\omega)^2$ (for the $m$-dimensional ReLU features of
# the output layer, the non-isotropic version of chapter 04). `ch.second_moment_cases` runs the
# four cases through chapter 04's functions (`hl.block_ratios_at_init` for the measurement and the
# decoupled measurement, `hl.predicted_block_ratios` for the prediction) and averages over draws.
# The first table holds the mean $\frac1k\|H_{bb}\|_F^2$ over diagonal blocks and the mean
# $\frac1k\|H_{bc}\|_F^2$ over off-diagonal ones ($k$ the block size), each measured, decoupled
# and predicted; the second holds the RMS block ratio, the same three ways. A row is one case,
# layer and number of classes $C$:

# %%
rows = ch.second_moment_cases(
    cfg.mom_Cs,
    N=cfg.mom_N,
    d=cfg.mom_d,
    num_draws=cfg.mom_draws,
    seed=seed + 6,
    device=device,
)
cases = pd.MultiIndex.from_tuples(
    [(r.case, r.layer, r.C) for r in rows], names=["case", "layer", "C"]
)
how = ["meas.", "decoup.", "pred."]
block_moments = pd.DataFrame(
    [[*r.diag, *r.off] for r in rows],
    index=cases,
    columns=pd.MultiIndex.from_product(
        [["diagonal", "off-diagonal"], how]
    ),
)
ratios = pd.DataFrame(
    [list(r.ratio) for r in rows],
    index=cases,
    columns=pd.MultiIndex.from_product([["RMS block ratio"], how]),
)
display(block_moments.map("{:.3g}".format))
display(ratios.map("{:.3g}".format))


# %%
def ratio_err(r):
    return r.ratio[0] / r.ratio[2] - 1 if r.ratio[2] > 0 else r.ratio[0]


rel = {
    (r.case, r.layer, r.C): (r.diag[0] / r.diag[2] - 1, ratio_err(r))
    for r in rows
}
good = [
    k for k in rel if k[:2] != (4, "vv")
]  # all but the output layer of case 4
assert all(
    rel[k][1] == 0.0 for k in rel if k[0] == 1 or k[:2] == (3, "vv")
)  # exact zeros
C_big = max(cfg.mom_Cs)
r4 = next(r for r in rows if (r.case, r.layer, r.C) == (4, "vv", C_big))
print("measured / predicted - 1")
print(
    pd.DataFrame(
        list(rel.values()),
        index=pd.MultiIndex.from_tuples(rel, names=["case", "layer", "C"]),
        columns=["diagonal norm", "block ratio"],
    ).to_string(float_format="{:+.3f}".format)
)
tol = (
    0.25 if cfg.profile == "quick" else 0.1
)  # quick: N = 200, single blocks fluctuate
assert (
    all(abs(rel[k][0]) < tol for k in good)
    and abs(r4.ratio[1] / r4.ratio[2] - 1) < 0.1
)

# %% tags=["remove-cell"]
glue("ch05_mom_diag_err", max(abs(rel[k][0]) for k in good), display=False)
glue(
    "ch05_mom_ratio_err",
    max(abs(rel[k][1]) for k in good if k[0] > 1),
    display=False,
)

# %% tags=["remove-cell"]
glue("ch05_mom_C", C_big, display=False)
glue("ch05_mom_case4_meas", r4.ratio[0] / r4.ratio[2] - 1, display=False)
glue(
    "ch05_mom_case4_dec", abs(r4.ratio[1] / r4.ratio[2] - 1), display=False
)
glue("ch05_mom_N", cfg.mom_N, display=False)
glue("ch05_mom_d", cfg.mom_d, display=False)
glue("ch05_mom_draws", cfg.mom_draws, display=False)

# %% [markdown]
# At $N =$ {glue:text}`ch05_mom_N`, $d =$ {glue:text}`ch05_mom_d`
# ({doc}`chapter 04 <04_static_force>`'s setting), averaged over {glue:text}`ch05_mom_draws`
# draws, the prediction of the diagonal-block norms is within {glue:text}`ch05_mom_diag_err:.1%`
# of the measurement in every case except the output layer of case 4, and the block ratios of
# cases 2–4 within {glue:text}`ch05_mom_ratio_err:.1%` in the same cases. The exception is the one
# {doc}`chapter 04 <04_static_force>` found: in the output layer of the one-hidden-layer CE net,
# the weights $S_n = \operatorname{diag}(p_n) - p_np_n^\top$ are functions of the features $a_n$
# themselves, which live in only $m = 8$ dimensions, so the asymptotic independence that makes
# decoupling work never sets in. At $C =$ {glue:text}`ch05_mom_C` the measured ratio is
# {glue:text}`ch05_mom_case4_meas:.0%` above the prediction, while the decoupled block is within
# {glue:text}`ch05_mom_case4_dec:.1%` of it. Under MSE the class blocks have constant weights
# ($S_n = I$): their off-diagonal blocks are exactly zero, and the measured and decoupled columns
# coincide.
#
# ## Spectra without diagonalising: stochastic Lanczos quadrature
#
# Everything above used `eigvalsh`, which needs the matrix and $O(d^3)$ time.
# {doc}`Chapter 06 <06_llm_implications>` needs spectra of Hessians with up to millions of
# parameters, available only through Hessian-vector products. Stochastic Lanczos quadrature (SLQ,
# {cite}`ghorbani2019investigation`; Algorithm 5 of {cite}`zhang2024transformers`) estimates the
# spectral density from products alone: $s$ steps of Lanczos from a random unit vector $v$ give an
# $s$-point Gauss quadrature (nodes $\theta_j$, weights $\tau_j$) of the measure
# $\sum_j(v^\top q_j)^2\delta_{\lambda_j}$, whose average over $v$ is $\mu_H$; a Gaussian blur
# turns the nodes into a density. `hl.slq` runs all probes through one batched matrix product per
# step.
#
# We apply it to a diagonal block $H_{11}$ given only as the function
# $v\mapsto\frac1N X^\top(\omega\odot Xv)$ — the matrix is never formed — and compare with its
# exact eigenvalues blurred by the same width:

# %%
data = hl.gaussian_data(
    cfg.slq_N, cfg.slq_d, cfg.slq_C, seed=seed + 7, device=device
)
net = hl.linear_net(cfg.slq_d, cfg.slq_C, seed=seed + 8, device=device)
lam1 = hl.rmt.ce_diagonal_weights(data.X, net.V.detach())[:, 0]  # (N,)


def matvec(Q):  # (d, k) -> (d, k)
    return data.X.T @ (lam1[:, None] * (data.X @ Q)) / cfg.slq_N


spec = hl.slq(
    matvec,
    cfg.slq_d,
    num_steps=cfg.slq_steps,
    num_probes=cfg.slq_probes,
    seed=seed,
    device=device,
)
exact = torch.linalg.eigvalsh(hl.rmt.weighted_gram(data.X, lam1)).cpu()
blurred = hl.slq_density(
    (exact[None], torch.full((1, cfg.slq_d), 1 / cfg.slq_d)),
    grid=spec.grid,
    sigma=spec.sigma,
)
js_slq = float(hl.js_distance(spec.density, blurred.density, spec.grid))
m2 = {
    "SLQ": spec.moment(2),
    "exact": float((exact**2).mean()),
    "GMP": hl.second_moment_prediction(lam1, gamma=cfg.slq_d / cfg.slq_N),
}
print(f"JS distance SLQ vs exact: {js_slq:.4f}")
print(
    "second moments: " + ", ".join(f"{k} {v:.5f}" for k, v in m2.items())
)
assert js_slq < 0.1 and abs(m2["SLQ"] / m2["exact"] - 1) < 0.1

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Spectral density of a diagonal CE block by stochastic Lanczos quadrature from matrix-vector products only (blue, band: $\\pm 2$ standard errors across probes) against its exact eigenvalues blurred with the same Gaussian width (black dashed) and the generalised MP density (red).", "name": "fig-05-slq"}}
law_s = hl.gmp_density(
    spec.grid.clamp(min=0),
    hl.rmt.lambda_quantiles(lam1),
    gamma=cfg.slq_d / cfg.slq_N,
)
fig, ax = plt.subplots(figsize=(6.2, 3.6))
band = 2 * spec.density_sem
ax.fill_between(
    spec.grid,
    spec.density - band,
    spec.density + band,
    color="tab:blue",
    alpha=0.25,
)
ax.plot(
    spec.grid,
    spec.density,
    color="tab:blue",
    label=f"SLQ ({cfg.slq_probes} probes, {cfg.slq_steps} steps)",
)
ax.plot(
    spec.grid,
    blurred.density,
    "k--",
    lw=1,
    label="exact eigenvalues, same blur",
)
ax.plot(
    spec.grid, law_s.density, color="tab:red", lw=1, label="GMP density"
)
ax.set_xlabel("eigenvalue")
ax.set_ylabel("density")
ax.legend(fontsize=8)
plt.show()

# %% tags=["remove-cell"]
glue("ch05_slq_js", js_slq, display=False)
glue("ch05_slq_steps", cfg.slq_steps, display=False)
glue("ch05_slq_probes", cfg.slq_probes, display=False)
glue("ch05_slq_d", cfg.slq_d, display=False)
glue("ch05_slq_m2err", abs(m2["SLQ"] / m2["exact"] - 1), display=False)

# %% [markdown]
# With {glue:text}`ch05_slq_probes` probes and {glue:text}`ch05_slq_steps` Lanczos steps on a
# block of size {glue:text}`ch05_slq_d`, the SLQ density is at Jensen–Shannon distance
# {glue:text}`ch05_slq_js:.3f` from the blurred exact spectrum (the standard, bounded distance
# with base-2 logarithms: 0 for equal densities, 1 for disjoint ones), and its second moment
# is within {glue:text}`ch05_slq_m2err:.2%` of $\frac1d\|H\|_F^2$. The same routine,
# `hl.block_slq`, gets every diagonal block's spectrum of a full Hessian from shared batched
# Hessian-vector products; {doc}`chapter 06 <06_llm_implications>` uses it to compare the blocks
# of transformers and CNNs.
#
# :::{admonition} The paper says / this chapter finds
# :class: tip
# - **The talk:** spectra of random Gram-type matrices follow the semicircle, Marchenko–Pastur
#   and generalised MP laws. **Here:** reproduced ({numref}`fig-05-semicircle`,
#   {numref}`fig-05-mp`, {numref}`fig-05-gmp`; KS distance {glue:text}`ch05_ks_gmp:.4f` for the
#   generalised law).
# - **The proof:** a Hessian block's weights depend on the data; decouple them with an
#   independent copy and interpolate. **Here:** the mean Stieltjes transform stays within
#   {glue:text}`ch05_t_offgmp:.2%` of the generalised MP value along the whole path
#   ({numref}`fig-05-blocks`, {numref}`fig-05-interpolation`).
# - **The talk's $O(N^{-1/2})$ rate** for the gap is an upper bound with room to spare: the gap
#   of the means decays with slope {glue:text}`ch05_slope_gap_slope:.2f`
#   ({numref}`fig-05-gap`); only one draw's difference decays like $N^{-1/2}$.
# - **The second-moment formula** fits every case within {glue:text}`ch05_mom_diag_err:.1%`
#   **except the output layer of case 4**, where the measured ratio is
#   {glue:text}`ch05_mom_case4_meas:.0%` above the prediction: decoupling never sets in there.
# - **SLQ** recovers a block's spectrum from matrix-vector products (Jensen–Shannon distance
#   {glue:text}`ch05_slq_js:.3f`, {numref}`fig-05-slq`).
# :::
#
# ## Exercises
#
# 1. **The semicircle's Stieltjes transform.** Show that the Stieltjes transform of the
#    semicircle law solves $s^2 + zs + 1 = 0$, and pick the right root. Compare it with the
#    empirical transform of the Wigner matrices above.
#
# :::{dropdown} Solution
# For a Wigner matrix, the Schur complement of the first diagonal entry gives, in the limit,
# $s = 1/(-z - s)$: removing one row and column does not change the limit transform, and the
# quadratic form $w^\top(W' - z)^{-1}w$ concentrates at $\frac1n\operatorname{tr}(W'-z)^{-1}
# \approx s$. Hence $s^2 + zs + 1 = 0$, $s = \frac{-z\pm\sqrt{z^2-4}}{2}$, and the root with
# $\operatorname{Im}s>0$ is the Stieltjes transform (the other one behaves like $-z$ at
# infinity, not like $-1/z$). Its imaginary part on the real axis is
# $\frac12\sqrt{4-x^2} = \pi\rho(x)$. The cell compares it with
# $\frac1n\operatorname{tr}(W - z)^{-1}$ averaged over the draws of
# {numref}`fig-05-semicircle`.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
z = torch.tensor(
    [0.5 + 0.5j, -1.0 + 0.2j, 2.5 + 0.1j], dtype=torch.complex128
)
roots = torch.stack(
    [(-z + torch.sqrt(z * z - 4)) / 2, (-z - torch.sqrt(z * z - 4)) / 2]
)
m_sc = torch.where(roots[0].imag > 0, roots[0], roots[1])
s_emp = hl.stieltjes_empirical(wig, z).mean(0)
print(
    "closed form:",
    m_sc.numpy().round(4),
    "\nempirical:  ",
    s_emp.numpy().round(4),
)
assert float((s_emp - m_sc).abs().max()) < 0.05

# %% [markdown]
# 2. **The second-moment formula.** Expand the generalised MP equation at large $|z|$ with
#    $s = -\frac1z - \frac{M_1}{z^2} - \frac{M_2}{z^3} - \cdots$ and show that
#    $M_1 = \mathbb E\omega$ and $M_2 = \gamma\,\mathbb E[\omega^2] + (\mathbb E\omega)^2$.
#    Check it by integrating $x^2$ against the density that `hl.gmp_density` returns for the
#    two-point weights of {numref}`fig-05-gmp`.
#
# :::{dropdown} Solution
# Write the equation as $\frac1s = -z + \mathbb E\frac{\omega}{1+\gamma\omega s}$. Since
# $s = O(1/z)$, expand $\frac{\omega}{1+\gamma\omega s} = \omega - \gamma\omega^2 s + O(z^{-2})
# = \omega + \frac{\gamma\omega^2}{z} + O(z^{-2})$. On the left,
# $\frac1s = -z\big(1 + \frac{M_1}{z} + \frac{M_2}{z^2}+\cdots\big)^{-1} = -z + M_1 +
# \frac{M_2 - M_1^2}{z} + O(z^{-2})$. Matching powers of $z$: $M_1 = \mathbb E\omega$ and
# $M_2 - M_1^2 = \gamma\,\mathbb E[\omega^2]$. So the second moment of the limit spectrum — the
# limit of $\frac1d\|H\|_F^2$ — is $\gamma\,\mathbb E[\omega^2] + (\mathbb E\omega)^2$; only
# two moments of $\omega$ enter, although the density depends on its whole law.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
x = law_g.grid
moments = [
    float(torch.trapezoid(x**k * law_g.density, x)) for k in (0, 1, 2)
]
print(
    f"mass {moments[0]:.5f}, M1 {moments[1]:.5f} (E omega = "
    f"{float(lam_two.mean())}), M2 {moments[2]:.5f} (formula {m2_g_pred})"
)
assert (
    abs(moments[1] - 2.5) < 0.01 and abs(moments[2] / m2_g_pred - 1) < 0.01
)

# %% [markdown]
# 3. **Why the gap is $O(1/N)$ for Gaussian data.** With $x_n' = (I-P)x_n + P\tilde x_n$ as in
#    the text, show that (a) $H - H'$ has rank at most $2C$; (b) for symmetric $A, B$ with
#    $\operatorname{rank}(A - B)\le r$, $|s_A(z) - s_B(z)|\le\frac{\pi r}{d\operatorname{Im}z}$;
#    (c) hence $|\delta_N(z)|\le\frac{2\pi C}{d\operatorname{Im}z}$. Check (a) numerically.
#
# :::{dropdown} Solution
# (a) $x_nx_n^\top - x_n'x_n'^\top = Px_nx_n^\top P - P\tilde x_n\tilde x_n^\top P +
# Px_n\,x_n^\top(I-P) + (I-P)x_n\,x_n^\top P - (\text{same with }\tilde x_n\text{ in the }P\text{
# slots})$: every term has its column space or its row space in $\operatorname{range}P$, so
# $H - H' = PB + B^\top P$ for some $B$, of rank at most $2C$. (b) By eigenvalue interlacing, a
# rank-$r$ perturbation moves the counting function $F_A(x) = \frac1d\#\{\lambda_j\le x\}$ by at
# most $r/d$; integrating by parts,
# $s_A - s_B = \int\frac{(F_A - F_B)(x)}{(x-z)^2}dx$, and $\int\frac{dx}{|x-z|^2} =
# \frac{\pi}{\operatorname{Im}z}$. (c) $\mathbb E s_{H'} = \mathbb E s_{\tilde H}$ because the
# pairs $(\omega(Vx_n), x_n')$ and $(\omega(V\tilde x_n), x_n)$ have the same law; apply
# (b) draw by draw. The sweep above confirmed (c) for every draw; the cell checks the rank.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
X, X_tilde = (
    hl.gaussian_data(300, 60, 2, seed=seed + s, device=device).X
    for s in (9, 10)
)
V5 = hl.linear_net(60, 5, seed=seed + 11, device=device).V.detach()
lam_X = hl.rmt.ce_diagonal_weights(X, V5)[:, 0]
diff = hl.rmt.weighted_gram(X, lam_X) - hl.rmt.weighted_gram(
    hl.rmt.swap_projection(X, X_tilde, V5), lam_X
)
rank = int(torch.linalg.matrix_rank(diff))
print(f"rank(H - H') = {rank} for C = 5, d = 60")
assert rank <= 10

# %% [markdown]
# 4. **Why a few Lanczos steps get the Frobenius norm exactly.** Show that with $s$ Lanczos steps
#    from a probe $v$, $\sum_j\tau_j\theta_j^k = v^\top H^kv$ for every $k\le 2s-1$. Conclude
#    that with $s\ge2$ steps, `moment(2)` of an SLQ spectrum is the Hutchinson estimate
#    $\frac1K\sum_p\|Hv_p\|^2$ of $\frac1d\|H\|_F^2$ — its error comes from the probes, not from
#    the quadrature.
#
# :::{dropdown} Solution
# Lanczos builds an orthonormal basis $Q_s$ of the Krylov space
# $\mathcal K_s = \operatorname{span}\{v, Hv, \dots, H^{s-1}v\}$ with $T_s = Q_s^\top HQ_s$
# tridiagonal, and $H^jv = Q_sT_s^je_1$ for $j\le s-1$ (induction on $j$: $H^{j-1}v\in\mathcal K_s$
# and $T_s$ is $H$ compressed to $\mathcal K_s$). Any $k\le 2s-1$ splits as $k = a + c + b$
# with $a, b\le s-1$ and $c\in\{0, 1\}$, so
# $v^\top H^kv = (H^av)^\top H^c(H^bv) = e_1^\top T_s^aT_s^cT_s^be_1 = e_1^\top T_s^ke_1$.
# With $T_s = U\Theta U^\top$ this is $\sum_j\tau_j\theta_j^k$, $\tau_j = U_{1j}^2$: the Gauss
# quadrature is exact up to degree $2s-1$. For $k = 2$, $s\ge2$ it returns $\|Hv\|^2$ exactly.
# The cell runs two Lanczos steps from four Rademacher probes and compares, probe by probe.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
signs = (
    torch.randint(
        0, 2, (cfg.slq_d, 4), generator=hl.make_generator(seed + 12)
    )
    * 2
    - 1
)
probes = (
    signs.to(device=device, dtype=torch.float64) / cfg.slq_d**0.5
)  # (d, 4) unit Rademacher
res = hl.lanczos(matvec, cfg.slq_d, num_steps=2, probes=probes)
quad = (res.weights * res.nodes**2).sum(
    1
)  # (4,) two-node quadrature of x^2, per probe
hutch = (matvec(probes) ** 2).sum(0).cpu()  # (4,) |H v|^2
quad = quad.cpu()
print("quadrature:", quad.numpy(), "\n|Hv|^2:    ", hutch.numpy())
assert torch.allclose(quad, hutch, rtol=1e-10)

# %% [markdown]
# ## Cost of this chapter
#
# This run used the {glue:md}`ch05_profile` profile on {glue:md}`ch05_device` and took
# {glue:text}`ch05_elapsed_s:.0f` s of wall-clock time ({glue:text}`ch05_cpu_s:.0f` s of CPU
# time), of which {glue:text}`ch05_gap_s:.0f` s for the sweep over $N$
# ({glue:md}`ch05_clock_label`: one measurement on a shared machine, where the wall clock
# depends on the load; the CPU time much less). Matrices up to
# $d\approx1000$ are diagonalised with one thread (on a busy shared CPU a second thread costs
# more than it gains). The `paper` profile (1000 Wigner matrices as in the talk, the sweep up to
# $N = 8000$, blocks with $d = 2000$) needs about {glue:text}`ch05_paper_factor:.0f` times the
# floating-point work of `default` (counting $d^3 + Nd^2$ per matrix formed and diagonalised),
# about {glue:text}`ch05_paper_cpu_h:.1f` hours at the CPU speed of this run, much less on a GPU
# (an estimate: the `paper` profile was not run for this build).

# %%


def work(p):  # d^3 + N d^2 per matrix formed and diagonalised
    mat = lambda N, d: d**3 + N * d**2  # noqa: E731
    gap = sum(
        3 * M * mat(N, N // 4) for N, M in zip(p["Ns"], p["gap_samples"])
    )
    return (
        p["wigner_samples"] * p["wig_n"] ** 3
        + 2 * p["blk_samples"] * mat(p["blk_N"], p["blk_d"])
        + 6 * p["t_samples"] * mat(p["t_N"], p["t_N"] // 4)
        + gap
    )


factor = work(PROFILES["paper"]) / work(PROFILES["default"])

# %% tags=["remove-cell"]
glue("ch05_profile", Markdown(f"`{cfg.profile}`"), display=False)
glue("ch05_device", Markdown(hl.device_name(device)), display=False)
glue("ch05_elapsed_s", time.perf_counter() - t_start, display=False)
glue("ch05_cpu_s", time.process_time() - cpu_start, display=False)
glue(
    "ch05_clock_label",
    Markdown(
        f"this machine, {torch.get_num_threads()} thread(s), load "
        f"{load_start:.1f} at the start"
    ),
    display=False,
)
glue("ch05_paper_factor", factor, display=False)
glue(
    "ch05_paper_cpu_h",
    (time.process_time() - cpu_start)
    * work(PROFILES["paper"])
    / work(vars(cfg))
    / 3600,
    display=False,
)
