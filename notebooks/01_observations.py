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
# # 01 Observations: the Hessian is near-block-diagonal
#
# Draw the Hessian of a small network at random initialisation as a picture of absolute values
# and a pattern jumps out: a few bright squares along the diagonal, one per neuron of the hidden
# layer and one per class of the output layer, and comparatively dim everywhere else. This has
# been seen again and again, from one-hidden-layer networks {cite}`collobert2004large` to
# transformers {cite}`zhang2024transformers`, and it is the starting point of
# {cite}`dong2025hessian`, which explains *why* it happens.
#
# This chapter makes the observation quantitative in the setting the theory studies:
#
# * data $X \in \mathbb R^{N\times d}$ with rows $x_n \sim \mathcal N(0, I_d)$ and labels
#   uniform on $[C]$, independent of $X$;
# * the network $f(x) = V\,\sigma(Wx)$ with $W\in\mathbb R^{m\times d}$,
#   $V\in\mathbb R^{C\times m}$, ReLU $\sigma$, Gaussian initialisation with variance
#   $1/\text{fan-in}$;
# * cross-entropy (CE) and mean squared error (MSE, with a factor ½).
#
# Ordering the parameters as the rows $w_1,\dots,w_m$ of $W$ followed by the rows
# $v_1,\dots,v_C$ of $V$, the Hessian has $m + C$ diagonal blocks: $m$ *neuron blocks*
# $H_{w_iw_i}$ of size $d$ and $C$ *class blocks* $H_{v_cv_c}$ of size $m$.

# %% tags=["parameters"]
profile = "default"
seed = 0
N = None  # samples
d = None  # input dimension
C = None  # classes
m = None  # hidden neurons

# %%
import matplotlib.pyplot as plt
import torch
from myst_nb import glue

import hesslib as hl

PROFILES = {
    "quick": {"N": 400, "d": 40, "C": 40, "m": 4},
    "default": {"N": 5000, "d": 500, "C": 500, "m": 8},  # the talk's Gaussian setting
    "paper": {"N": 5000, "d": 500, "C": 500, "m": 8},
}
cfg = hl.resolve_profile(profile, PROFILES, N=N, d=d, C=C, m=m)
device = hl.default_device()
print("device:", hl.device_name(device))

# %% [markdown]
# ## The Gaussian setting of the talk
#
# With $N = 5000$ samples, $d = C = 500$ and $m = 8$ neurons, the network has
# $P = md + Cm = 8000$ parameters, so its Hessian is an $8000\times 8000$ matrix with
# $m + C = 508$ diagonal blocks. We compute it exactly, in float64, with the closed-form
# block formulas of chapter 04 (`hl.closed_form_hessian`), which agree with automatic
# differentiation to machine precision (the test suite checks this against
# `torch.func.hessian`).

# %%
data = hl.gaussian_data(cfg.N, cfg.d, cfg.C, seed=seed, device=device)
net = hl.one_hidden_net(cfg.d, cfg.m, cfg.C, seed=seed + 1, device=device)
layout = net.layout()
H = {loss: hl.closed_form_hessian(net, data.X, data.y, loss=loss) for loss in ("ce", "mse")}
print(f"P = {layout.num_params}, blocks = {layout.num_blocks}")

# %% [markdown]
# Before looking, a sanity check on a few columns: the general batched Hessian-vector-product
# path of hesslib (autograd, no formulas) must reproduce the same numbers.

