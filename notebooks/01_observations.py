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

# %% [markdown]
# ## What you will be able to do after this chapter
#
# * draw $|H|$ of a one-hidden-layer net at initialisation and point out its $m$ neuron blocks
#   $H_{w_iw_i}$ and $C$ class blocks $H_{v_cv_c}$;
# * compute the block ratio and the diagonal mass of a Hessian with `hl.block_stats` and read
#   the class-block ratio against the $1/(C-1)$ intuition;
# * reproduce the talk's Fig. 1 (CIFAR-100, $m = 8$, $C = 100$) and get block ratios at
#   $d = 32\,000$ without forming $H$ (`hl.block_ratios_at_init`);
# * show how the diagonal mass of a linear CE model grows with the number of classes $C$.
#
# Symbols and block names are collected on {doc}`the notation page <../book/notation>`.

# %% tags=["parameters"]
profile = "default"
seed = 0
N = None  # samples
d = None  # input dimension
C = None  # classes
m = None  # hidden neurons
# fetch CIFAR-100 if missing (None: the HESSLIB_DOWNLOAD environment
# variable)
download = None
# where the CIFAR-100 archive is (None: HESSLIB_CIFAR100, then the user
# cache)
cifar_root = None
fig1_N = None  # CIFAR-100 images in Fig. 1

# %%
import gc
import os

import hesslib as hl
import matplotlib.pyplot as plt
import numpy as np
import torch
from hesslib.chapters import observations as ch
from IPython.display import Markdown
from myst_nb import glue
from tqdm.auto import tqdm

PROFILES = {
    "quick": {"N": 400, "d": 40, "C": 40, "m": 4},
    "default": {
        "N": 5000,
        "d": 500,
        "C": 500,
        "m": 8,
    },  # the talk's Gaussian setting
    "paper": {"N": 5000, "d": 500, "C": 500, "m": 8},
}
# paper Fig. 1 (CIFAR-100 images, side in pixels after pooling) and the
# phase transition (pt_*)
PROFILES["quick"] |= {
    "fig1_N": 32,
    "fig1_size": 8,
    "pt_N": 200,
    "pt_d": 8,
    "pt_seeds": 2,
}
PROFILES["default"] |= {
    "fig1_N": 128,
    "fig1_size": 32,
    "pt_N": 1000,
    "pt_d": 10,
    "pt_seeds": 5,
}
PROFILES["paper"] |= {
    "fig1_N": 128,
    "fig1_size": 32,
    "pt_N": 1000,
    "pt_d": 10,
    "pt_seeds": 20,
}
cfg = hl.resolve_profile(
    profile, PROFILES, N=N, d=d, C=C, m=m, fig1_N=fig1_N
)
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
H = {
    loss: hl.closed_form_hessian(net, data.X, data.y, loss=loss)
    for loss in ("ce", "mse")
}
print(f"P = {layout.num_params}, blocks = {layout.num_blocks}")

# %% [markdown]
# Before looking, a sanity check on a few columns: the general batched Hessian-vector-product
# path of hesslib (autograd, no formulas) must reproduce the same numbers.

# %%
f, theta = hl.flat_loss(net, data.X, data.y, "ce")
cols = torch.arange(
    0, layout.num_params, max(1, layout.num_params // 16), device=device
)
E = torch.zeros(
    layout.num_params, len(cols), dtype=theta.dtype, device=device
)
E[cols, torch.arange(len(cols))] = 1.0
err = float(
    (hl.hvp(f, theta, E) - H["ce"][:, cols]).abs().max()
    / H["ce"].abs().max()
)
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
# shrinks where the network can fit its labels; {doc}`chapter 03 <03_dynamic_force>` follows it
# along training.
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
#   the statistic that the random-matrix argument of {doc}`chapter 05 <05_random_matrices>`
#   predicts.
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
        f"{loss:>3} H_{g.lower()}{g.lower()}: ratio {s.rms_ratio:.4f}, "
        f"diagonal mass {s.diag_mass:.3f}"
    )
    mblocks = layout.group(g)[1] - layout.group(g)[0]
    assert (
        abs(s.diag_mass - 1 / (1 + (mblocks - 1) * s.rms_ratio**2)) < 1e-9
    )

