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
# # 04 The static force: cases 1–4 and the number of classes
#
# {doc}`Chapter 03 <03_dynamic_force>` followed the *dynamic* force: where the network can fit
# its labels, training drives the residuals $p_n - e_{y_n}$ to zero and, with them, the cross
# block $H_{wv}$; where it cannot, as with the talk's random labels, the residual term stays
# and $H_{wv}$ loses weight only relative to the output block, which training makes far larger
# ({numref}`fig-03-residual-gap`). This chapter is about the other force of
# {cite}`dong2025hessian`, the *static* one. It is present before any training, at random
# initialisation, and it comes from the architecture — above all from the number of classes
# $C$. The claim to test is quantitative:
#
# * off-diagonal **class blocks** of the output layer shrink like $1/C$ relative to the
#   diagonal ones;
# * off-diagonal **neuron blocks** of the hidden layer shrink like $1/\sqrt C$.
#
# We go through the four cases of the talk — linear model or one hidden layer, MSE or CE —
# write their block formulas, check them against automatic differentiation, and then sweep
# $C$ from 2 to 1000 and beyond. Two predictions are laid over the measurements: the talk's
# back-of-the-envelope argument, and the second-moment formula of random-matrix theory that
# {doc}`chapter 05 <05_random_matrices>` develops. Where they miss, we say by how much. The
# chapter ends with the talk's "three levels" summary, rebuilt from computed Hessians.
#
# The setting is that of the whole book: rows $x_n\sim\mathcal N(0, I_d)$, labels uniform and
# independent of $X$, no biases, Gaussian initialisation with variance $1/\text{fan-in}$ (LeCun),
# the assumption of the theory. The authors' own scripts used PyTorch's default *uniform*
# initialisation; set the parameter `init = "pytorch"` to use it (exercise 5 shows what changes).

# %% [markdown]
# ## What you will be able to do after this chapter
#
# * write the block formulas of the four cases (linear / one hidden layer, MSE / CE) and check
#   them against automatic differentiation;
# * measure how class-block and neuron-block ratios decay with $C$ (`hl.block_ratios_at_init`)
#   and fit the slopes against $-1$ and $-1/2$;
# * compare the measurements with the talk's $1/(C-1)$ and $C^{-1/2}$ intuition and with the
#   second-moment prediction `hl.predicted_block_ratios`, and say where each one misses;
# * rebuild the talk's "three levels" of block-diagonal structure from computed Hessians.
#
# Symbols and block names are collected on {doc}`the notation page <../book/notation>`.

# %% tags=["parameters"]
profile = "default"
seed = 0
N = None  # samples of the sweep and of the heatmaps
d = None  # input dimension (gamma = d / N)
num_seeds = None  # independent draws per C in the sweep
init = None  # "lecun" (theory) or "pytorch" (nn.Linear's uniform default)

# %%
import os
import time

import hesslib as hl
import matplotlib.pyplot as plt
import numpy as np
import torch
from hesslib import rmt
from hesslib.chapters import static_force as ch
from IPython.display import Markdown
from myst_nb import glue

COMMON = {
    "m": 8,
    "c_fit_min": 32,
    "heat_Cs": [10, 100, 1000],
    "init": "lecun",
    "dep_draws": 3,
}
LEVELS = {
    "lvl_N": 256,
    "lvl_d": 32,
    "lvl_C": 256,
    "lvl_steps": 300,
}  # the three-levels net
PROFILES = {
    "quick": COMMON
    | {
        "N": 200,
        "d": 20,
        "Cs": [2, 8, 32, 128],
        "num_seeds": 2,
        "c_fit_min": 8,
    }
    | {"dep_Ns": [100, 200]}
    | {"lvl_N": 128, "lvl_d": 16, "lvl_C": 128, "lvl_steps": 150},
    "default": COMMON
    | LEVELS
    | {
        "N": 1000,
        "d": 100,
        "Cs": [2**k for k in range(1, 11)],
        "num_seeds": 5,
    }
    | {"dep_Ns": [250, 500, 1000, 2000]},
    "paper": COMMON
    | LEVELS
    | {
        "N": 5000,
        "d": 500,
        "Cs": [2**k for k in range(1, 13)],
        "num_seeds": 10,
    }
    | {"dep_Ns": [500, 1000, 2000, 4000, 8000]},
}
cfg = hl.resolve_profile(
    profile, PROFILES, N=N, d=d, num_seeds=num_seeds, init=init
)
device = hl.default_device()
print("device:", hl.device_name(device))
t_start = time.perf_counter()

# %% [markdown]
# ## Four cases, four block formulas
#
# Write $p_n = \operatorname{softmax}(f(x_n))$, $S_n = \operatorname{diag}(p_n) - p_np_n^\top$
# for CE and $S_n = I_C$ for MSE (with its factor ½), $a_n = \sigma(Wx_n)$ for the hidden
# features and $D_{nk} = \mathbf 1[w_k^\top x_n > 0]$ for the ReLU masks. Every block below is
# of one shape, a weighted sum of rank-one matrices
# $\frac1N\sum_n \omega_n\, u_nu_n^\top$: only the weights $\omega_n$ and the features $u_n$
# change from case to case.
#
# **Case 1, linear model + MSE.** $f(x) = Vx$ and, for classes $i, j$,
#
# $$H_{v_iv_j} = \delta_{ij}\,\frac1N\sum_n x_nx_n^\top .$$
#
# The off-diagonal blocks are exactly zero, for every $C$: the outputs do not interact in the
# loss, so nothing links $v_i$ to $v_j$.
#
# **Case 2, linear model + CE.** The softmax couples the classes:
#
# $$H_{v_iv_i} = \frac1N\sum_n p_{n,i}(1-p_{n,i})\,x_nx_n^\top, \qquad
#   H_{v_iv_j} = -\frac1N\sum_n p_{n,i}\,p_{n,j}\,x_nx_n^\top \quad (i\neq j).$$
#
# **Case 3, one hidden layer + MSE.** $f(x) = V\sigma(Wx)$. For neurons $k, l$ and classes
# $i, j$,
#
# $$H_{w_kw_l} = \Big(\sum_c v_{ck}v_{cl}\Big)\frac1N\sum_n D_{nk}D_{nl}\,x_nx_n^\top, \qquad
#   H_{v_iv_j} = \delta_{ij}\,\frac1N\sum_n a_na_n^\top .$$
#
# **Case 4, one hidden layer + CE.**
#
# $$H_{w_kw_l} = \frac1N\sum_n \Big(\sum_c p_{n,c}v_{ck}v_{cl}
#   - \sum_c p_{n,c}v_{ck}\sum_c p_{n,c}v_{cl}\Big) D_{nk}D_{nl}\,x_nx_n^\top, \qquad
#   H_{v_iv_j} = \frac1N\sum_n S_n[i,j]\,a_na_n^\top .$$
#
# The bracket in $H_{w_kw_l}$ is $(V^\top S_nV)_{kl}$, a covariance of the columns $k$ and
# $l$ of $V$ under the weights $p_n$. The cross block $H_{wv}$ has a term proportional to the
# residuals; it is the subject of {doc}`chapter 03 <03_dynamic_force>` and returns at the end of
# this chapter.
#
# `hl.closed_form_hessian` implements these formulas as matrix products. The cell below
# compares it with `torch.func.hessian` on a small instance of each case.

# %%
small = hl.gaussian_data(24, 5, 4, seed=seed, device=device)
errors = {}
for case in (1, 2, 3, 4):
    model, loss = hl.case_model(
        case, 5, 4, m=3, seed=seed + case, device=device
    )
    f, theta = hl.flat_loss(model, small.X, small.y, loss)
    H_closed = hl.closed_form_hessian(model, small.X, small.y, loss=loss)
    errors[case] = float(
        (H_closed - hl.hessian_reference(f, theta)).abs().max()
    )
