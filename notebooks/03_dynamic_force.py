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
# # 03 The dynamic force: how training reshapes the Hessian
#
# Chapter 01 looked at the Hessian at random initialisation. A network is not left there: it is
# trained, and the Hessian moves with the weights. The talk behind {cite}`dong2025hessian`
# reports three things about the one-hidden-layer network of the Gaussian setting trained with
# full-batch Adam {cite}`kingma2015adam`:
#
# 1. at initialisation the cross block $H_{wv}$ between the two layers has a
#    *block-circulant* look — a bright stripe in every block;
# 2. that part fades as training goes on;
# 3. the near-block-diagonal pattern of $H_{ww}$ and $H_{vv}$ survives training.
#
# The explanation offered is a "dynamic force": the bright stripe is a term proportional to the
# residuals $\delta_{y_n c} - p_{n,c}$, and training drives residuals to zero. This chapter
# trains the network, computes the exact Hessian along the way, splits $H_{wv}$ into that
# residual term and the rest, and checks how much of the story holds in the setting of the talk,
# where the labels are random and the network has only $m = 8$ neurons, so the loss **cannot**
# reach zero. It ends with the talk's deeper network (four layers).

# %% tags=["parameters"]
profile = "default"
seed = 0
steps = None  # Adam steps of the main run
lr = None  # peak learning rate (cosine schedule)

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from myst_nb import glue
from tqdm.auto import tqdm

import hesslib as hl
from hesslib.chapters import dynamic_force as ch

FRAMES = (0.0, 0.005, 0.01, 0.05, 0.25, 0.5, 1.0)  # checkpoints, as fractions of the run
# fmt: off
PROFILES = {
    "quick": {"N": 300, "d": 30, "C": 30, "m": 4, "steps": 200, "lr": 0.03, "frames": FRAMES,
              "deep_N": 60, "deep_width": 10, "deep_steps": 200, "deep_lr": 3e-3, "ex_steps": 100},
    "default": {"N": 5000, "d": 500, "C": 500, "m": 8, "steps": 1000, "lr": 0.03, "frames": FRAMES,
                "deep_N": 500, "deep_width": 50, "deep_steps": 1000, "deep_lr": 1e-3, "ex_steps": 400},
    "paper": {"N": 5000, "d": 500, "C": 500, "m": 8, "steps": 20000, "lr": 0.03, "frames": FRAMES,
              "deep_N": 500, "deep_width": 50, "deep_steps": 10000, "deep_lr": 1e-3, "ex_steps": 5000},
}
# fmt: on
cfg = hl.resolve_profile(profile, PROFILES, steps=steps, lr=lr)
device = hl.default_device()
print("device:", hl.device_name(device))

# %% [markdown]
# ## Training, fast
#
# The data are $N$ Gaussian inputs with labels drawn uniformly from $C$ classes, independent of
# the inputs; the network is $f(x) = V\sigma(Wx)$ with LeCun initialisation (chapter 01). We
# train it on the cross-entropy loss with full-batch Adam and a cosine learning-rate schedule,
# keeping a float64 copy of the weights at a few checkpoints — at 0, 1, 25, 50 and 100 % of the
# run and a few more early on, where things change fastest.
#
# One training step is five thin matrix products of about $N d m$ multiply-adds each plus a
# softmax over $N\times C$ logits. `hl.train_adam` writes the forward and backward pass by hand
# with activations stored transposed (so every product runs along a long contiguous axis),
# processes the samples in cache-sized chunks, and applies Adam to one flat float32 buffer; the
# test suite checks that its iterates equal those of `torch.optim.Adam` with autograd. The
# Hessians are then computed exactly, in float64, at the checkpoints.

# %%
data = hl.gaussian_data(cfg.N, cfg.d, cfg.C, seed=seed, device=device)
net = hl.one_hidden_net(cfg.d, cfg.m, cfg.C, seed=seed + 1, device=device)
ckpts = hl.train.checkpoint_steps(cfg.steps, cfg.frames)
adam = dict(steps=cfg.steps, lr=cfg.lr, schedule="cosine", checkpoints=ckpts)
run = hl.train_adam(net, data.X, data.y, desc="Adam, Gaussian setting", **adam)
print(f"loss {run.losses[0]:.3f} -> {run.losses[-1]:.3f}, {run.steps_per_s:.0f} steps/s")
assert run.losses[-1] < run.losses[0] - 0.5