# %% tags=["remove-cell"]
for (loss, g), s in stats.items():
    glue(
        f"ch01_ratio_{loss}_{g.lower()}{g.lower()}",
        s.rms_ratio,
        display=False,
    )
    glue(
        f"ch01_mass_{loss}_{g.lower()}{g.lower()}",
        s.diag_mass,
        display=False,
    )

# %% [markdown]
# In this run, the class blocks of $H_{vv}$ under CE have an off/diagonal ratio of
# {glue:text}`ch01_ratio_ce_vv:.4f` and the neuron blocks of $H_{ww}$ a ratio of
# {glue:text}`ch01_ratio_ce_ww:.3f` (diagonal mass {glue:text}`ch01_mass_ce_ww:.3f`). Under
# MSE the class blocks are *exactly* decoupled — the ratio is {glue:text}`ch01_ratio_mse_vv:.1e`,
# because $\partial^2\ell/\partial f^2 = I$ does not link different outputs — while the neuron
# blocks have a ratio of {glue:text}`ch01_ratio_mse_ww:.3f`.
#
# {doc}`Chapter 04 <04_static_force>` shows how these numbers move with the number of classes $C$:
# the CE class ratio shrinks like $1/C$ and the hidden ratio like $1/\sqrt C$.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Frobenius norms of the blocks. Left: the $m\\times m$ map of neuron blocks $\\|H_{w_iw_j}\\|_F$ (CE). Right: the $C\\times C$ map of class blocks $\\|H_{v_cv_{c'}}\\|_F$ (CE, log scale).", "name": "fig-01-block-norms"}}
norms = hl.block_norms(H["ce"], layout)
w0, w1 = layout.group("W")
v0, v1 = layout.group("V")
fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
hl.plot.block_norm_map(
    norms[w0:w1, w0:w1], ax=axes[0], title="neuron blocks (CE)"
)
hl.plot.block_norm_map(
    norms[v0:v1, v0:v1],
    ax=axes[1],
    log=True,
    title="class blocks (CE, log10)",
)
plt.tight_layout()
plt.show()

# %%
assert stats[("ce", "V")].rms_ratio < stats[("ce", "W")].rms_ratio < 1

# %% tags=["remove-cell"]
glue("ch01_P", layout.num_params, display=False)
glue("ch01_num_blocks", layout.num_blocks, display=False)
glue(
    "ch01_mass_all_ce",
    hl.diag_mass_fraction(H["ce"], layout),
    display=False,
)

# %% [markdown]
# Across all {glue:text}`ch01_num_blocks` blocks of the {glue:text}`ch01_P`-parameter CE
# Hessian, a fraction {glue:text}`ch01_mass_all_ce:.3f` of the squared Frobenius norm lies on
# the diagonal blocks.

# %% [markdown]
# ## Paper Fig. 1: one hidden layer on CIFAR-100
#
# The figure that opens {cite}`dong2025hessian` uses real images instead of Gaussian noise:
# $N = 128$ training images of CIFAR-100 {cite}`krizhevsky2009learning`, each flattened to
# $d = 3\cdot 32\cdot 32 = 3072$ numbers mapped to $[-1, 1]$ on every colour channel, $C = 100$
# classes, and the network above with $m = 8$ neurons at random initialisation. Its Hessian
# has $m + C = 108$ diagonal blocks: eight neuron blocks of size 3072 and a hundred class
# blocks of size 8.
#
# `hl.nets.cifar100` reads the official python archive of the dataset and checks its published
# MD5 checksum. It never downloads on its own: set `download = True` in the parameters cell
# (or the environment variable `HESSLIB_DOWNLOAD=1`), or point `HESSLIB_CIFAR100` at a copy
# of `cifar-100-python.tar.gz`. Without the archive, the chapter goes on with a Gaussian
# stand-in of the same shape. What this build used:
#
# :::{note}
# {glue:md}`ch01_cifar_note`
# :::

# %%
cifar = hl.nets.cifar100(
    cfg.fig1_N,
    seed=seed,
    image_size=cfg.fig1_size,
    download=download,
    root=cifar_root,
    device=device,
    dtype=torch.float32,
)
prefix = (
    "**This is a Gaussian stand-in, not CIFAR-100.** "
    if cifar.is_standin
    else ""
)
print(cifar.name)