print({case: f"{err:.1e}" for case, err in errors.items()})
assert max(errors.values()) < 1e-10

# %% [markdown]
# In case 1 the zeros are exact, not merely small. Autograd, which knows nothing of the
# formulas, returns off-diagonal class blocks whose largest entry is exactly $0$:

# %%
model, loss = hl.case_model(1, 5, 4, seed=seed, device=device)
f, theta = hl.flat_loss(model, small.X, small.y, loss)
norms = hl.block_norms(hl.hessian_reference(f, theta), model.layout())
off_diagonal = norms[~torch.eye(4, dtype=torch.bool, device=norms.device)]
print(norms.cpu())  # on the CPU: no device in the printout
assert float(off_diagonal.max()) == 0.0

# %% [markdown]
# The same holds for $H_{vv}$ of case 3. Under MSE the class blocks are decoupled by the
# structure of the loss; this is the first of the talk's "three levels".
#
# ## What the talk proves
#
# {cite}`dong2025hessian` states its results under two assumptions, in the limit
# $d, N\to\infty$ with $d/N\to\gamma\in(0,\infty)$:
#
# * **Assumption 1** (data): the entries of the data matrix are i.i.d. $\mathcal N(0,1)$ —
#   here the rows $x_n\sim\mathcal N(0, I_d)$ (the talk stores the samples as columns; see
#   {doc}`../book/notation`);
# * **Assumption 2** (initialisation): LeCun initialisation, $V_{ij}\sim\mathcal N(0, 1/d)$
#   for the linear model, $W_{ij}\sim\mathcal N(0, 1/d)$ and $V_{ij}\sim\mathcal N(0, 1/m)$
#   for the one-hidden-layer net.
#
# **Theorem 1** (linear model, case 2). For fixed $C\ge 2$ and $i\ne j$, almost surely
#
# $$\lim_{d,N\to\infty}\frac{\|H_{v_iv_j}\|_F^2}{\|H_{v_iv_i}\|_F^2}
#   = \frac{g_{ij}(\gamma, C)}{g_{ii}(\gamma, C)},\qquad
#   \lim_{C\to\infty}\frac{C^2\,g_{ij}(\gamma, C)}{g_{ii}(\gamma, C)}
#   = \frac{\gamma e^2 + 1}{\gamma e + 1},$$
#
# with functions $g_{ij}, g_{ii}$ that the paper computes in closed form: the squared ratio
# vanishes like $C^{-2}$.
#
# **Theorem 2** (one hidden layer, cases 3 and 4). For any fixed $m\ge 3$, the limits as
# $d, N\to\infty$ of
#
# $$\frac{\mathbb E\|H_{w_iw_j}\|_F^2}{\mathbb E\|H_{w_iw_i}\|_F^2}\ (\text{CE}),\qquad
#   \frac{\mathbb E\|H_{w_iw_j}\|_F^2}{\mathbb E\|H_{w_iw_i}\|_F^2}\ (\text{MSE}),\qquad
#   \frac{\mathbb E\|H_{v_iv_j}\|_F^2}{\mathbb E\|H_{v_iv_i}\|_F^2}\ (\text{CE})$$
#
# vanish as $C\to\infty$ at the rates $O(1/C)$, $O(1/C)$ and $O(1/C^2)$. The talk's summary
# also lists a rate $O(1/C)$ for the output layer of case 3; there the off-diagonal class
# blocks are exactly zero (the cell above), so that rate holds trivially.
#
# The block ratio $r$ of this book ({doc}`chapter 01 <01_observations>`) is the square root of
# such a ratio, with the average over the exchangeable blocks of one draw standing in for the
# expectation: the theorems predict $r\propto C^{-1}$ for class blocks and $r\propto C^{-1/2}$ for
# neuron blocks. What the chapter checks numerically:
#
# * the block formulas of the four cases, exactly (the cell above);
# * the rates, as slopes of $r$ against $C$ at one size $N$, $d$ with several independent
#   draws per $C$ (the sweep below), and Theorem 1's constant (exercise 2, and $C\,r$ in
#   {numref}`fig-04-compensated`);
# * for one block, whether the gap between measurement and prediction shrinks as $N$ and $d$
#   grow together (the case-4 output layer, below).
#
# What it does not check: the limit $d, N\to\infty$ for the other blocks, almost-sure
# convergence, the closed forms of $g_{ij}, g_{ii}$ and of Theorem 2's limits (the talk omits
# them), and data or weights outside Assumptions 1–2 (exercise 5 and the images of
# {numref}`fig-01-cifar` leave them). {doc}`Chapter 05 <05_random_matrices>` checks the decoupling
# step of the proof.
#
# ## Why the number of classes matters: the talk's argument
#
# **Class blocks (cases 2 and 4).** At initialisation the logits are small, so
# $p_{n,i}\approx 1/C$ for all $n, i$. Then the weights of an off-diagonal block are about
# $1/C^2$ and those of a diagonal block about $\frac1C(1-\frac1C)$, on the *same* matrix
# $\frac1N\sum_n u_nu_n^\top$, so
#
# $$\frac{\|H_{v_iv_j}\|_F}{\|H_{v_iv_i}\|_F}\approx\frac{1/C^2}{\frac1C(1-\frac1C)}
#   = \frac{1}{C-1}.$$
#
# **Neuron blocks (cases 3 and 4).** In case 3 the ratio of an off-diagonal to a diagonal
# block is about $\sum_c v_{ck}v_{cl} / \sum_c v_{ck}^2$. The numerator is a sum of $C$
# independent mean-zero terms, of size $\sqrt C/m$; the denominator is about $C/m$. An
# empirical covariance over an empirical variance of independent columns tends to zero like
# $C^{-1/2}$. Case 4 gives the same with the $p$-weighted, centred versions.
#
# The argument gets the *rates* and treats everything else as equal on both sides of the
# ratio. That is where it loses the constants, as the sweep below shows.
#
# ## The random-matrix prediction
#
# {doc}`Chapter 05 <05_random_matrices>` studies a block $H = \frac1N\sum_n\omega_nx_nx_n^\top$
# with weights $\omega$ independent of the Gaussian inputs. Its squared Frobenius norm has a
# simple limit. Expanding,
#
# $$\mathbb E\|H\|_F^2 = \frac{1}{N^2}\sum_{n,n'}\mathbb E[\omega_n\omega_{n'}]\,
#   \mathbb E[(x_n^\top x_{n'})^2]
#   = \frac{d(d+2)}{N}\mathbb E[\omega^2] + d\Big(1-\frac1N\Big)(\mathbb E\omega)^2,$$
#
# since $\mathbb E\|x\|^4 = d(d+2)$ and $\mathbb E(x^\top x')^2 = d$ for independent $x, x'$.
# With $\gamma = d/N$ fixed and $d\to\infty$,
#
# $$\frac1d\|H\|_F^2 \;\to\; \gamma\,\mathbb E[\omega^2] + (\mathbb E\omega)^2 .$$
#
# The prediction takes the weights of every block — $p_{n,i}(1-p_{n,i})$, $-p_{n,i}p_{n,j}$,
# $(V^\top S_nV)_{kl}D_{nk}D_{nl}$ — from the *same model* evaluated on inputs independent of
# $X$, and averages the right-hand side over blocks. For the ReLU features $a_n\in\mathbb R^m$
# of the output layer, which are neither isotropic nor high-dimensional, the same expansion
# gives $\|\Sigma_a\|_F^2(\gamma_{\rm eff}\mathbb E[\omega^2] + (\mathbb E\omega)^2)$ with
# $\Sigma_a = \mathbb E[aa^\top]$ and $\gamma_{\rm eff} = \mathbb E\|a\|^4 / (N\|\Sigma_a\|_F^2)$.
# The library computes all of this without forming a Hessian (`hl.predicted_block_ratios`;
# the measured side, `hl.block_ratios_at_init`, uses
# $\|\frac1N\sum_n\omega_nu_nu_n^\top\|_F^2 = \omega^\top(G\circ G)\omega/N^2$ with the
# Gram matrix $G = UU^\top$, which costs $O(N^2(d + C))$ instead of the $O(NC^2m^2)$ of a
# dense $H_{vv}$).
#
# A first check on the ten diagonal class blocks of a case-2 model with $C = 10$: each
# $\frac1d\|H_{v_iv_i}\|_F^2$ measured on $X$ against `rmt.second_moment_prediction` with
# the weights $p_{n,i}(1-p_{n,i})$ computed on independent inputs.