# %% [markdown]
# How fast is that? On a shared machine one timing mostly measures the neighbours, so
# `hl.train.compare_adam_speed` alternates short runs of the helper and of the textbook loop
# (`model(X)`, `backward()`, `torch.optim.Adam`, same float32 precision) and keeps the best of
# each.

# %%
fast, slow = hl.train.compare_adam_speed(
    net, data.X, data.y, steps=50 if cfg.profile != "quick" else 10
)
print(f"train_adam {fast:.0f} steps/s ({1e3 / fast:.1f} ms/step); textbook {slow:.0f} steps/s")

# %% [markdown]
# Here the helper runs {glue:text}`ch03_steps_per_s:.0f` steps per second against
# {glue:text}`ch03_textbook_steps_per_s:.0f` for the textbook loop. The loss falls from
# {glue:text}`ch03_loss_init:.3f` — about $\ln C =$ {glue:text}`ch03_lnC:.3f`, chance level —
# to {glue:text}`ch03_loss_final:.3f` ({numref}`fig-03-loss`). At this speed the `paper`
# profile's training ({glue:text}`ch03_paper_steps` steps, plus 2 × {glue:text}`ch03_paper_ex_steps`
# in the exercises) takes about {glue:text}`ch03_paper_train_min:.0f` minutes here; its Hessians cost the same as
# in this profile, and a GPU makes both fast.