# %% tags=["remove-cell"]
glue("ch01_cifar_note", Markdown(prefix + cifar.note), display=False)

# %% [markdown]
# With $P = md + Cm$ = {glue:text}`ch01_fig1_P` parameters (input dimension
# $d$ = {glue:text}`ch01_fig1_d` at this profile), the dense Hessian takes
# {glue:text}`ch01_fig1_gb:.2g` GB even in float32. We compute it in float32 with the closed
# form and, in one pass over its rows, keep only what the figure needs: $|H|$ max-pooled to
# screen resolution, the Frobenius norm of every block, and the output-layer block $H_{vv}$
# (`ch.one_hidden_summary`); the matrix itself is freed right away, one loss at a time.
# `benchmarks/bench_fig1.py` measures the time and peak memory of this step at full size.

# %%
H_mse_vv = H["mse"][
    layout.param_slice("V"), layout.param_slice("V")
].clone()  # for Exercise 2
del H, E, f, theta  # the Gaussian-setting Hessians are not needed any more
_ = gc.collect()
net1 = hl.one_hidden_net(
    cifar.d,
    8,
    cifar.num_classes,
    seed=seed + 1,
    device=device,
    dtype=torch.float32,
)
layout1 = net1.layout()

# %% tags=["remove-cell"]
glue("ch01_fig1_P", layout1.num_params, display=False)
glue("ch01_fig1_d", cifar.d, display=False)
glue("ch01_fig1_gb", layout1.num_params**2 * 4 / 1e9, display=False)

# %%
fig1 = {}
for loss in ("ce", "mse"):
    fig1[loss] = ch.one_hidden_summary(
        net1,
        cifar.X,
        cifar.y,
        loss=loss,
        title=f"{loss.upper()}, {cifar.name}, m=8",
    )
    print(f"{loss}: Hessian in {fig1[loss].seconds:.1f} s")
_ = gc.collect()

# %% tags=["remove-cell"]
slowest = hl.core.timing.Timing(
    (max(s.seconds for s in fig1.values()),),
    torch.get_num_threads(),
    os.getloadavg()[0],
)
glue("ch01_fig1_seconds", slowest.min, display=False)
glue(
    "ch01_fig1_timing",
    Markdown(
        slowest.label.replace("median of 1 (spread ×1.00)", "one run")
    ),
    display=False,
)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Paper Fig. 1 at this profile: the Hessian of a one-hidden-layer net ($m = 8$, $C = 100$) at random initialisation on the images named in the titles (CIFAR-100, or the labelled stand-in described in the note above), CE (top) and MSE (bottom). Left: the full $|H|$, max-pooled to screen resolution and clipped at 1/10 of its maximum (with $N \\ll d$ the largest entries sit on the diagonals of the neuron blocks), with lines between neuron blocks and between the two layers. Middle: the $8\\times 8$ map of neuron-block norms $\\|H_{w_iw_j}\\|_F$, divided by the largest. Right: the output-layer block $|H_{vv}|$, 100 class blocks of size 8, clipped at 1/100.", "name": "fig-01-cifar"}}
fig, axes = plt.subplots(2, 3, figsize=(13, 8))
for row, (loss, s) in zip(axes, fig1.items()):
    hl.plot.hessian_summary(s, ax=row[0], clip=1 / 10)
    Nw = s.group_norms("W")
    hl.plot.block_norm_map(
        Nw / Nw.max(),
        ax=row[1],
        title=f"{loss.upper()}: neuron-block norms / max",
    )
    hl.plot.heatmap(
        s.kept["V"],
        layout1.subset("V"),
        ax=row[2],
        clip=1 / 100,
        grid="none",
        title=f"{loss.upper()}: output layer $H_{{vv}}$",
    )
plt.tight_layout()
plt.show()