# %%
X = hl.gaussian_data(cfg.N, cfg.d, 2, seed=seed + 1, device=device).X
X_indep = hl.gaussian_data(
    10 * cfg.N, cfg.d, 2, seed=seed + 2, device=device
).X  # many λ samples
net, _ = hl.case_model(
    2, cfg.d, 10, init=cfg.init, seed=seed + 3, device=device
)
p, p_indep = (
    torch.softmax(inputs @ net.V.detach().T, dim=1)
    for inputs in (X, X_indep)
)
lam, lam_indep = (
    p * (1 - p),
    p_indep * (1 - p_indep),
)  # (N, C): weights of the diagonal blocks
measured = np.array(
    [
        float((X.T @ (lam[:, [i]] * X)).pow(2).sum()) / cfg.N**2 / cfg.d
        for i in range(10)
    ]
)
predicted = np.array(
    [
        rmt.second_moment_prediction(lam_indep[:, i], gamma=cfg.d / cfg.N)
        for i in range(10)
    ]
)
print("prediction / measurement - 1, classes 0 to 9:")
print(
    np.array2string(
        predicted / measured - 1, precision=3, max_line_width=72
    )
)
assert abs(predicted.mean() / measured.mean() - 1) < 0.2

# %% tags=["remove-cell"]
glue(
    "ch04_diag_err_max",
    float(np.abs(predicted / measured - 1).max()),
    display=False,
)
glue(
    "ch04_diag_err_mean",
    float(abs(predicted.mean() / measured.mean() - 1)),
    display=False,
)

# %% [markdown]
# Single blocks deviate from their prediction by up to {glue:text}`ch04_diag_err_max:.1%`
# (at $N =$ {glue:text}`ch04_N`, $d =$ {glue:text}`ch04_d`: the softmax weights are
# heavy-tailed, so one block's $\mathbb E\omega$ is estimated from few effective samples);
# their average misses by {glue:text}`ch04_diag_err_mean:.1%`. The block *ratio* is an average
# over many blocks of this kind, which is why it is predicted much better than any one block.
#
# ## The sweep over C
#
# For each $C$ on a log grid and each of several independent draws (data, weights and the
# independent copy for the prediction are all redrawn), we compute the RMS block ratio
# $r = \sqrt{\operatorname{mean}_{i\ne j}\|H_{ij}\|_F^2}\,/\,\sqrt{\operatorname{mean}_i\|H_{ii}\|_F^2}$
# for the class blocks of $H_{vv}$ (cases 2 and 4) and the neuron blocks of $H_{ww}$ (cases 3 and
# 4; the two losses share the weights), and its prediction.

# %%
seeds = range(seed, seed + cfg.num_seeds)
t_sweep = time.perf_counter()
sweep = ch.class_sweep(
    cfg.Cs, seeds, N=cfg.N, d=cfg.d, m=cfg.m, init=cfg.init, device=device
)
sweep_s = time.perf_counter() - t_sweep
assert np.all(
    sweep.measured["case2_vv"][0] > 0.999
)  # C = 2: p_1(1-p_1) = p_1 p_2 exactly

# %% tags=["remove-cell"]
glue("ch04_N", cfg.N, display=False)
glue("ch04_d", cfg.d, display=False)
glue("ch04_gamma", cfg.d / cfg.N, display=False)
glue("ch04_C_max", int(max(cfg.Cs)), display=False)
glue("ch04_num_seeds", cfg.num_seeds, display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Off-diagonal/diagonal block ratio at initialisation against the number of classes. Left: class blocks of $H_{vv}$ under CE, linear model (case 2) and one hidden layer (case 4). Right: neuron blocks of $H_{ww}$, one hidden layer, MSE (case 3) and CE (case 4). Solid: mean over independent draws, band: min–max; dashed: second-moment prediction; black dotted: the talk's intuition, $1/(C-1)$ and $C^{-1/2}$.", "name": "fig-04-sweep"}}
Cs = sweep.Cs.astype(float)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for key, label, color in (
    ("case2_vv", "case 2", "tab:blue"),
    ("case4_vv", "case 4", "tab:orange"),
):
    hl.plot.sweep(sweep, key, ax=axes[0], label=label, color=color)
for key, label, color in (
    ("case3_ww", "case 3", "tab:green"),
    ("case4_ww", "case 4", "tab:red"),
):
    hl.plot.sweep(sweep, key, ax=axes[1], label=label, color=color)
axes[0].plot(
    Cs, ch.intuition_ratio(Cs, block="vv"), "k:", label="talk: $1/(C-1)$"
)
axes[1].plot(
    Cs, ch.intuition_ratio(Cs, block="ww"), "k:", label="talk: $C^{-1/2}$"
)
for ax, name in zip(
    axes, ("class blocks of $H_{vv}$ (CE)", "neuron blocks of $H_{ww}$")
):
    ax.set_ylabel(f"RMS ratio, {name}")
    ax.legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# On a log-log scale the four curves are straight lines with the predicted slopes, and the
# dashed predictions sit on three of them. We fit $\log r = a + s\log C$ by least squares
# over all draws with $C\ge$ {glue:text}`ch04_c_fit_min` (the theory is about large $C$;
# every point is an independent draw, so the residuals are independent) and report 95 %
# confidence intervals from the standard error of the slope:

# %%
fits = {
    k: hl.fit_slope(Cs, sweep.measured[k], c_min=cfg.c_fit_min)
    for k in ch.SWEEP_KEYS
}
fits_pred = {
    k: hl.fit_slope(Cs, sweep.predicted[k], c_min=cfg.c_fit_min)
    for k in ch.SWEEP_KEYS
}
for k in ch.SWEEP_KEYS:
    f, fp = fits[k], fits_pred[k]
    print(
        f"{k}: measured {f.slope:.3f} [{f.low:.3f}, {f.high:.3f}], "
        f"predicted {fp.slope:.3f}"
    )
assert all(-1.15 < fits[k].slope < -0.85 for k in ("case2_vv", "case4_vv"))
assert all(-0.75 < fits[k].slope < -0.3 for k in ("case3_ww", "case4_ww"))

# %% tags=["remove-cell"]
glue("ch04_c_fit_min", cfg.c_fit_min, display=False)

# %%
RATE = {
    "case2_vv": -1.0,
    "case4_vv": -1.0,
    "case3_ww": -0.5,
    "case4_ww": -0.5,
}
outside = [
    f"case {k[4]} ({'class' if k.endswith('vv') else 'neuron'} blocks)"
    for k in RATE
    if not fits[k].contains(RATE[k])
]
listed = " and ".join(
    [", ".join(outside[:-1]), outside[-1]] if len(outside) > 1 else outside
)
verdict = (
    f"the intervals of {listed} exclude them"
    if outside
    else "all intervals contain them"
)

# %% tags=["remove-cell"]
for k in ch.SWEEP_KEYS:
    for name, fit in (("slope", fits[k]), ("pslope", fits_pred[k])):
        for attr in ("slope", "low", "high"):
            glue(
                f"ch04_{name}_{k}_{attr}",
                getattr(fit, attr),
                display=False,
            )

# %% tags=["remove-cell"]
glue("ch04_slopes_verdict", Markdown(verdict), display=False)
glue(
    "ch04_slope_dev_max",
    max(abs(fits[k].slope - RATE[k]) for k in RATE),
    display=False,
)

# %% [markdown]
# | block ratio | rate (theory) | measured slope [95 % CI] | slope of the prediction |
# | --- | --- | --- | --- |
# | case 2, class blocks | $-1$ | {glue:text}`ch04_slope_case2_vv_slope:.3f` [{glue:text}`ch04_slope_case2_vv_low:.3f`, {glue:text}`ch04_slope_case2_vv_high:.3f`] | {glue:text}`ch04_pslope_case2_vv_slope:.3f` |
# | case 4, class blocks | $-1$ | {glue:text}`ch04_slope_case4_vv_slope:.3f` [{glue:text}`ch04_slope_case4_vv_low:.3f`, {glue:text}`ch04_slope_case4_vv_high:.3f`] | {glue:text}`ch04_pslope_case4_vv_slope:.3f` |
# | case 3, neuron blocks | $-1/2$ | {glue:text}`ch04_slope_case3_ww_slope:.3f` [{glue:text}`ch04_slope_case3_ww_low:.3f`, {glue:text}`ch04_slope_case3_ww_high:.3f`] | {glue:text}`ch04_pslope_case3_ww_slope:.3f` |
# | case 4, neuron blocks | $-1/2$ | {glue:text}`ch04_slope_case4_ww_slope:.3f` [{glue:text}`ch04_slope_case4_ww_low:.3f`, {glue:text}`ch04_slope_case4_ww_high:.3f`] | {glue:text}`ch04_pslope_case4_ww_slope:.3f` |
#
# The fitted slopes are within {glue:text}`ch04_slope_dev_max:.3f` of the theoretical rates,
# and {glue:md}`ch04_slopes_verdict`. Multiplying each ratio by the power of $C$ it should
# decay with shows what the intervals react to.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The same ratios multiplied by the predicted power of $C$: $C\\,r$ for class blocks (left) and $\\sqrt C\\,r$ for neuron blocks (right). A flat curve is a clean power law. Dashed: second-moment prediction; dotted: the talk's intuition in the same units; grey line: the large-$C$ constant of case 2, $\\sqrt{(\\gamma e^2+1)/(\\gamma e+1)}$.", "name": "fig-04-compensated"}}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for key, label, color in (
    ("case2_vv", "case 2", "tab:blue"),
    ("case4_vv", "case 4", "tab:orange"),
):
    hl.plot.sweep(
        sweep, key, ax=axes[0], label=label, color=color, compensate=1.0
    )