# %%
glue("ch03_steps_per_s", fast, display=False)
glue("ch03_textbook_steps_per_s", slow, display=False)
glue("ch03_loss_init", float(run.losses[0]), display=False)
glue("ch03_loss_final", float(run.losses[-1]), display=False)
glue("ch03_lnC", math.log(cfg.C), display=False)
glue("ch03_steps", cfg.steps, display=False)
paper = PROFILES["paper"]
glue("ch03_paper_steps", paper["steps"], display=False)
glue("ch03_paper_ex_steps", paper["ex_steps"], display=False)
glue("ch03_paper_train_min", (paper["steps"] + 2 * paper["ex_steps"]) / fast / 60, display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Training loss of full-batch Adam (cosine schedule) in the Gaussian setting; dots mark the checkpoints where the exact Hessian is computed, the dashed line is chance level $\\ln C$.", "name": "fig-03-loss"}}
fig, ax = plt.subplots(figsize=(5.5, 3.2))
t = np.arange(cfg.steps + 1)
ax.plot(t + 1, run.losses.numpy(), lw=1.2)
ax.plot([c.step + 1 for c in run.checkpoints], [c.loss for c in run.checkpoints], "o", ms=4)
ax.axhline(math.log(cfg.C), ls="--", color="gray", lw=0.8)
ax.set(xscale="log", xlabel="step + 1", ylabel="training loss (CE)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The Hessian along training
#
# At every checkpoint we form the exact $P\times P$ Hessian with the closed-form blocks of
# chapter 04 (`hl.closed_form_blocks`, float64), keep a max-pooled picture of $|H|$ and the
# numbers we need, and free the matrix (`ch.hessian_snapshot`).

# %%
snaps = [
    ch.hessian_snapshot(c.model, data.X.double(), data.y, step=c.step)
    for c in tqdm(run.checkpoints, desc="Hessians")
]
tab = ch.snapshot_table(snaps)
layout = net.layout()
Pw = cfg.m * cfg.d  # where V starts
assert np.allclose(tab["loss"], [c.loss for c in run.checkpoints], rtol=1e-10)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "$|H|$ at 0, 1, 25, 50 and 100 % of the training run. The white lines separate the $W$ and $V$ parameters: top-left $H_{ww}$ (m neuron blocks of size d), bottom-right $H_{vv}$ (C class blocks of size m), off-diagonal $H_{wv}$. Each panel saturates at 1/100 of its own maximum and is max-pooled to screen resolution.", "name": "fig-03-snapshots"}}
shown = [s for s in snaps if s.step in hl.train.checkpoint_steps(cfg.steps)]
fig, axes = plt.subplots(1, len(shown), figsize=(3.0 * len(shown), 3.3))
for ax, s in zip(axes, shown):
    hl.plot.snapshot(
        s,
        ax=ax,
        boundary=Pw,
        title=f"{100 * s.step / cfg.steps:g} % (step {s.step})\nloss {s.loss:.3f}",
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# The animation below plays all {glue:text}`ch03_num_frames` checkpoints (each frame scaled to
# its own maximum, as in the talk's video). The bright, uniform-looking $H_{wv}$ of
# initialisation gives way to a dim, speckled one, while $H_{vv}$ — dark at initialisation,
# where $p_{n,c}(1-p_{n,c}) \approx 1/C$ is tiny — lights up along its diagonal, and the $m$
# neuron blocks of $H_{ww}$ stay the brightest structure throughout.

# %% tags=["hide-input"]
gif = hl.plot.snapshot_gif(snaps, boundary=Pw, total_steps=cfg.steps, size=4.2, dpi=80)
glue("ch03_num_frames", len(snaps), display=False)
glue("ch03_gif_kb", len(gif) / 1024, display=False)
display(hl.plot.gif_html(gif, alt="Evolution of |H| along training", width=420))

# %% [markdown]
# (The animation is an inline GIF of {glue:text}`ch03_gif_kb:.0f` kB, so the page plays it
# offline.)
#
# ## The mechanism: a residual term in $H_{wv}$
#
# Write $g_n = p_n - e_{y_n}$ for the gradient of the CE loss with respect to the logits,
# $D_{nk} = \mathbb 1[w_k^\top x_n > 0]$ and $a_n = \sigma(Wx_n)$. Differentiating
# $\partial\ell/\partial v_c = \frac1N\sum_n g_{nc}\,a_n$ with respect to $w_k$ gives two terms:
#
# $$
# H_{w_k v_c} \;=\; \underbrace{\frac1N\sum_n g_{nc} D_{nk}\, x_n\, e_k^\top}_{\text{residual term}}
# \;+\; \underbrace{\frac1N\sum_n p_{nc}\,(V_{ck} - p_n^\top V_{:,k})\, D_{nk}\, x_n a_n^\top}_{\text{rest}}
# \;\in\mathbb R^{d\times m}.
# $$
#
# The first comes from $\partial a_{nk}/\partial w_k$ and touches only column $k$ of the block
# (the computation graph links $w_k$ to $v_c$ only through the $k$-th entry of $v_c$); it is
# proportional to the residuals $g_{nc} = p_{nc} - \delta_{y_n c}$. The second comes from the
# curvature of the softmax and carries a factor $p_{nc}\approx 1/C$ at initialisation. So at
# initialisation $H_{wv}$ is close to *one column per block*, the same column $k$ in every block
# of the $k$-th row of blocks — the stripes of the talk. `hl.hwv_decomposition` returns the two
# terms; `ch.hessian_snapshot` records their Frobenius norms and the share of $\|H_{wv}\|_F^2$
# sitting in the "own" columns.

# %%
first, last = snaps[0], snaps[-1]
for s in (first, last):
    M = s.column_norms / s.column_norms.max()  # (m, m): ‖column j of the blocks (k, ·)‖
    print(
        f"step {s.step}: own-column share {s.hwv.own_column_fraction:.3f}; "
        f"column-norm map (row k, column j), scaled to max 1:"
    )
    print(np.array2string(M.numpy()[:8, :8], precision=2, suppress_small=True))
assert first.hwv.own_column_fraction > 0.9

# %% [markdown]
# At initialisation {glue:text}`ch03_own_init:.1%` of $\|H_{wv}\|_F^2$ lies in the own columns —
# the column-norm map is diagonal — and the residual term has norm
# {glue:text}`ch03_res_init:.3f` against {glue:text}`ch03_rest_init:.3f` for the rest. At the end
# of training the own columns hold only {glue:text}`ch03_own_final:.1%`: the stripes are gone.
# {numref}`fig-03-zoom` shows it at full resolution.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "$|H_{wv}|$ at full resolution on the first 24 input coordinates of each neuron (rows, one band per neuron $k$) and the first 6 classes (columns, $m$ columns per class block), at initialisation (left) and after training (right). At initialisation each band lights up column $k$ of every class block: the residual term.", "name": "fig-03-zoom"}}
fig, axes = plt.subplots(1, 2, figsize=(7, 4.2))
for ax, s, name in zip(axes, (first, last), ("initialisation", "end of training")):
    ax.imshow(s.hwv_zoom, cmap="viridis", aspect="auto", interpolation="nearest")
    ax.set(
        title=f"{name} (step {s.step})",
        xlabel="class blocks $v_c$ (m columns each)",
        ylabel="neuron bands $w_k$",
    )
plt.tight_layout()
plt.show()

# %%
glue("ch03_own_init", first.hwv.own_column_fraction, display=False)
glue("ch03_own_final", last.hwv.own_column_fraction, display=False)
glue("ch03_res_init", first.hwv.residual, display=False)
glue("ch03_rest_init", first.hwv.rest, display=False)
glue("ch03_res_final", last.hwv.residual, display=False)
glue("ch03_rest_final", last.hwv.rest, display=False)
glue("ch03_hwv_init", first.hwv.total, display=False)
glue("ch03_hwv_final", last.hwv.total, display=False)

# %% [markdown]
# ## Does $H_{wv}$ fade? Not in the way the story says
#
# {numref}`fig-03-norms` follows the three norms against the training loss, and the share of
# $H_{wv}$ in the whole Hessian.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Left: $\\|H_{wv}\\|_F$, its residual term and the rest at each checkpoint, against the training loss (log-log; training runs from right to left). Right: along training, the share $\\|H_{wv}\\|_F / \\|H\\|_F$ of the cross block in the whole Hessian and the share of $\\|H_{wv}\\|_F^2$ in the own columns.", "name": "fig-03-norms"}}
norm_H = np.sqrt(tab["norm_ww"] ** 2 + tab["norm_vv"] ** 2 + 2 * tab["hwv"] ** 2)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for key, label in (("hwv", r"$\|H_{wv}\|_F$"), ("residual", "residual term"), ("rest", "rest")):
    axes[0].plot(tab["loss"], tab[key], "o-", ms=4, label=label)
axes[0].set(xscale="log", yscale="log", xlabel="training loss", ylabel="Frobenius norm")
axes[0].legend(fontsize=8)
axes[1].plot(tab["step"] + 1, tab["hwv"] / norm_H, "o-", ms=4, label=r"$\|H_{wv}\|_F/\|H\|_F$")
axes[1].plot(tab["step"] + 1, tab["own_column"], "s-", ms=4, label="own-column share")
axes[1].set(xscale="log", xlabel="step + 1", ylim=(0, 1.02))
axes[1].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
share = tab["hwv"] / norm_H
res_drop = 1 - last.hwv.residual / first.hwv.residual
glue("ch03_res_drop", res_drop, display=False)
glue("ch03_share_init", float(share[0]), display=False)
glue("ch03_share_final", float(share[-1]), display=False)
glue("ch03_corr_res_loss", hl.core.log_correlation(tab["residual"], tab["loss"]), display=False)
glue("ch03_corr_share_loss", hl.core.log_correlation(share, tab["loss"]), display=False)
glue("ch03_py_final", math.exp(-last.loss), display=False)
glue("ch03_norm_vv_growth", last.norm_vv / first.norm_vv, display=False)
glue("ch03_norm_ww_growth", last.norm_ww / first.norm_ww, display=False)
glue("ch03_hwv_growth", last.hwv.total / first.hwv.total, display=False)
assert share[-1] < share[0] and last.hwv.own_column_fraction < first.hwv.own_column_fraction

# %% [markdown]
# The picture is more nuanced than "$H_{wv}\approx O(\text{optimality gap})$ vanishes":
#
# * **The residual term barely moves.** Its norm goes from {glue:text}`ch03_res_init:.3f` to
#   {glue:text}`ch03_res_final:.3f`, a drop of {glue:text}`ch03_res_drop:.1%`. With random
#   labels and $m = 8$ neurons for $N = 5000$ samples the network cannot memorise: the final
#   loss {glue:text}`ch03_loss_final:.3f` means a geometric-mean probability of the true class of
#   only {glue:text}`ch03_py_final:.3f`, so the residuals $\delta_{y_nc} - p_{nc}$ are still of
#   order one. (The log-correlation between residual norm and loss across checkpoints is
#   {glue:text}`ch03_corr_res_loss:.2f`, but over a tiny range.)
# * **The rest grows.** As Adam enlarges the weights, the second term goes from
#   {glue:text}`ch03_rest_init:.3f` to {glue:text}`ch03_rest_final:.3f`, so $\|H_{wv}\|_F$
#   itself goes *up*, from {glue:text}`ch03_hwv_init:.3f` to {glue:text}`ch03_hwv_final:.3f`.
# * **What fades is the pattern and the share.** The rest is spread over all columns, so the
#   one-column stripes drown (own-column share {glue:text}`ch03_own_init:.2f` →
#   {glue:text}`ch03_own_final:.2f`). And while $H_{wv}$ grows by a factor
#   {glue:text}`ch03_hwv_growth:.1f` and $H_{ww}$ by {glue:text}`ch03_norm_ww_growth:.1f`, the
#   output block $H_{vv}$ — tiny at initialisation, where $p_{nc}(1-p_{nc})\approx 1/C$ — grows
#   by a factor {glue:text}`ch03_norm_vv_growth:.0f`, so the cross block's share of the Hessian
#   falls from {glue:text}`ch03_share_init:.3f` to {glue:text}`ch03_share_final:.3f`
#   (log-correlation with the loss {glue:text}`ch03_corr_share_loss:.2f`). In pictures scaled to
#   their own maximum — the talk's video and {numref}`fig-03-snapshots` — this reads as
#   "$H_{wv}$ fades".
#
# Why can the residual term survive at a point where the gradient is small? Because the
# gradient only sees *projections* of it. With $R_k = \frac1N X^\top \operatorname{diag}(D_{:k})
# G\in\mathbb R^{d\times C}$ (its columns are the residual columns of the blocks $H_{w_kv_c}$),
#
# $$
# \frac{\partial \ell}{\partial V_{ck}} = w_k^\top R_k[:, c], \qquad
# \frac{\partial \ell}{\partial w_k} = R_k\, V_{:,k},
# $$
#
# so a stationary point only asks $R_k$ to be orthogonal to $w_k$ and to annihilate $V_{:,k}$ —
# $d + C$ conditions on $dC$ numbers. $R_k$ vanishes only when the residuals do, that is when
# the network fits the labels; exercise 3 checks these identities and exercise 2 trains on
# learnable labels, where the residual term does fade.
#
# The other half of the talk's claim holds well: the near-block-diagonal pattern of the two
# diagonal blocks survives training.

# %%
for s in (first, last):
    print(f"step {s.step:>6}: ratio H_ww {s.ratio_ww:.4f}  ratio H_vv {s.ratio_vv:.4f}")
glue("ch03_ratio_ww_init", first.ratio_ww, display=False)
glue("ch03_ratio_ww_final", last.ratio_ww, display=False)
glue("ch03_ratio_vv_init", first.ratio_vv, display=False)
glue("ch03_ratio_vv_final", last.ratio_vv, display=False)
glue("ch03_ratio_ww_max", float(tab["ratio_ww"].max()), display=False)
assert tab["ratio_ww"].max() < 0.5 and tab["ratio_vv"].max() < 0.5

# %% [markdown]
# The RMS off/diagonal block ratio (the statistic of chapter 01) of the neuron blocks of
# $H_{ww}$ is {glue:text}`ch03_ratio_ww_init:.3f` at initialisation and
# {glue:text}`ch03_ratio_ww_final:.3f` at the end (at most {glue:text}`ch03_ratio_ww_max:.3f` on
# the way); for the class blocks of $H_{vv}$ it goes from {glue:text}`ch03_ratio_vv_init:.4f` to
# {glue:text}`ch03_ratio_vv_final:.4f`. Both stay small: training does not undo the static
# structure that chapter 04 explains.
#
# ## Deeper networks
#
# The talk closes this part with a guess: for a deeper ReLU network, read the Hessian's
# pattern off the computation graph — a block per neuron, weak links elsewhere — and check it on
# a 4-layer network ($d = C = $ width $= 50$, $N = 500$, random labels, CE, Adam). "4-layer"
# counts weight matrices, as "2-layer" does for $V\sigma(Wx)$: three hidden layers,
# $P = 4\cdot 50^2 = 10\,000$ parameters. `hl.nets.deep_hessian` computes its exact Hessian from
# block formulas, several times faster than $P$ Hessian-vector products (tested against
# `torch.func.hessian`):
#
# $$
# H = \underbrace{\frac1N\sum_n J_n^\top S_n J_n}_{\text{Gauss–Newton part}}
# \;+\; \underbrace{\frac1N\sum_n\sum_c g_{nc}\,\nabla^2 f_c(x_n)}_{\text{residual part}} .
# $$
#
# A bias-free ReLU network is linear in each weight matrix separately, so the residual part has
# no layer-diagonal blocks: it lives entirely between layers, and between adjacent layers it has
# the same one-column shape as the residual term of $H_{wv}$ above. Unlike the Gaussian setting,
# this network has $P = 10\,000$ parameters for $N = 500$ samples and *can* memorise the random
# labels, so here the residuals do go to zero. We look at initialisation, 10 % and 100 % of the
# run.

# %%
dd, T = cfg.deep_width, cfg.deep_steps
deep_data = hl.gaussian_data(cfg.deep_N, dd, dd, seed=seed + 2, device=device)
deep = hl.nets.deep_net(dd, dd, dd, depth=4, seed=seed + 3, device=device)
deep_adam = dict(steps=T, lr=cfg.deep_lr, checkpoints=[0, T // 10, T])
deep_run = hl.train_adam(deep, deep_data.X, deep_data.y, desc="Adam, 4-layer net", **deep_adam)

# %%
deep_snaps = []
for c in tqdm(deep_run.checkpoints, desc="Hessians"):
    s = ch.deep_snapshot(c.model, deep_data.X.double(), deep_data.y, step=c.step)
    deep_snaps.append(s)
    print(
        f"step {s.step:>5}: loss {s.loss:.2e}, residual part {s.residual_share:.3f} of |H|_F, "
        f"layer-diagonal mass {s.layer_diag_mass:.3f}, ratios {np.round(s.neuron_ratios, 3)}"
    )
assert deep_snaps[-1].residual_share < 0.5 * deep_snaps[0].residual_share

# %% tags=["hide-input"] mystnb={"figure": {"caption": "$|H|$ of the 4-layer ReLU network at initialisation, at 10 % and at the end of training. White lines separate the four layers $W_1,\\dots,W_4$; the per-neuron blocks (one per row of each $W_l$, 50 per layer) lie along the diagonal. Max-pooled to 400 pixels and clipped at 1/10 of each panel's maximum (at 1/100 nearly every pooled pixel saturates).", "name": "fig-03-deep"}}
fig, axes = plt.subplots(1, len(deep_snaps), figsize=(3.4 * len(deep_snaps), 3.6))
for ax, s in zip(axes, deep_snaps):
    title = f"step {s.step} ({100 * s.step / T:g} %), loss {s.loss:.2g}"
    hl.plot.deep_snapshot(s, ax=ax, clip=1 / 10, title=title)
plt.tight_layout()
plt.show()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Frobenius norms of the $4\\times4$ layer blocks $\\|H_{W_lW_k}\\|_F$ of the 4-layer network (log scale), at initialisation (left) and at the end of training (right).", "name": "fig-03-deep-layers"}}
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
for ax, s in zip(axes, (deep_snaps[0], deep_snaps[-1])):
    names = ["W1", "W2", "W3", "W4"]
    hl.plot.block_norm_map(s.layer_norms, ax=ax, log=True, labels=names, title=f"step {s.step}")
plt.tight_layout()
plt.show()

# %%
d0, d_mid, d1 = deep_snaps
glue("ch03_deep_loss_final", d1.loss, display=False)
glue("ch03_deep_res_init", d0.residual_share, display=False)
glue("ch03_deep_res_mid", d_mid.residual_share, display=False)
glue("ch03_deep_res_final", d1.residual_share, display=False)
glue("ch03_deep_layer_mass_init", d0.layer_diag_mass, display=False)
glue("ch03_deep_layer_mass_final", d1.layer_diag_mass, display=False)
glue("ch03_deep_ratio_w1_final", d1.neuron_ratios[0], display=False)
glue("ch03_deep_ratio_w4_final", d1.neuron_ratios[3], display=False)

# %% [markdown]
# At initialisation the residual part is {glue:text}`ch03_deep_res_init:.0%` of $\|H\|_F$: the
# cross-layer blocks dominate, and only {glue:text}`ch03_deep_layer_mass_init:.0%` of
# $\|H\|_F^2$ sits on the four layer-diagonal blocks — the striped off-diagonal squares of
# {numref}`fig-03-deep` are the deep version of the one-column residual term. As the network
# fits the labels the residual part falls to {glue:text}`ch03_deep_res_mid:.0%` at 10 % of the
# run and {glue:text}`ch03_deep_res_final:.1%` at the end (loss
# {glue:text}`ch03_deep_loss_final:.1e`), and the layer-diagonal mass rises to
# {glue:text}`ch03_deep_layer_mass_final:.0%`. Here the dynamic force acts in full, and it is
# what makes the per-neuron blocks visible. Within a layer the neuron blocks are clearly
# separated (RMS off/diagonal ratio {glue:text}`ch03_deep_ratio_w1_final:.3f` in the first
# layer, {glue:text}`ch03_deep_ratio_w4_final:.3f` among the class blocks of the last), but the
# Gauss–Newton part still couples the layers ({numref}`fig-03-deep-layers`): with only $C = 50$
# classes the static force of chapter 04 is weak here.
#
# ## Exercises
#
# 1. **MSE.** For the MSE loss the curvature of the loss in the logits is the identity, so the
#    "rest" of $H_{w_kv_c}$ becomes $V_{ck}\,\frac1N\sum_n D_{nk}x_na_n^\top$ and the residual
#    term is proportional to $f(x_n) - e_{y_n}$. Predict what training does to the two terms in
#    the Gaussian setting with random labels, then check.
#
# :::{dropdown} Solution
# At LeCun initialisation the outputs are $O(1)$ in every one of the $C$ coordinates, so
# $f - e_y$ is large and the residual term dominates. The best MSE fit to random labels is
# close to the constant $1/C$ in every coordinate, so training shrinks $f$: the residual term
# falls a lot but not to zero ($1/C - e_y$ stays of order one in the true class), and the rest,
# proportional to $V$, falls as $V$ shrinks. The cell below trains with MSE and prints both
# norms at the start and at the end.
# :::


# %% tags=["hide-input"]
kw = dict(steps=cfg.ex_steps, lr=0.01, loss="mse")
mse = ch.hwv_norms_along(net, data.X, data.y, **kw)  # [(step, loss, HwvNorms)] at start and end
for step, loss_value, n in mse:
    print(f"MSE, step {step}: loss {loss_value:.3f}, residual {n.residual:.3f}, rest {n.rest:.3f}")
assert mse[1][2].residual < mse[0][2].residual and mse[1][2].rest < mse[0][2].rest

# %% [markdown]
# 2. **Learnable labels.** Replace the random labels by those of a *teacher* network of the same
#    shape, $y_n = \arg\max_c f_{\text{teacher}}(x_n)_c$, so that the loss can go to zero. How
#    much does the residual term fade now?
#
# :::{dropdown} Solution
# Now the residuals do shrink with the loss, and so does the residual term — by a far larger
# factor than with random labels — while the rest still grows with the weights. The dynamic
# force of the talk is visible in full when the labels can be fitted.
# :::

# %% tags=["hide-input"]
teacher = hl.one_hidden_net(cfg.d, cfg.m, cfg.C, seed=seed + 7, device=device)
y_teacher = teacher(data.X).argmax(dim=1)
learn = ch.hwv_norms_along(net, data.X, y_teacher, steps=cfg.ex_steps, lr=cfg.lr)
for step, loss_value, n in learn:
    print(
        f"teacher, step {step}: loss {loss_value:.3f}, residual {n.residual:.3f}, rest {n.rest:.3f}"
    )
fade_teacher = 1 - learn[1][2].residual / learn[0][2].residual
print(f"residual term fades by {fade_teacher:.1%} (random labels, longer run: {res_drop:.1%})")
assert fade_teacher > res_drop

# %% [markdown]
# 3. **The gradient sees only projections of the residual term.** Check numerically, at the
#    last checkpoint of the main run, that $\partial\ell/\partial V_{ck} = w_k^\top R_k[:,c]$
#    and $\partial\ell/\partial w_k = R_kV_{:,k}$, and compare $\|\nabla\ell\|$ with
#    $\|R\|_F$.
#
# :::{dropdown} Solution
# `ch.residual_columns` returns $R$ as an $(m, d, C)$ array; both identities hold to rounding
# error, and at the end of training the gradient is much smaller than the residual term.
# :::

# %% tags=["hide-input"]
fin = run.checkpoints[-1].model
X64, W, V = data.X.double(), fin.W.detach(), fin.V.detach()
R = ch.residual_columns(X64, data.y, W, V)  # (m, d, C)
f, theta = hl.flat_loss(fin, X64, data.y, "ce")
g = torch.func.grad(f)(theta)
gW, gV = g[:Pw].view_as(W), g[Pw:].view_as(V)
err = max(
    float((torch.einsum("kd,kdc->ck", W, R) - gV).abs().max()),
    float((torch.einsum("kdc,ck->kd", R, V) - gW).abs().max()),
)
print(f"identity error {err:.1e}; |grad| = {g.norm():.3e}, |R|_F = {R.norm():.3f}")
assert err < 1e-12