# %%
for loss, s in fig1.items():
    sw, sv = s.stats("W"), s.stats("V")
    print(
        f"{loss:>3}: H_ww ratio {sw.rms_ratio:.3f} (diagonal mass "
        f"{sw.diag_mass:.3f}), H_vv ratio {sv.rms_ratio:.2e}\n"
        f"     whole H diagonal mass {s.diag_mass():.3f}"
    )
    Nw = s.group_norms("W")
    assert bool(
        (Nw.diagonal()[:, None] > Nw).sum(1).eq(7).all()
    )  # each neuron block dominates its row
assert (
    fig1["mse"].stats("V").rms_ratio < 1e-6
    and fig1["ce"].stats("V").rms_ratio < 0.1
)

# %% tags=["remove-cell"]
for loss, s in fig1.items():
    sw, sv = s.stats("W"), s.stats("V")
    glue(f"ch01_fig1_ratio_{loss}_ww", sw.rms_ratio, display=False)
    glue(f"ch01_fig1_mass_{loss}_ww", sw.diag_mass, display=False)
    glue(f"ch01_fig1_ratio_{loss}_vv", sv.rms_ratio, display=False)
    glue(f"ch01_fig1_mass_{loss}_all", s.diag_mass(), display=False)

# %% [markdown]
# On the data of this build, both losses give the picture of the paper: eight bright neuron blocks
# in the hidden layer — in every row of the $8\times 8$ map the diagonal block is the largest —
# and a thin diagonal of 100 class blocks in the output layer. The neuron blocks carry a fraction
# {glue:text}`ch01_fig1_mass_ce_ww:.3f` (CE) and {glue:text}`ch01_fig1_mass_mse_ww:.3f` (MSE) of
# the hidden layer's squared Frobenius norm, with off/diagonal block ratios
# {glue:text}`ch01_fig1_ratio_ce_ww:.3f` and {glue:text}`ch01_fig1_ratio_mse_ww:.3f`. In the
# output layer the class blocks are exactly decoupled under MSE (ratio
# {glue:text}`ch01_fig1_ratio_mse_vv:.1e`) and nearly so under CE (ratio
# {glue:text}`ch01_fig1_ratio_ce_vv:.4f`, of the order of $1/(C-1) \approx 0.01$). Each Hessian
# took at most {glue:text}`ch01_fig1_seconds:.1f` s to compute ({glue:md}`ch01_fig1_timing`).
#
# {glue:md}`ch01_fig1_data_md`
#
# **The talk's $d = 32\,000$.** The talk's slide gives the input dimension of this figure as
# $d = 32\,000$. A CIFAR-100 image has $3\cdot 32\cdot 32 = 3072$ numbers, the $d$ used
# here; we do not know what 32 000 refers to (perhaps a slip for 3072). A larger $d$ would
# not change the picture qualitatively. With $N = 128$ fixed, each neuron block
# $\frac1N\sum_n\lambda_nx_nx_n^\top$ has rank at most 128 whatever $d$ is, and $d$ enters the
# block ratios through $\gamma = d/N$ ({glue:text}`ch01_d32k_gamma_small:.0f` here,
# {glue:text}`ch01_d32k_gamma_big:.0f` at $d = 32\,000$). The dense Hessian at $d = 32\,000$
# ($P =$ {glue:text}`ch01_d32k_P`) would take {glue:text}`ch01_d32k_gb:.0f` GB in float32, but
# the Gram identity of {doc}`chapter 04 <04_static_force>` (`hl.block_ratios_at_init`) gives its
# block ratios without forming it. On Gaussian inputs at initialisation (CE), the neuron-block
# ratio is {glue:text}`ch01_d32k_ww_small:.3f` at $d =$ {glue:text}`ch01_fig1_d` and
# {glue:text}`ch01_d32k_ww_big:.3f` at $d = 32\,000$, and the class-block ratio
# {glue:text}`ch01_d32k_vv_small:.4f` and {glue:text}`ch01_d32k_vv_big:.4f`: the same
# near-block-diagonal structure.

# %%
d32k = {}
for d_ in (
    cifar.d,
    32_000,
):  # Gaussian inputs of CIFAR-100's N and C, ratios from Grams
    X_ = hl.gaussian_data(
        cfg.fig1_N, d_, 2, seed=seed + 3, device=device
    ).X
    net_ = hl.one_hidden_net(d_, 8, 100, seed=seed + 4, device=device)
    d32k[d_] = hl.block_ratios_at_init(net_, X_, loss="ce")
    print(
        f"d = {d_}: neuron-block ratio {d32k[d_].ww:.3f}, class-block "
        f"{d32k[d_].vv:.4f}"
    )