for key, label, color in (
    ("case3_ww", "case 3", "tab:green"),
    ("case4_ww", "case 4", "tab:red"),
):
    hl.plot.sweep(
        sweep, key, ax=axes[1], label=label, color=color, compensate=0.5
    )
gamma = cfg.d / cfg.N
limit = np.sqrt((gamma * np.e**2 + 1) / (gamma * np.e + 1))
axes[0].axhline(
    limit, color="grey", lw=0.8, label="case 2, large-$C$ limit"
)
axes[0].plot(Cs, Cs / (Cs - 1), "k:", label="talk: $C/(C-1)$")
axes[1].axhline(1.0, color="k", ls=":", label="talk: 1")
axes[0].set_ylabel("$C \\cdot r$ (class blocks)")
axes[1].set_ylabel("$\\sqrt{C} \\cdot r$ (neuron blocks)")
for ax in axes:
    ax.legend(fontsize=7)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Where measurement and prediction disagree, and by how much

# %%
err = {key: sweep.relative_error(key) for key in ch.SWEEP_KEYS}
print("prediction / measurement - 1, one row per number of classes C")
print(f"{'C':>6}" + "".join(f"{key:>11}" for key in err))
for i, C in enumerate(sweep.Cs):
    print(f"{C:>6}" + "".join(f"{e[i]:>+11.3f}" for e in err.values()))
assert all(
    np.abs(err[k]).max() < 0.1
    for k in ("case2_vv", "case3_ww", "case4_ww")
)
assert (
    err["case4_vv"][-1] < -0.05
)  # the output layer of case 4: prediction too low

# %% tags=["remove-cell"]
for key, e in err.items():
    glue(f"ch04_relerr_max_{key}", float(np.abs(e).max()), display=False)
    glue(f"ch04_relerr_last_{key}", float(-e[-1]), display=False)

# %%
first = int(
    np.argmax(sweep.Cs >= cfg.c_fit_min)
)  # first C of the fitted range
# key -> r · C^{-rate} (mean over draws) at the first and last fitted C
const = {}
for key in RATE:  # flat for an exact power law
    compensated = (sweep.measured[key] * Cs[:, None] ** -RATE[key]).mean(1)
    const[key] = (float(compensated[first]), float(compensated[-1]))
Cr_last = float(
    sweep.measured["case2_vv"][-1].mean() * Cs[-1]
)  # C r at the largest C
assert (
    Cr_last * (1 - 1 / Cs[-1]) > 1
)  # the 1/(C-1) rule underestimates the ratio

# %% tags=["remove-cell"]
for key, (c_first, c_last) in const.items():
    glue(f"ch04_const_first_{key}", c_first, display=False)
    glue(f"ch04_const_last_{key}", c_last, display=False)

# %% tags=["remove-cell"]
glue("ch04_const_case2_theory", float(limit), display=False)
glue(
    "ch04_intuition_gap_case2",
    float(Cr_last * (1 - 1 / Cs[-1]) - 1),
    display=False,
)  # (C-1) r - 1
glue(
    "ch04_limit_gap_case2", float(abs(Cr_last / limit - 1)), display=False
)

# %% [markdown]
# **The second-moment prediction holds for three of the four curves.** Over the whole range
# of $C$ it stays within {glue:text}`ch04_relerr_max_case2_vv:.1%` of the measured ratio for
# the class blocks of case 2, within {glue:text}`ch04_relerr_max_case3_ww:.1%` for the neuron
# blocks of case 3 and within {glue:text}`ch04_relerr_max_case4_ww:.1%` for those of case 4
# (largest deviation of the ratios averaged over draws; $N =$ {glue:text}`ch04_N`,
# $d =$ {glue:text}`ch04_d`). In these three the weights $\omega_n$ depend on $x_n$ only
# through a few projections ($Vx_n$ or $Wx_n$) of a $d$-dimensional vector, and replacing them
# by independent weights changes little — the decoupling that
# {doc}`chapter 05 <05_random_matrices>` makes rigorous.
#
# **It fails for the output layer of case 4.** For the class blocks of the one-hidden-layer
# net the prediction is too low by up to {glue:text}`ch04_relerr_max_case4_vv:.1%`, and by
# {glue:text}`ch04_relerr_last_case4_vv:.1%` at $C =$ {glue:text}`ch04_C_max`. The features
# $a_n\in\mathbb R^m$ live in $m = 8$ dimensions and the weights are functions of them,
# $p_n = \operatorname{softmax}(Va_n)$, so weights and features never become independent. For
# fixed $m$ and $C$ a class block $\frac1N\sum_n S_n[i,j]\,a_na_n^\top$ is an average of $N$
# independent $m\times m$ matrices; as $N$ and $d$ grow it converges to
# $\mathbb E[S_{ij}\,aa^\top]$ (law of large numbers; $Wx$ tends to $\mathcal N(0, I_m)$ as $d$
# grows), while the prediction converges to the same expression with $S$ and $a$ taken
# independent. What is left of the miss in that limit belongs to this book's decoupled
# prediction, not to the talk's Theorem 2, which is about the rate in $C$ and says nothing of
# this constant. The cell below follows the miss (how much too low the prediction is) as $N$
# and $d$ grow together, at $C = 256$ and
# $\gamma =$ {glue:text}`ch04_gamma:.2f` (`ch.dependence_sweep`,
# {glue:text}`ch04_dep_draws` draws per size): it falls from
# {glue:text}`ch04_dep_miss_first:.1%` at $N =$ {glue:text}`ch04_dep_N_first` to
# {glue:text}`ch04_dep_miss_last:.1%` at $N =$ {glue:text}`ch04_dep_N_last`, so part of it is a
# finite-size effect — but not all: a fit of $a + b/\sqrt N$ (`ch.size_limit`) puts its limit
# at $a =$ {glue:text}`ch04_dep_limit:.1%`, not at zero. The decoupled block stays within
# {glue:text}`ch04_dep_dec_max:.1%` of the prediction at every size. Exercise 4 looks at one size
# in detail.