# %%
f, theta = hl.flat_loss(net, data.X, data.y, "ce")
cols = torch.arange(0, layout.num_params, max(1, layout.num_params // 16), device=device)
E = torch.zeros(layout.num_params, len(cols), dtype=theta.dtype, device=device)
E[cols, torch.arange(len(cols))] = 1.0
err = float((hl.hvp(f, theta, E) - H["ce"][:, cols]).abs().max() / H["ce"].abs().max())
print(f"max relative difference on {len(cols)} columns: {err:.1e}")
assert err < 1e-10

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Absolute values of the Hessian at random initialisation in the Gaussian setting, CE (left) and MSE (right). Thin lines separate the neuron blocks $H_{w_iw_i}$ (top-left group) and the class blocks $H_{v_cv_c}$ (bottom-right group); the colour scale saturates at 1/100 of the largest entry and large matrices are max-pooled to screen resolution.", "name": "fig-01-gaussian"}}
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, loss in zip(axes, ("ce", "mse")):
    hl.plot.heatmap(
        H[loss],
        layout,
        ax=ax,
        clip=1 / 100,
        grid="groups",
        title=f"{loss.upper()}: {data.name}, m={cfg.m}",
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# Both pictures show the same thing: the $m$ neuron blocks stand out against the hidden-layer
# part, and the output-layer part is a thin bright diagonal, made of the $C$ class blocks of size
# $m$. The off-diagonal part of the hidden layer is not zero, but it is much dimmer. The cross
# block $H_{wv}$ (top right) is another matter under CE: at initialisation it is as bright as the
# neuron blocks. It carries a term proportional to the residuals $p - e_y$, which training
# shrinks; chapter 03 follows it along training.
#
# ## Putting numbers on "near-block-diagonal"
#
# Two numbers summarise a layer with blocks $H_{ij}$:
#
# * the **diagonal mass** $\sum_i \|H_{ii}\|_F^2 / \sum_{i,j}\|H_{ij}\|_F^2$, the fraction of the
#   squared Frobenius norm sitting on the diagonal blocks;
# * the **block ratio**
#   $r = \sqrt{\operatorname{mean}_{i\ne j}\|H_{ij}\|_F^2}\,/\,\sqrt{\operatorname{mean}_i
#   \|H_{ii}\|_F^2}$, the typical size of an off-diagonal block relative to a diagonal one. It is
#   the statistic that the random-matrix argument of chapter 05 predicts.
#
# With $m$ diagonal blocks and $m(m-1)$ off-diagonal ones, the two are linked:
# diagonal mass $= 1/(1 + (m-1) r^2)$. A small ratio with many blocks can still leave a lot of
# mass off the diagonal, which is why we report both.

# %%
stats = {
    (loss, g): hl.block_stats(H[loss], layout, group=g)
    for loss in ("ce", "mse")
    for g in ("W", "V")
}
for (loss, g), s in stats.items():
    print(
        f"{loss:>3} H_{g.lower()}{g.lower()}: ratio {s.rms_ratio:.4f}, diagonal mass {s.diag_mass:.3f}"
    )
    glue(f"ch01_ratio_{loss}_{g.lower()}{g.lower()}", s.rms_ratio, display=False)
    glue(f"ch01_mass_{loss}_{g.lower()}{g.lower()}", s.diag_mass, display=False)
    mblocks = layout.group(g)[1] - layout.group(g)[0]
    assert abs(s.diag_mass - 1 / (1 + (mblocks - 1) * s.rms_ratio**2)) < 1e-9

# %% [markdown]
# In this run, the class blocks of $H_{vv}$ under CE have an off/diagonal ratio of
# {glue:text}`ch01_ratio_ce_vv:.4f` and the neuron blocks of $H_{ww}$ a ratio of
# {glue:text}`ch01_ratio_ce_ww:.3f` (diagonal mass {glue:text}`ch01_mass_ce_ww:.3f`). Under
# MSE the class blocks are *exactly* decoupled — the ratio is {glue:text}`ch01_ratio_mse_vv:.1e`,
# because $\partial^2\ell/\partial f^2 = I$ does not link different outputs — while the neuron
# blocks have a ratio of {glue:text}`ch01_ratio_mse_ww:.3f`.
#
# Chapter 04 shows how these numbers move with the number of classes $C$: the CE class ratio
# shrinks like $1/C$ and the hidden ratio like $1/\sqrt C$.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Frobenius norms of the blocks. Left: the $m\\times m$ map of neuron blocks $\\|H_{w_iw_j}\\|_F$ (CE). Right: the $C\\times C$ map of class blocks $\\|H_{v_cv_{c'}}\\|_F$ (CE, log scale).", "name": "fig-01-block-norms"}}
norms = hl.block_norms(H["ce"], layout)
w0, w1 = layout.group("W")
v0, v1 = layout.group("V")
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
hl.plot.block_norm_map(norms[w0:w1, w0:w1], ax=axes[0], title="neuron blocks (CE)")
hl.plot.block_norm_map(norms[v0:v1, v0:v1], ax=axes[1], log=True, title="class blocks (CE, log10)")
plt.tight_layout()
plt.show()

# %%
glue("ch01_P", layout.num_params, display=False)
glue("ch01_num_blocks", layout.num_blocks, display=False)
glue("ch01_mass_all_ce", hl.diag_mass_fraction(H["ce"], layout), display=False)
assert stats[("ce", "V")].rms_ratio < stats[("ce", "W")].rms_ratio < 1

# %% [markdown]
# Across all {glue:text}`ch01_num_blocks` blocks of the {glue:text}`ch01_P`-parameter CE
# Hessian, a fraction {glue:text}`ch01_mass_all_ce:.3f` of the squared Frobenius norm lies on
# the diagonal blocks.
#
# ## Exercises
#
# 1. Diagonal mass and block ratio are linked by mass $= 1/(1+(B-1)r^2)$ for $B$ blocks. Using
#    the numbers above, how many neuron blocks would the hidden layer need before half of its
#    squared Frobenius norm is off the diagonal, if the ratio stayed fixed?
#
# :::{dropdown} Solution
# Half the mass is off the diagonal when $(B-1)r^2 = 1$, i.e. $B = 1 + 1/r^2$. The cell below
# computes it for the CE hidden layer.
# :::

# %% tags=["hide-input"]
r = stats[("ce", "W")].rms_ratio
B_half = 1 + 1 / r**2
print(f"B = 1 + 1/r^2 = {B_half:.1f} neuron blocks")
assert abs(1 / (1 + (B_half - 1) * r**2) - 0.5) < 1e-12

# %% [markdown]
# 2. Under MSE the class blocks are exactly decoupled. Show from
#    $H_{v_cv_{c'}} = \frac1N\sum_n S_n[c,c']\,a_na_n^\top$ (chapter 04) that all class blocks
#    are in fact *equal* under MSE, and check it numerically.
#
# :::{dropdown} Solution
# For MSE $S_n = I$, so $H_{v_cv_c} = \frac1N\sum_n a_na_n^\top = \frac1N A^\top A$ for every
# $c$, independent of $c$; the cell below checks that all class blocks coincide.
# :::

# %% tags=["hide-input"]
Hvv = H["mse"][layout.param_slice("V"), layout.param_slice("V")]
diag_blocks = torch.stack(
    [Hvv[c * cfg.m : (c + 1) * cfg.m, c * cfg.m : (c + 1) * cfg.m] for c in range(cfg.C)]
)
spread = float((diag_blocks - diag_blocks[0]).abs().max())
print(f"largest difference between class blocks: {spread:.1e}")
assert spread == 0.0