assert all(r.ww < 0.5 and r.vv < 0.1 for r in d32k.values())

# %% tags=["remove-cell"]
corr = ch.input_correlation(cifar.X)
white = ch.input_correlation(
    hl.gaussian_data(cfg.fig1_N, cifar.d, 2, seed=seed + 5).X
)
if cifar.is_standin:
    text = (
        "**This build used the Gaussian stand-in, not real images.** Its "
        "inputs are white noise (mean absolute correlation between two "
        f"input coordinates {corr:.3f}, the sampling noise of N = "
        f"{cfg.fig1_N} samples) and its labels are independent of them: "
        "exactly the assumptions of the theory. The figure therefore "
        "shows "
        "the block structure at the shape of CIFAR-100 (N much smaller "
        "than d, C = 100 classes), not that real images, whose pixels are "
        "strongly correlated and not centred, keep it; with the archive "
        "(see the note above) this section shows the real images."
    )
else:
    text = (
        "Real images differ from Gaussian noise in one visible way: "
        "pixels "
        "are strongly correlated (mean absolute correlation between two "
        f"input coordinates {corr:.3f} here, against {white:.3f} for "
        "Gaussian noise of the same size) and not centred, so the input "
        "second-moment matrix is far from a multiple of the identity, and "
        "the neuron blocks show the texture of the image covariance "
        "instead of a clean diagonal. The block structure survives it: it "
        "does not need the Gaussian data of the theory."
    )
glue("ch01_fig1_data_md", Markdown(text), display=False)
glue("ch01_fig1_corr", corr, display=False)
small, big = d32k[cifar.d], d32k[32_000]
for tag, r, d_ in (("small", small, cifar.d), ("big", big, 32_000)):
    glue(f"ch01_d32k_ww_{tag}", r.ww, display=False)
    glue(f"ch01_d32k_vv_{tag}", r.vv, display=False)
    glue(f"ch01_d32k_gamma_{tag}", d_ / cfg.fig1_N, display=False)
glue("ch01_d32k_P", 8 * 32_000 + 100 * 8, display=False)
glue("ch01_d32k_gb", (8 * 32_000 + 100 * 8) ** 2 * 4 / 1e9, display=False)

# %%
del cifar, fig1, d32k
_ = gc.collect()

# %% [markdown]
# ## A phase transition in the number of classes
#
# The talk starts from a negative result: for the *linear* model $f(x) = Vx$ with CE on a
# binary problem, the Hessian shows no block structure at all. For $C = 2$ this is exact.
# The two softmax probabilities satisfy $p_{n,2} = 1 - p_{n,1}$, so the curvature
# $S_n = \operatorname{diag}(p_n) - p_np_n^\top$ equals
# $p_{n,1}p_{n,2}\left(\begin{smallmatrix}1 & -1\\ -1 & 1\end{smallmatrix}\right)$ and
#
# $$
# H_{v_1v_2} = -\frac1N\sum_n p_{n,1}p_{n,2}\,x_nx_n^\top = -H_{v_1v_1}:
# $$
#
# the off-diagonal block is as large as the diagonal ones, the block ratio is exactly 1 and
# the diagonal blocks carry exactly half of the mass. With $C$ classes and probabilities near
# $1/C$, the diagonal blocks weigh $p_{n,c}(1 - p_{n,c}) \approx 1/C$ and the off-diagonal
# ones $p_{n,c}p_{n,c'} \approx 1/C^2$, so the ratio falls like $1/(C-1)$ and the diagonal mass
# rises towards $(C-1)/C$ (Exercise 4). {numref}`fig-01-phase` shows the Hessian for
# $C = 2, 10, 100$ on Gaussian data ($N$ = {glue:text}`ch01_pt_N`, $d$ = {glue:text}`ch01_pt_d`).