# %%
dep = ch.dependence_sweep(
    cfg.dep_Ns,
    gamma=cfg.d / cfg.N,
    C=256,
    m=cfg.m,
    draws=cfg.dep_draws,
    seed=seed + 20,
    device=device,
)
miss = 1 - dep["predicted"].mean(1) / dep["measured"].mean(
    1
)  # (K,) prediction too low by
dec = dep["decoupled"].mean(1) / dep["predicted"].mean(1) - 1  # (K,)
dep_fit = ch.size_limit(dep["N"], miss)  # miss ≈ a + b / sqrt(N)
print(
    "N:",
    dep["N"],
    "\n1 - predicted / measured:",
    miss.round(3),
    "\ndecoupled / predicted - 1:",
    dec.round(3),
    f"\nlimit a = {dep_fit.limit:.3f}",
)
tol = 0.1 if cfg.profile == "quick" else 0.05  # quick: tiny N, few draws
assert abs(dec).max() < tol  # decoupling removes the miss at every size
if cfg.profile != "quick":  # two tiny sizes are too few for the fit
    assert dep_fit.limit > 0.05  # ... which does not vanish as N, d grow

# %% tags=["remove-cell"]
glue("ch04_dep_draws", cfg.dep_draws, display=False)
glue("ch04_dep_N_first", int(dep["N"][0]), display=False)
glue("ch04_dep_N_last", int(dep["N"][-1]), display=False)
glue("ch04_dep_miss_first", float(miss[0]), display=False)
glue("ch04_dep_limit", dep_fit.limit, display=False)
glue("ch04_dep_miss_last", float(miss[-1]), display=False)
glue("ch04_dep_dec_max", float(abs(dec).max()), display=False)

# %% [markdown]
# **The talk's intuition gets the rates but not the constants.** For the class blocks of
# case 2 at $C =$ {glue:text}`ch04_C_max`, $(C-1)\,r$ is {glue:text}`ch04_intuition_gap_case2:.0%`
# above the value 1 of the $1/(C-1)$ rule. The random-matrix limit of $C\,r$ is
# $\sqrt{(\gamma e^2+1)/(\gamma e+1)} =$ {glue:text}`ch04_const_case2_theory:.3f` at
# $\gamma =$ {glue:text}`ch04_gamma:.2f` (the squared form is the constant of Theorem 1 in
# {cite}`dong2025hessian`; exercise 2 derives it): the softmax at initialisation is not
# uniform, and with standard Gaussian logits $z$ the factor
# $\mathbb E\,e^{2z}/(\mathbb E\,e^{z})^2 = e$ makes the off-diagonal weights larger than
# $C^{-2}$ in mean square. The measured $C\,r =$ {glue:text}`ch04_const_last_case2_vv:.3f`
# is within {glue:text}`ch04_limit_gap_case2:.1%` of this limit. For the neuron blocks,
# $\sqrt C\,r$ is {glue:text}`ch04_const_last_case3_ww:.2f` (case 3) and
# {glue:text}`ch04_const_last_case4_ww:.2f` (case 4) at $C =$ {glue:text}`ch04_C_max`
# rather than 1: two neurons fire together on about a quarter of the samples but each one on
# half of them, a factor the intuition leaves out (exercise 3).
#
# **The slopes.** Where a confidence interval excludes the theoretical rate, the compensated
# curves of {numref}`fig-04-compensated` are not yet flat over the fitted range. For case 2,
# $C\,r$ moves from {glue:text}`ch04_const_first_case2_vv:.3f` at $C =$
# {glue:text}`ch04_c_fit_min` to {glue:text}`ch04_const_last_case2_vv:.3f` at $C =$
# {glue:text}`ch04_C_max`: the softmax moments approach their large-$C$ values slowly (the
# log-normal $e^{z}$ has heavy tails), so the slope is a little shallower than $-1$, and the
# smooth curve makes the interval narrow enough to notice. The prediction (slope
# {glue:text}`ch04_pslope_case2_vv_slope:.3f`) drifts the same way, so this is a property of
# the model at these $C$, not noise. For the CE neuron blocks $\sqrt C\,r$ goes from
# {glue:text}`ch04_const_first_case4_ww:.2f` to {glue:text}`ch04_const_last_case4_ww:.2f`
# over the fitted range, again reproduced by the prediction (slope
# {glue:text}`ch04_pslope_case4_ww_slope:.3f`); the MSE neuron blocks, which have no softmax
# weights, show the cleanest $C^{-1/2}$. For the class blocks of case 4 the slope is also
# shallower than the prediction's, because of the growing dependence gap described above.
#
# ## What the blocks look like: C = 10, 100, 1000
#
# The talk's pictures: the hidden-layer Hessian $H_{ww}$ of the one-hidden-layer CE net
# ($m = 8$ neurons, so 8 blocks of size $d$) at initialisation for three values of $C$, and
# the output-layer Hessian $H_{vv}$ beside it. `hl.hidden_layer_hessian` forms $H_{ww}$ alone,
# so $C = 1000$ costs no more than $C = 10$; for $H_{vv}$ we draw its first 16 class blocks
# (`hl.output_layer_hessian(..., classes=16)`), a principal sub-matrix.

# %%
K_shown = 16
heat, heat_ratio = {}, {}
for C in cfg.heat_Cs:
    net = hl.one_hidden_net(
        cfg.d, cfg.m, C, init=cfg.init, seed=seed + 4, device=device
    )
    W, V = net.W.detach(), net.V.detach()
    heat[C] = (
        hl.hidden_layer_hessian(X, W, V, loss="ce"),
        hl.output_layer_hessian(
            X, W, V, loss="ce", classes=min(C, K_shown)
        ),
    )
    r_dense = hl.block_ratio(
        heat[C][0], hl.BlockLayout.uniform([("W", cfg.m, cfg.d)])
    )
    assert (
        abs(r_dense / hl.block_ratios_at_init(net, X, loss="ce").ww - 1)
        < 1e-8
    )  # dense = Gram identity
    heat_ratio[C] = r_dense

# %% tags=["remove-cell"]
for C, r in heat_ratio.items():
    glue(f"ch04_heat_ratio_ww_C{C}", r, display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "$|H_{ww}|$ of the one-hidden-layer CE net at initialisation ($m = 8$ neuron blocks of size $d$, Gaussian data) for $C = 10, 100, 1000$. Colour scale clipped at max/50 in each panel; thin lines separate the neuron blocks.", "name": "fig-04-hww"}}
fig, axes = plt.subplots(1, len(cfg.heat_Cs), figsize=(12, 3.9))
for ax, C in zip(axes, cfg.heat_Cs):
    hl.plot.heatmap(
        heat[C][0],
        hl.BlockLayout.uniform([("W", cfg.m, cfg.d)]),
        ax=ax,
        clip=1 / 50,
        title=f"$H_{{ww}}$, C = {C}, d = {cfg.d}, N = {cfg.N}",
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# The off-diagonal blocks fade as $C$ grows: the RMS ratios of these three matrices are
# {glue:text}`ch04_heat_ratio_ww_C10:.3f`, {glue:text}`ch04_heat_ratio_ww_C100:.3f` and
# {glue:text}`ch04_heat_ratio_ww_C1000:.3f`. Within each block the diagonal stands out —
# $\frac1N\sum_n\omega_nx_nx_n^\top$ is close to a multiple of the identity plus
# fluctuations of order $N^{-1/2}$. The output layer fades faster, like $1/C$:

# %% tags=["hide-input"] mystnb={"figure": {"caption": "$|H_{vv}|$ of the same nets, restricted to the first 16 class blocks (all 10 for $C = 10$), each of size $m = 8$. Colour scale clipped at max/50 in each panel.", "name": "fig-04-hvv"}}
fig, axes = plt.subplots(1, len(cfg.heat_Cs), figsize=(12, 3.9))
for ax, C in zip(axes, cfg.heat_Cs):
    K = min(C, K_shown)
    hl.plot.heatmap(
        heat[C][1],
        hl.BlockLayout.uniform([("V", K, cfg.m)]),
        ax=ax,
        clip=1 / 50,
        title=f"$H_{{vv}}$, first {K} of C = {C} classes",
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Three levels of block-diagonal structure
#
# The talk sums up the sources of the block-diagonal pattern in three levels:
#
# 1. **matrix-product zeros**: some blocks are zero by the structure of the loss, whatever the
#    weights (the class blocks under MSE);
# 2. **large $C$ weakens links**: at initialisation the off-diagonal blocks of $H_{ww}$ and
#    $H_{vv}$ shrink like $C^{-1/2}$ and $C^{-1}$ (the static force, this chapter);
# 3. **training removes $H_{wv}$** (the dynamic force): at initialisation the cross block is
#    dominated by a residual term. {doc}`Chapter 03 <03_dynamic_force>` found that training
#    removes it, and with it $H_{wv}$, where the network fits its labels; where it cannot,
#    $H_{wv}$ weakens only relative to the diagonal blocks, which grow
#    ({numref}`fig-03-residual-gap`).
#
# To see the three in one picture we compute full Hessians of a small one-hidden-layer net
# ($m = 4$) and normalise every block by the diagonal blocks it links,
# $\rho_{ij} = \|H_{ij}\|_F / \sqrt{\|H_{ii}\|_F\|H_{jj}\|_F}$ (`ch.coupling_matrix`), so that
# neuron blocks (size $d$) and class blocks (size $m$) can share one colour scale. Four
# states: MSE with $C = 4$; CE with $C = 4$; CE with $C =$ {glue:text}`ch04_lvl_C`; and the
# last net after {glue:text}`ch04_lvl_steps` full-batch Adam steps (`hl.train_adam`, the
# trainer of {doc}`chapter 03 <03_dynamic_force>`).

# %%
m_lvl, K_lvl, lvl = (
    4,
    4,
    {"init": cfg.init, "seed": seed + 6, "device": device},
)
data_small = hl.gaussian_data(
    cfg.lvl_N, cfg.lvl_d, K_lvl, seed=seed + 5, device=device
)
data_big = hl.gaussian_data(
    cfg.lvl_N, cfg.lvl_d, cfg.lvl_C, seed=seed + 5, device=device
)
net_small = hl.one_hidden_net(cfg.lvl_d, m_lvl, K_lvl, **lvl)
net_big = hl.one_hidden_net(cfg.lvl_d, m_lvl, cfg.lvl_C, **lvl)
run = hl.train_adam(
    net_big,
    data_big.X,
    data_big.y,
    loss="ce",
    steps=cfg.lvl_steps,
    lr=1e-2,
    checkpoints=[cfg.lvl_steps],
    progress=False,
)

# %% tags=["remove-cell"]
glue("ch04_lvl_C", cfg.lvl_C, display=False)
glue("ch04_lvl_steps", cfg.lvl_steps, display=False)

# %%
states = {
    "MSE, C = 4": (net_small, data_small, "mse"),
    "CE, C = 4": (net_small, data_small, "ce"),
    f"CE, C = {cfg.lvl_C}": (net_big, data_big, "ce"),
    f"CE, C = {cfg.lvl_C}, trained": (
        run.at(cfg.lvl_steps).model,
        data_big,
        "ce",
    ),
}
levels = {}
for name, (net, dat, loss) in states.items():
    H = hl.closed_form_hessian(net, dat.X, dat.y, loss=loss)
    s = levels[name] = ch.coupling_summary(H, net.layout())
    print(
        f"{name:>24}: RMS coupling ww {s.ww:.3f}, vv {s.vv:.4f}, wv "
        f"{s.wv:.3f}"
    )

# %%
(l1, l0, l2, l3) = levels.values()
assert l1.vv == 0.0  # level 1: exact zeros
assert (
    l2.ww < l0.ww and l2.vv < l0.vv / 10
)  # level 2: large C weakens the layer blocks
assert (
    l3.wv < l2.wv / 3
)  # level 3: training weakens the cross block (relative coupling)
assert (
    l2.ww < l3.ww < l0.ww and l2.vv < l3.vv < l0.vv
)  # training raises them, not back to C = 4

# %% tags=["remove-cell"]
for tag, s in (("mse4", l1), ("ce4", l0), ("ceC", l2), ("trained", l3)):
    for layer in ("ww", "vv", "wv"):
        glue(f"ch04_lvl_{tag}_{layer}", getattr(s, layer), display=False)

# %% tags=["remove-cell"]
glue("ch04_lvl_loss0", float(run.losses[0]), display=False)
glue("ch04_lvl_loss1", float(run.losses[-1]), display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Block couplings $\\rho_{ij} = \\|H_{ij}\\|_F/\\sqrt{\\|H_{ii}\\|_F\\|H_{jj}\\|_F}$ of a one-hidden-layer net with $m = 4$: the 4 neuron blocks $w_k$ (top left of the blue lines) and the first 4 class blocks $v_c$. Exact zeros are white and marked 0; log colour scale from $10^{-3}$ to 1. From left to right: level 1 (MSE: class blocks decoupled exactly), CE at $C = 4$ (everything linked), level 2 (large $C$: the layer blocks decouple, $H_{wv}$ does not), level 3 (after Adam: $H_{wv}$ fades too).", "name": "fig-04-levels"}}
labels = [f"$w_{k + 1}$" for k in range(m_lvl)] + [
    f"$v_{c + 1}$" for c in range(K_lvl)
]
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
for ax, (name, s) in zip(axes, levels.items()):
    im = hl.plot.coupling_map(
        s.rho[: m_lvl + K_lvl, : m_lvl + K_lvl],
        ax=ax,
        labels=labels,
        split=m_lvl,
        title=name,
    )
fig.colorbar(im, ax=axes, fraction=0.015, pad=0.02, label="$\\rho_{ij}$")
plt.show()

# %% [markdown]
# In numbers (RMS of $\rho$ over pairs of distinct blocks, all $C$ class blocks included):
#
# | state | neuron–neuron | class–class | neuron–class ($H_{wv}$) |
# | --- | --- | --- | --- |
# | MSE, $C = 4$ (level 1) | {glue:text}`ch04_lvl_mse4_ww:.3f` | {glue:text}`ch04_lvl_mse4_vv:.3f` | {glue:text}`ch04_lvl_mse4_wv:.3f` |
# | CE, $C = 4$ | {glue:text}`ch04_lvl_ce4_ww:.3f` | {glue:text}`ch04_lvl_ce4_vv:.3f` | {glue:text}`ch04_lvl_ce4_wv:.3f` |
# | CE, $C =$ {glue:text}`ch04_lvl_C` (level 2) | {glue:text}`ch04_lvl_ceC_ww:.3f` | {glue:text}`ch04_lvl_ceC_vv:.4f` | {glue:text}`ch04_lvl_ceC_wv:.3f` |
# | same, after Adam (level 3) | {glue:text}`ch04_lvl_trained_ww:.3f` | {glue:text}`ch04_lvl_trained_vv:.4f` | {glue:text}`ch04_lvl_trained_wv:.3f` |
#
# The class–class couplings under MSE are exactly zero (level 1). Raising $C$ weakens the
# couplings inside both layers, but leaves $H_{wv}$ strong (level 2): at initialisation the
# residuals $p_n - e_{y_n}$ are of order one. Training lowers the loss from
# {glue:text}`ch04_lvl_loss0:.2f` to {glue:text}`ch04_lvl_loss1:.2f` and the cross couplings,
# measured relative to the diagonal blocks they link, fall (level 3), as in both runs of
# {doc}`chapter 03 <03_dynamic_force>`. Training also *raises* the couplings inside the layers, as
# the weights move away from their random start, though not back to their level at $C = 4$. The
# static force acts on $H_{ww}$ and $H_{vv}$, the dynamic one on $H_{wv}$; together they leave a
# near-block-diagonal matrix. {doc}`Chapter 05 <05_random_matrices>` turns the second-moment
# prediction used here into a statement about whole spectra.
#
# :::{admonition} The paper says / this chapter finds
# :class: tip
# - **The talk:** class blocks shrink like $1/C$, neuron blocks like $1/\sqrt C$. **Here:** the
#   rates hold; fitted slopes are within {glue:text}`ch04_slope_dev_max:.3f` of them
#   ({numref}`fig-04-sweep`, {numref}`fig-04-compensated`).
# - **The talk's $1/(C-1)$ intuition:** right rate, wrong constant. In case 2, $(C-1)\,r$ is
#   {glue:text}`ch04_intuition_gap_case2:.0%` above 1; the random-matrix limit
#   {glue:text}`ch04_const_case2_theory:.3f` of $C\,r$ matches the measured
#   {glue:text}`ch04_const_last_case2_vv:.3f`.
# - **The second-moment prediction** matches cases 2, 3 and the neuron blocks of case 4, but
#   **misses the class blocks of case 4**: it is too low by up to
#   {glue:text}`ch04_relerr_max_case4_vv:.1%` ({glue:text}`ch04_relerr_last_case4_vv:.1%` at
#   $C =$ {glue:text}`ch04_C_max`), and the miss does not vanish with size (fitted limit
#   {glue:text}`ch04_dep_limit:.1%`): the softmax weights depend on 8-dimensional features.
# - **The talk's three levels:** MSE class blocks exactly decoupled, large $C$ weakens the
#   couplings inside the layers but not $H_{wv}$, training then weakens $H_{wv}$
#   ({numref}`fig-04-hww`, {numref}`fig-04-hvv`, {numref}`fig-04-levels`).
# :::
#
# ## Exercises
#
# 1. **Exactly uniform softmax.** Set $V = 0$ in case 2, so that $p_{n,i} = 1/C$ exactly.
#    Show that the RMS ratio of the class blocks is then exactly $1/(C-1)$, for any data.
#
# :::{dropdown} Solution
# With $p_{n,i} = 1/C$ every off-diagonal block is $-\frac{1}{C^2}\Sigma$ and every diagonal
# block $\frac1C(1-\frac1C)\Sigma$, with the same $\Sigma = \frac1N\sum_nx_nx_n^\top$; the
# ratio of Frobenius norms is $\frac{1/C^2}{(C-1)/C^2} = \frac1{C-1}$ for each pair, hence also
# in RMS. The cell below checks it for $C = 37$.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
net, _ = hl.case_model(2, cfg.d, 37, seed=seed, device=device)
with torch.no_grad():
    net.V.zero_()
r = hl.block_ratios_at_init(net, X, loss="ce").vv
print(f"ratio {r:.12f}, 1/(C-1) = {1 / 36:.12f}")
assert abs(r - 1 / 36) < 1e-12

# %% [markdown]
# 2. **The constant of case 2.** For large $C$, with standard Gaussian logits $z_i$ and
#    $p_i = e^{z_i}/\sum_c e^{z_c}$, show that $\mathbb E[p_ip_j]\approx C^{-2}$,
#    $\mathbb E[p_i^2p_j^2]\approx e^2C^{-4}$, $\mathbb E[p_i(1-p_i)]\approx C^{-1}$ and
#    $\mathbb E[p_i^2(1-p_i)^2]\approx eC^{-2}$, and deduce from the second-moment formula
#    that $C\,r\to\sqrt{(\gamma e^2+1)/(\gamma e+1)}$. Check it numerically.
#
# :::{dropdown} Solution
# The normaliser concentrates: $\sum_c e^{z_c}\approx C\,\mathbb E e^{z} = Ce^{1/2}$. Hence
# $\mathbb E[p_ip_j]\approx\mathbb E[e^{z_i}]\mathbb E[e^{z_j}]/(C^2e) = C^{-2}$,
# $\mathbb E[p_i^2p_j^2]\approx(\mathbb E e^{2z})^2/(C^4e^2) = e^2C^{-4}$, and
# $\mathbb E[p_i^2]\approx e^2/(C^2e) = eC^{-2}$, so that the diagonal weights are
# $\approx C^{-1}$ with second moment $\approx eC^{-2}$. Then
# $r^2\approx\frac{\gamma e^2C^{-4} + C^{-4}}{\gamma eC^{-2} + C^{-2}}$. The cell evaluates
# the second-moment ratio with exactly Gaussian logits at $C = 4000$ (the convergence in $C$
# is slow: the log-normal $e^{z}$ has heavy tails).
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
C_big, n_samples = 4000, 4000
p = torch.softmax(
    torch.randn(
        n_samples,
        C_big,
        generator=hl.make_generator(seed),
        dtype=torch.float64,
    ),
    dim=1,
)
i, j = (
    torch.arange(0, C_big, 2),
    torch.arange(1, C_big, 2),
)  # disjoint pairs (i, j)
off, diag = p[:, i] * p[:, j], p[:, i] * (1 - p[:, i])


def second_moment(lam):
    return gamma * lam.pow(2).mean() + lam.mean(0).pow(2).mean()


Cr = C_big * float((second_moment(off) / second_moment(diag)).sqrt())
print(f"C r = {Cr:.4f}, limit {limit:.4f}")
assert abs(Cr / limit - 1) < 0.03

# %% [markdown]
# 3. **The constant of case 3.** In case 3, $H_{w_kw_l} = (V^\top V)_{kl}\,\frac1N\sum_n
#    D_{nk}D_{nl}x_nx_n^\top$. Assume $w_k\perp w_l$ (nearly true for random $w$ in high
#    dimension), so that $D_{nk}D_{nl}$ is a Bernoulli(1/4) and $D_{nk}$ a Bernoulli(1/2)
#    variable independent of $\|x_n\|$. Using $\mathbb E(V^\top V)_{kl}^2 = C/m^2$ and
#    $\mathbb E(V^\top V)_{kk}^2 = (C^2+2C)/m^2$, show that
#    $r^2\approx\frac{\gamma/4 + 1/16}{\gamma/2 + 1/4}\cdot\frac{1}{C+2}$, about a quarter of
#    the talk's $1/C$ when $\gamma$ is small.
#
# :::{dropdown} Solution
# The second-moment formula gives $d(\gamma\,\mathbb E\omega^2 + (\mathbb E\omega)^2)$ with
# $\omega = D_kD_l$: $\mathbb E\omega = \mathbb E\omega^2 = 1/4$, so the off-diagonal block
# has $(V^\top V)_{kl}^2\,d(\gamma/4 + 1/16)$; for the diagonal block $\omega = D_k$ with
# moments $1/2$ gives $(V^\top V)_{kk}^2\,d(\gamma/2+1/4)$. Averaging numerator and
# denominator over $V$ gives the claim: the factor $\frac{\gamma/4+1/16}{\gamma/2+1/4}$ is the
# chance that two neurons fire together relative to one firing, which the talk's argument
# drops. The cell averages the predicted $r^2$ of case 3 over 40 random nets at $C = 256$.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
C3, X_pred = (
    256,
    hl.gaussian_data(500, 100, 2, seed=seed + 7, device=device).X,
)
r2 = [
    hl.predicted_block_ratios(
        hl.one_hidden_net(100, 8, C3, seed=s, device=device),
        X_pred,
        N=1000,
        loss="mse",
    ).ww
    ** 2
    for s in range(40)
]
theory = (0.1 / 4 + 1 / 16) / (0.1 / 2 + 1 / 4) / (C3 + 2)
print(f"mean r^2 = {np.mean(r2):.3e}, formula {theory:.3e}")
assert abs(np.mean(r2) / theory - 1) < 0.1

# %% [markdown]
# 4. **Where the case-4 output-layer prediction fails.** The prediction assumes the weights
#    $\omega_n$ independent of the features. Compute the ratio of the *decoupled* Hessian
#    $\tilde H_{vv} = \frac1N\sum_n\tilde S_n\otimes a_na_n^\top$, where $\tilde S_n$ comes from
#    an independent input $\tilde x_n$ (`decouple_with=` in `hl.block_ratios_at_init`), and
#    compare it with the real Hessian and with the prediction.
#
# :::{dropdown} Solution
# The decoupled Hessian matches the prediction to within a few percent; the real one is
# larger. So the gap in {numref}`fig-04-sweep` is the dependence between $p_n$ and $a_n$,
# which the $m$-dimensional output layer never averages away. For the linear model (case 2),
# where the features are $d$-dimensional, decoupling changes almost nothing. The cell uses
# $N = 1000$, $d = 100$, $C = 256$ at every profile.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
X4, X4_ind, X4_pred = (
    hl.gaussian_data(1000, 100, 2, seed=seed + s, device=device).X
    for s in (8, 9, 10)
)
for case in (2, 4):
    net, _ = hl.case_model(case, 100, 256, seed=seed + 11, device=device)
    real = hl.block_ratios_at_init(net, X4, loss="ce").vv
    decoupled = hl.block_ratios_at_init(
        net, X4, loss="ce", decouple_with=X4_ind
    ).vv
    pred = hl.predicted_block_ratios(net, X4_pred, N=1000, loss="ce").vv
    print(
        f"case {case}: real {real:.3e}, decoupled {decoupled:.3e}, "
        f"prediction {pred:.3e}"
    )
    assert abs(decoupled / pred - 1) < 0.05
assert (
    real / pred - 1 > 0.1
)  # case 4: the dependence makes the real ratio larger

# %% [markdown]
# 5. **PyTorch's default initialisation.** `nn.Linear` draws weights from
#    $U(-1/\sqrt{\text{fan-in}}, 1/\sqrt{\text{fan-in}})$, of variance $1/(3\,\text{fan-in})$.
#    For the linear model (case 2) the logits then have variance about $1/3$ instead of 1.
#    Redo exercise 2 for logits of variance $s^2$ and predict $C\,r$ for large $C$ under this
#    initialisation.
#
# :::{dropdown} Solution
# With $z\sim\mathcal N(0,s^2)$, $\mathbb E e^{z} = e^{s^2/2}$ and $\mathbb E e^{2z} = e^{2s^2}$,
# so $e$ becomes $e^{s^2}$ everywhere: $C\,r\to\sqrt{(\gamma e^{2s^2}+1)/(\gamma e^{s^2}+1)}$,
# closer to the talk's 1 because the softmax is closer to uniform. For $s^2 = 1/3$ and the
# $\gamma$ of this chapter the cell compares it with the measured ratio of a
# `init="pytorch"` linear model at $C = 1024$ (tolerance 5 %: the limit is approached slowly).
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
net, _ = hl.case_model(
    2, cfg.d, 1024, init="pytorch", seed=seed + 12, device=device
)
Cr_torch = 1024 * hl.block_ratios_at_init(net, X, loss="ce").vv
limit_torch = np.sqrt(
    (gamma * np.exp(2 / 3) + 1) / (gamma * np.exp(1 / 3) + 1)
)
print(
    f"C r = {Cr_torch:.4f} (PyTorch init), limit {limit_torch:.4f}, LeCun "
    f"limit {limit:.4f}"
)
assert abs(Cr_torch / limit_torch - 1) < 0.05

# %% [markdown]
# ## Cost of this chapter
#
# This run used the {glue:md}`ch04_profile` profile on {glue:md}`ch04_device` and took
# {glue:text}`ch04_elapsed_s:.0f` s of wall-clock time, of which {glue:text}`ch04_sweep_s:.0f` s
# for the sweep ({glue:md}`ch04_clock_label`; on a shared machine these depend on the load).
# The sweep's cost is dominated by $N\times N\times C$ products, about $6N^2\sum_C C$
# multiply-adds per draw. The `paper` profile ($N = 5000$, $d = 500$, $C$ up to 4096, 10
# draws) needs {glue:text}`ch04_paper_work:.1e` of them, {glue:text}`ch04_paper_factor:.0f`
# times the `default` profile. One sweep point at the largest $C$ of this profile, timed on its
# own with `hl.core.timing.time_call` ({glue:md}`ch04_unit_label`), runs at
# {glue:text}`ch04_unit_gflops:.1f` G multiply-adds per second; at that speed the `paper`
# sweep would take about {glue:text}`ch04_paper_cpu_h:.1f` hours here. Run it on a GPU, where
# float64 matrix products of this size run at teraflops (an estimate: the `paper` profile was
# not run for this build).

# %%
C_top = max(cfg.Cs)
reps = dict(repeats=1 if cfg.profile == "quick" else 3, warmup=0)
unit = hl.core.timing.time_call(
    lambda: ch.class_sweep(
        [C_top],
        [seed],
        N=cfg.N,
        d=cfg.d,
        m=cfg.m,
        device=device,
        progress=False,
    ),
    **reps,
)
unit_rate = 6 * cfg.N**2 * C_top / unit.median  # multiply-adds per second
print(f"one sweep point at C = {C_top}: {unit.median:.2f} s")
print(f"({unit.label})")

# %% tags=["remove-cell"]
work = {
    name: 6 * p["N"] ** 2 * sum(p["Cs"]) * p["num_seeds"]
    for name, p in PROFILES.items()
}
glue("ch04_paper_work", float(work["paper"]), display=False)
glue("ch04_paper_factor", work["paper"] / work["default"], display=False)
glue("ch04_paper_cpu_h", work["paper"] / unit_rate / 3600, display=False)
glue("ch04_unit_gflops", unit_rate / 1e9, display=False)
glue("ch04_unit_label", Markdown(unit.label), display=False)
load = os.getloadavg()[0]
glue(
    "ch04_clock_label",
    Markdown(
        f"this machine, {torch.get_num_threads()} thread(s), load "
        f"{load:.1f}"
    ),
    display=False,
)
glue("ch04_sweep_s", sweep_s, display=False)
glue("ch04_profile", Markdown(f"`{cfg.profile}`"), display=False)
glue("ch04_device", Markdown(hl.device_name(device)), display=False)
glue("ch04_elapsed_s", time.perf_counter() - t_start, display=False)