# %%
pt_H, pt_stats = {}, {}
for C_ in (2, 10, 100):
    data_c = hl.gaussian_data(
        cfg.pt_N, cfg.pt_d, C_, seed=seed, device=device
    )
    lin = hl.linear_net(cfg.pt_d, C_, seed=seed + 1, device=device)
    pt_H[C_] = (
        hl.closed_form_hessian(lin, data_c.X, data_c.y, loss="ce"),
        lin.layout(),
    )
    pt_stats[C_] = hl.block_stats(*pt_H[C_])
    print(
        f"C = {C_:3d}: ratio {pt_stats[C_].rms_ratio:.4f}, diagonal mass "
        f"{pt_stats[C_].diag_mass:.4f}"
    )
assert (
    abs(pt_stats[2].rms_ratio - 1) < 1e-9
    and abs(pt_stats[2].diag_mass - 0.5) < 1e-9
)

# %% tags=["remove-cell"]
for C_, s in pt_stats.items():
    glue(f"ch01_pt_mass_C{C_}", s.diag_mass, display=False)
    glue(f"ch01_pt_ratio_C{C_}", s.rms_ratio, display=False)

# %% tags=["remove-cell"]
glue("ch01_pt_N", cfg.pt_N, display=False)
glue("ch01_pt_d", cfg.pt_d, display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Linear model + CE at random initialisation on Gaussian data, for $C = 2$, 10 and 100 classes (left to right): $|H|$ with lines between the class blocks (each of size $d$), clipped at 1/10 of the maximum (each block is close to a multiple of $\\frac1N\\sum_n x_nx_n^\\top \\approx I$, hence the bright diagonals). At $C = 2$ the off-diagonal blocks mirror the diagonal ones; as $C$ grows the mass concentrates on the diagonal blocks.", "name": "fig-01-phase"}}
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, (C_, (H_c, lay_c)) in zip(axes, pt_H.items()):
    s = pt_stats[C_]
    hl.plot.heatmap(
        H_c,
        lay_c,
        ax=ax,
        clip=1 / 10,
        grid="groups_and_blocks" if C_ <= 10 else "none",
        title=f"C = {C_}: ratio {s.rms_ratio:.3f}, "
        f"diagonal mass {s.diag_mass:.3f}",
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# The numbers in the panel titles make the transition quantitative: the diagonal blocks hold
# {glue:text}`ch01_pt_mass_C2:.3f` of the squared Frobenius norm at $C = 2$,
# {glue:text}`ch01_pt_mass_C10:.3f` at $C = 10$ and {glue:text}`ch01_pt_mass_C100:.4f` at
# $C = 100$. To follow the curve further we do not need the Hessian itself: for this model
# the diagonal and total block masses are sums over pairs of samples of
# $(x_n^\top x_{n'})^2$ times simple functions of $p_n$ and $p_{n'}$
# (`ch.ce_class_block_mass`), which costs $O(N^2 C)$ instead of the $(Cd)^2$ entries of $H$.
# The cell checks it against the dense Hessians above, then sweeps $C$ up to 1000 over
# {glue:text}`ch01_pt_seeds` seeds.

# %%
for C_, (H_c, lay_c) in pt_H.items():
    data_c = hl.gaussian_data(
        cfg.pt_N, cfg.pt_d, C_, seed=seed, device=device
    )
    lin = hl.linear_net(cfg.pt_d, C_, seed=seed + 1, device=device)
    gram = ch.ce_class_block_mass(data_c.X, lin(data_c.X).detach())
    assert abs(gram.diag_mass - pt_stats[C_].diag_mass) < 1e-10
    assert abs(gram.rms_ratio - pt_stats[C_].rms_ratio) < 1e-8
del pt_H
Cs_sweep = [2, 3, 5, 10, 20, 50, 100, 200, 500, 1000]
mass_sweep = torch.zeros(len(Cs_sweep), cfg.pt_seeds, dtype=torch.float64)
for i, j in tqdm(list(np.ndindex(*mass_sweep.shape)), desc="C sweep"):
    data_c = hl.gaussian_data(
        cfg.pt_N, cfg.pt_d, Cs_sweep[i], seed=seed + 100 * j, device=device
    )
    lin = hl.linear_net(
        cfg.pt_d, Cs_sweep[i], seed=seed + 100 * j + 1, device=device
    )
    mass_sweep[i, j] = ch.ce_class_block_mass(
        data_c.X, lin(data_c.X).detach()
    ).diag_mass
assert bool(
    (mass_sweep.mean(1).diff() > 0).all()
)  # the diagonal mass grows with C

# %% tags=["remove-cell"]
glue("ch01_pt_seeds", cfg.pt_seeds, display=False)
glue("ch01_pt_mass_C1000", float(mass_sweep[-1].mean()), display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Fraction of the squared Frobenius norm of the linear-model CE Hessian on its $C$ diagonal blocks, against the number of classes $C$ (log axis); mean over seeds with the min–max band, and the value $(C-1)/C$ for uniform probabilities.", "name": "fig-01-phase-mass"}}
ax = plt.subplots(figsize=(5.5, 3.6))[1]
ax.plot(
    Cs_sweep,
    mass_sweep.mean(1),
    "o-",
    label="measured (linear + CE, random init)",
)
ax.fill_between(
    Cs_sweep,
    mass_sweep.min(1).values,
    mass_sweep.max(1).values,
    alpha=0.25,
)
ax.plot(
    Cs_sweep,
    [(c - 1) / c for c in Cs_sweep],
    "k--",
    label="$(C-1)/C$ (uniform $p$)",
)
ax.set(
    xscale="log",
    xlabel="number of classes C",
    ylabel="diagonal-block mass fraction",
)
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The mass fraction climbs from exactly one half at $C = 2$ to
# {glue:text}`ch01_pt_mass_C1000:.4f` at $C = 1000$, close to the uniform-probability value
# $(C-1)/C$: large $C$ is what makes the Hessian of this model near-block-diagonal.
# {doc}`Chapter 02 <02_intuition>` explains the part of the pattern that linear algebra alone
# predicts, and {doc}`chapter 04 <04_static_force>` turns the role of $C$ into rates for all four
# cases.
#
# :::{admonition} The paper says / this chapter finds
# :class: tip
# - **The talk:** at random initialisation the Hessian of a one-hidden-layer net is
#   near-block-diagonal: bright neuron blocks in the hidden layer, class blocks in the output
#   layer. **Here:** confirmed in the Gaussian setting ({numref}`fig-01-gaussian`,
#   {numref}`fig-01-block-norms`): a fraction {glue:text}`ch01_mass_all_ce:.3f` of
#   $\|H\|_F^2$ lies on the diagonal blocks (CE); the CE class-block ratio is
#   {glue:text}`ch01_ratio_ce_vv:.4f`, and under MSE the class blocks are exactly decoupled.
# - **The talk's Fig. 1** (CIFAR-100, $m = 8$, $C = 100$). **Here:** the same picture on the
#   data of this build ({numref}`fig-01-cifar`): neuron-block ratio
#   {glue:text}`ch01_fig1_ratio_ce_ww:.3f` (CE), class-block ratio
#   {glue:text}`ch01_fig1_ratio_ce_vv:.4f`, of the order of $1/(C-1)$. The slide's
#   $d = 32\,000$ is not CIFAR's 3072; at $d = 32\,000$ the Gram identity gives ratios
#   {glue:text}`ch01_d32k_ww_big:.3f` and {glue:text}`ch01_d32k_vv_big:.4f`: the same structure.
# - **The talk:** the number of classes drives the pattern. **Here:** for a linear CE model the
#   diagonal mass rises from {glue:text}`ch01_pt_mass_C2:.3f` at $C = 2$ to
#   {glue:text}`ch01_pt_mass_C1000:.4f` at $C = 1000$ ({numref}`fig-01-phase`,
#   {numref}`fig-01-phase-mass`).
# :::
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

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
r = stats[("ce", "W")].rms_ratio
B_half = 1 + 1 / r**2
print(f"B = 1 + 1/r^2 = {B_half:.1f} neuron blocks")
assert abs(1 / (1 + (B_half - 1) * r**2) - 0.5) < 1e-12

# %% [markdown]
# 2. Under MSE the class blocks are exactly decoupled. Show from
#    $H_{v_cv_{c'}} = \frac1N\sum_n S_n[c,c']\,a_na_n^\top$ ({doc}`chapter 04 <04_static_force>`)
#    that all class blocks are in fact *equal* under MSE, and check it numerically.
#
# :::{dropdown} Solution
# For MSE $S_n = I$, so $H_{v_cv_c} = \frac1N\sum_n a_na_n^\top = \frac1N A^\top A$ for every
# $c$, independent of $c$; the cell below checks that all class blocks coincide.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
Hvv = H_mse_vv  # H["mse"][V, V], kept when the full Hessians were freed
diag_blocks = torch.stack(
    [
        Hvv[c * cfg.m : (c + 1) * cfg.m, c * cfg.m : (c + 1) * cfg.m]
        for c in range(cfg.C)
    ]
)
spread = float((diag_blocks - diag_blocks[0]).abs().max())
print(f"largest difference between class blocks: {spread:.1e}")
assert spread == 0.0

# %% [markdown]
# 3. *The binary case.* Show that for $C = 2$ the linear-model CE Hessian satisfies
#    $H_{v_1v_2} = -H_{v_1v_1} = -H_{v_2v_2}$ for any data and weights, and deduce its
#    eigenvectors: what does this say about the two classes' weights?
#
# :::{dropdown} Solution
# With $p_{n,2} = 1 - p_{n,1}$ all three blocks are $\pm\frac1N\sum_n p_{n,1}p_{n,2}x_nx_n^\top
# =: \pm K$, so $H = \left(\begin{smallmatrix}1 & -1\\ -1 & 1\end{smallmatrix}\right)\otimes K$.
# Its non-zero eigenvalues are twice those of $K$, with eigenvectors $(u, -u)$; every vector
# $(u, u)$ is in the kernel — adding the same vector to both rows of $V$ leaves the softmax,
# hence the loss, unchanged. The cell checks both facts on a fresh $C = 2$ problem.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
data_2 = hl.gaussian_data(50, 6, 2, seed=seed + 7, device=device)
lin_2 = hl.linear_net(6, 2, seed=seed + 8, device=device)
H_2 = hl.closed_form_hessian(lin_2, data_2.X, data_2.y, loss="ce")
K_2 = H_2[:6, :6]
assert torch.allclose(H_2[:6, 6:], -K_2, atol=1e-14) and torch.allclose(
    H_2[6:, 6:], K_2, atol=1e-14
)
u = torch.randn(6, dtype=H_2.dtype, device=device)
print("|H (u, u)| =", float((H_2 @ torch.cat([u, u])).norm()))
assert float((H_2 @ torch.cat([u, u])).norm()) < 1e-12

# %% [markdown]
# 4. *Uniform probabilities.* Show that if every $p_n$ is uniform ($p_{n,c} = 1/C$), the
#    diagonal-block mass of the linear-model CE Hessian is exactly $(C-1)/C$, whatever the
#    data. Which weights give uniform probabilities?
#
# :::{dropdown} Solution
# With $p_n = \mathbf 1/C$, $S_n = \frac1C I - \frac1{C^2}\mathbf 1\mathbf 1^\top$ for every
# $n$, so $H = S\otimes\Sigma$ with $\Sigma = \frac1N\sum_n x_nx_n^\top$. The blocks are
# $\frac{C-1}{C^2}\Sigma$ on the diagonal and $-\frac1{C^2}\Sigma$ off it, so the mass is
# $\frac{C(C-1)^2}{C(C-1)^2 + C(C-1)} = \frac{C-1}{C}$. $V = 0$ (all logits equal) gives
# uniform probabilities; the cell checks the formula with zero logits.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
X_u = hl.gaussian_data(60, 5, 2, seed=seed + 9, device=device).X
for C_ in (2, 7, 50):
    mass_u = ch.ce_class_block_mass(
        X_u, torch.zeros(60, C_, dtype=X_u.dtype, device=device)
    ).diag_mass
    print(
        f"C = {C_}: diagonal mass {mass_u:.12f}, (C-1)/C = "
        f"{(C_ - 1) / C_:.12f}"
    )
    assert abs(mass_u - (C_ - 1) / C_) < 1e-12
