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
# {doc}`Chapter 01 <01_observations>` looked at the Hessian at random initialisation. A network
# is not left there: it is trained, and the Hessian moves with the weights. The talk behind
# {cite}`dong2025hessian` reports three things about the one-hidden-layer network of the
# Gaussian setting ($N = 5000$, $d = C = 500$, $m = 8$, random labels) trained with full-batch
# Adam {cite}`kingma2015adam`:
#
# 1. at initialisation the cross block $H_{wv}$ between the two layers has a
#    *block-circulant* look — a bright stripe in every block;
# 2. that part fades as training goes on;
# 3. the near-block-diagonal pattern of $H_{ww}$ and $H_{vv}$ survives training.
#
# The explanation offered is a "dynamic force": the bright stripe is a term proportional to the
# residuals $\delta_{y_n c} - p_{n,c}$, training drives the residuals to zero, so
# "$H_{wv}\approx O(\text{optimality gap})$". Residuals can only go to zero where the network
# can fit its labels, and with random labels and $m = 8$ neurons for $N = 5000$ samples it
# cannot. So this chapter trains the same network twice, with the same optimiser:
#
# * the **random-label run**, the talk's setting, where the loss stays far from zero;
# * the **interpolating run**, the same network, initial weights and label law on the first
#   $N\le d$ samples only ({glue:text}`ch03_fit_N` at this profile, against $d =$
#   {glue:text}`ch03_d`): with no more samples than input dimensions the inputs are linearly
#   independent, the first layer can send them anywhere, the random labels become learnable,
#   and the loss goes to nearly zero. Of the two ways to make labels learnable that keep the
#   network, this one changes a single number, $N$, and keeps the talk's label law, uniform on
#   all $C$ classes; exercise 2 tries the other, labels from a teacher network.
#
# Along both it computes the exact Hessian, splits $H_{wv}$ into the residual term and the rest,
# and asks whether the residual term fades with the loss, how $H_{wv}$ compares with the
# diagonal blocks, and whether the picture becomes block-diagonal. The chapter ends with the
# talk's deeper network (four layers). Symbols are collected in {doc}`../book/notation`.

# %% [markdown]
# ## What you will be able to do after this chapter
#
# * split $H_{wv}$ into the residual term and the rest and follow both along Adam training;
# * tell apart a run that cannot fit its labels (the talk's random-label setting) from one that
#   interpolates, and say which one makes the residual term fade;
# * relate the residual term to the loss (the optimality gap) rather than to the gradient norm;
# * read block ratios and layer-block masses of a trained 4-layer ReLU network.
#
# Symbols and block names are collected on {doc}`the notation page <../book/notation>`.

# %% tags=["parameters"]
profile = "default"
seed = 0
steps = None  # Adam steps of both runs
lr = None  # peak learning rate (cosine schedule)
num_seeds = None  # independent draws behind the spreads

# %%
import math

import hesslib as hl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from hesslib.chapters import dynamic_force as ch
from IPython.display import HTML, Markdown, display
from myst_nb import glue
from tqdm.auto import tqdm

FRAMES = (
    0.0,
    0.005,
    0.05,
    0.25,
    0.5,
    1.0,
)  # snapshots, as fractions of the run
SHOWN = (0.0, 0.005, 0.05, 0.25, 1.0)  # the ones drawn side by side
PROFILES = {
    "quick": {
        "N": 300,
        "d": 30,
        "C": 30,
        "m": 6,
        "fit_N": 20,
        "steps": 200,
        "lr": 0.03,
        "num_seeds": 3,
        "extra_log": 8,
        "hess_dtype": "float64",
        "deep_N": 60,
        "deep_width": 10,
        "deep_steps": 200,
        "deep_lr": 3e-3,
        "ex_steps": 100,
    },
    "default": {
        "N": 5000,
        "d": 500,
        "C": 500,
        "m": 8,
        "fit_N": 500,
        "steps": 1000,
        "lr": 0.03,
        "num_seeds": 3,
        "extra_log": 12,
        "hess_dtype": "float32",
        "deep_N": 500,
        "deep_width": 50,
        "deep_steps": 1000,
        "deep_lr": 1e-3,
        "ex_steps": 400,
    },
    "paper": {
        "N": 5000,
        "d": 500,
        "C": 500,
        "m": 8,
        "fit_N": 500,
        "steps": 20000,
        "lr": 0.03,
        "num_seeds": 5,
        "extra_log": 16,
        "hess_dtype": "float32",
        "deep_N": 500,
        "deep_width": 50,
        "deep_steps": 10000,
        "deep_lr": 1e-3,
        "ex_steps": 5000,
    },
}
cfg = hl.resolve_profile(
    profile, PROFILES, steps=steps, lr=lr, num_seeds=num_seeds
)
device = hl.default_device()
hess_dtype = getattr(torch, cfg.hess_dtype)
if (
    device.type == "cpu"
):  # on a shared 2-core CPU a second thread costs more than it gains
    torch.set_num_threads(1)
print("device:", hl.device_name(device))

# %% [markdown]
# ## Two training runs
#
# The data are $N$ Gaussian inputs with labels drawn uniformly from $C$ classes, independent of
# the inputs; the network is $f(x) = V\sigma(Wx)$ with LeCun initialisation. Both runs start
# from the same weights and train on the cross-entropy loss with full-batch Adam and a cosine
# learning-rate schedule, for the same number of steps. `ch.track_run` trains with
# `hl.train_adam` (a hand-written forward and backward pass on one CPU thread; the test suite
# checks that its iterates equal those of `torch.optim.Adam` with autograd) and, at six
# checkpoints — 0, 0.5, 5, 25, 50 and 100 % of the run — computes the exact Hessian with the
# closed-form blocks of {doc}`chapter 04 <04_static_force>` (`hl.closed_form_blocks`), keeps a
# max-pooled picture of $|H|$ and the numbers we need, and frees the matrix. At
# {glue:text}`ch03_extra_log` more steps, spaced logarithmically, it records only the loss, the
# gradient norm and the norm of the residual term defined below, which need no Hessian.

# %%
data = hl.gaussian_data(cfg.N, cfg.d, cfg.C, seed=seed, device=device)
net = hl.one_hidden_net(cfg.d, cfg.m, cfg.C, seed=seed + 1, device=device)
X_fit, y_fit = (
    data.X[: cfg.fit_N],
    data.y[: cfg.fit_N],
)  # the interpolating run's data
track = dict(
    steps=cfg.steps,
    lr=cfg.lr,
    frames=FRAMES,
    extra_log=cfg.extra_log,
    dtype=hess_dtype,
)
rnd = ch.track_run(net, data.X, data.y, desc="random labels", **track)
fit = ch.track_run(net, X_fit, y_fit, desc=f"N = {cfg.fit_N}", **track)
for name, run in (("random labels", rnd), (f"N = {cfg.fit_N}", fit)):
    print(f"{name}: loss {run.losses[0]:.3f} -> {run.losses[-1]:.4f}")
assert rnd.losses[-1] > 0.5 * math.log(cfg.C)  # far from zero: no fit
assert (
    fit.losses[-1] < 0.05 * fit.losses[0]
)  # close to zero: an (almost) perfect fit

# %% tags=["remove-cell"]
glue("ch03_extra_log", cfg.extra_log, display=False)
glue("ch03_steps", cfg.steps, display=False)
glue("ch03_fit_N", cfg.fit_N, display=False)
glue("ch03_N", cfg.N, display=False)
glue("ch03_d", cfg.d, display=False)
glue("ch03_loss_init", float(rnd.losses[0]), display=False)
glue("ch03_loss_final", float(rnd.losses[-1]), display=False)
glue("ch03_lnC", math.log(cfg.C), display=False)
glue("ch03_fit_loss_init", float(fit.losses[0]), display=False)
glue("ch03_fit_loss_final", float(fit.losses[-1]), display=False)
half = cfg.steps // 2
for tag, run in (("", rnd), ("fit_", fit)):
    change = (
        1 - run.losses[-1] / run.losses[half]
    )  # fall over the second half
    glue(f"ch03_{tag}plateau_change", float(change), display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Training loss of full-batch Adam (cosine schedule) from the same initial weights: random labels on all $N$ samples (blue) and on the first $N\\le d$ samples (orange), which the network can fit. Dots mark the checkpoints where the exact Hessian is computed; the dashed line is chance level $\\ln C$.", "name": "fig-03-loss"}}
fig, ax = plt.subplots(figsize=(6, 3.4))
t = np.arange(cfg.steps + 1)
for run, label in (
    (rnd, f"random labels, N = {cfg.N}"),
    (fit, f"N = {cfg.fit_N}"),
):
    line = ax.plot(t + 1, run.losses, lw=1.2, label=label)[0]
    tab = run.table
    ax.plot(
        tab["step"] + 1, tab["loss"], "o", ms=4, color=line.get_color()
    )
ax.axhline(math.log(cfg.C), ls="--", color="gray", lw=0.8)
ax.set(
    xscale="log",
    yscale="log",
    xlabel="step + 1",
    ylabel="training loss (CE)",
)
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The random-label run starts at {glue:text}`ch03_loss_init:.3f` — about
# $\ln C =$ {glue:text}`ch03_lnC:.3f`, chance level — and ends at
# {glue:text}`ch03_loss_final:.3f`, levelled off: over the second half of the run the loss
# falls by only {glue:text}`ch03_plateau_change:.1%`. The run on $N =$ {glue:text}`ch03_fit_N`
# samples goes from {glue:text}`ch03_fit_loss_init:.3f` to
# {glue:text}`ch03_fit_loss_final:.4f` ({numref}`fig-03-loss`).
#
# How fast is the training? On a shared machine one timing mostly measures the neighbours, so
# `ch.adam_speed` times `hl.train_adam` against the textbook loop (`model(X)`, `backward()`,
# `torch.optim.Adam`, same float32 precision) with `hl.core.timing.compare_timings`: the same
# single thread for both, a warm-up call, five repeats interleaved, the median kept.

# %%
speed_steps = 20 if cfg.profile != "quick" else 10
speed = ch.adam_speed(net, data.X, data.y, steps=speed_steps)
fast, slow = (
    speed_steps / speed[k].median for k in ("train_adam", "textbook")
)
print(f"train_adam {fast:.0f} steps/s, textbook {slow:.0f} steps/s")
print(f"({speed['train_adam'].label})")

# %% tags=["remove-cell"]
glue("ch03_steps_per_s", fast, display=False)
glue("ch03_textbook_steps_per_s", slow, display=False)
glue(
    "ch03_speed_label", Markdown(speed["train_adam"].label), display=False
)
paper = PROFILES["paper"]
glue("ch03_paper_steps", paper["steps"], display=False)
glue("ch03_paper_ex_steps", paper["ex_steps"], display=False)
glue("ch03_paper_seeds", paper["num_seeds"], display=False)
paper_steps = (
    2 * paper["num_seeds"] * paper["steps"] + 2 * paper["ex_steps"]
)
glue("ch03_paper_train_min", paper_steps / fast / 60, display=False)

# %% [markdown]
# Here the helper runs {glue:text}`ch03_steps_per_s:.0f` steps per second against
# {glue:text}`ch03_textbook_steps_per_s:.0f` for the textbook loop
# ({glue:md}`ch03_speed_label`). At that speed the training of the `paper` profile — the
# talk's {glue:text}`ch03_paper_steps` steps for both runs and each of
# {glue:text}`ch03_paper_seeds` seeds, plus 2 × {glue:text}`ch03_paper_ex_steps` in the
# exercises — would take about {glue:text}`ch03_paper_train_min:.0f` minutes on this machine
# (an estimate from the measured speed; the interpolating run has fewer samples and is
# faster). Its Hessians cost the same as in this profile, and a GPU makes both fast.
#
# ## The Hessian along training
#
# {numref}`fig-03-snapshots` shows $|H|$ at five of the checkpoints of each run, each panel
# scaled to its own maximum as in the talk.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "$|H|$ along the random-label run (top) and the interpolating run (bottom), at 0, 0.5, 5, 25 and 100 % of the steps. The white lines separate the $W$ and $V$ parameters: top-left $H_{ww}$ ($m$ neuron blocks of size $d$), bottom-right $H_{vv}$ ($C$ class blocks of size $m$), off-diagonal $H_{wv}$. Each panel saturates at 1/100 of its own maximum and is max-pooled to screen resolution.", "name": "fig-03-snapshots"}}
Pw = cfg.m * cfg.d  # where V starts
shown = hl.train.checkpoint_steps(cfg.steps, SHOWN)
fig, axes = (
    plt.subplots(  # ten pooled images: a low dpi keeps the page light
        2, len(shown), figsize=(2.6 * len(shown), 6.0), dpi=60
    )
)
for row, (run, name) in zip(
    axes, ((rnd, "random"), (fit, f"N = {cfg.fit_N}"))
):
    for ax, s in zip(row, [s for s in run.snapshots if s.step in shown]):
        title = (
            f"{name}, {100 * s.step / cfg.steps:g} %\nloss {s.loss:.3g}"
        )
        hl.plot.snapshot(s, ax=ax, boundary=Pw, title=title)
plt.tight_layout()
plt.show()

# %% [markdown]
# The animations below play all {glue:text}`ch03_num_frames` checkpoints of each run (each
# frame scaled to its own maximum, as in the talk's video). In the random-label run the bright,
# uniform-looking $H_{wv}$ of initialisation gives way to a dim, speckled one, while $H_{vv}$ —
# dark at initialisation, where $p_{n,c}(1-p_{n,c}) \approx 1/C$ is tiny — lights up along its
# diagonal. In the interpolating run $H_{vv}$ takes over the picture and the hidden layer
# fades.

# %% tags=["hide-input"]
gifs = [
    hl.plot.snapshot_gif(
        r.snapshots, boundary=Pw, total_steps=cfg.steps, size=3.6, dpi=80
    )
    for r in (rnd, fit)
]
imgs = [
    hl.plot.gif_html(g, alt=f"|H| along the {name} run", width=340).data
    for g, name in zip(gifs, ("random-label", "interpolating"))
]
display(
    HTML(
        "<div "
        f'style="display:flex;flex-wrap:wrap;gap:8px">'
        f"{''.join(imgs)}</div>"
    )
)

# %% tags=["remove-cell"]
glue("ch03_num_frames", len(rnd.snapshots), display=False)
glue("ch03_gif_kb", sum(len(g) for g in gifs) / 1024, display=False)

# %% [markdown]
# (Left: random labels; right: $N =$ {glue:text}`ch03_fit_N`. The animations are inline GIFs
# of {glue:text}`ch03_gif_kb:.0f` kB together, so the page plays them offline.)
#
# ## The mechanism: a residual term in $H_{wv}$
#
# Write $g_n = p_n - e_{y_n}$ for the gradient of the CE loss with respect to the logits,
# $D_{nk} = \mathbb 1[w_k^\top x_n > 0]$, $a_n = \sigma(Wx_n)$ and
# $S_n = \operatorname{diag}(p_n) - p_np_n^\top$. Differentiating
# $\partial\ell/\partial v_c = \frac1N\sum_n g_{nc}\,a_n$ with respect to $w_k$ gives two terms:
#
# $$
# H_{w_k v_c} \;=\; \underbrace{\frac1N\sum_n g_{nc} D_{nk}\, x_n\, e_k^\top}_{\text{residual term}}
# \;+\; \underbrace{\frac1N\sum_n (V^\top S_n)_{kc}\, D_{nk}\, x_n a_n^\top}_{\text{rest}}
# \;\in\mathbb R^{d\times m},
# $$
#
# with $(V^\top S_n)_{kc} = p_{nc}\,(V_{ck} - p_n^\top V_{:,k})$. The first comes from
# $\partial a_{nk}/\partial w_k$ and touches only column $k$ of the block (the computation graph
# links $w_k$ to $v_c$ only through the $k$-th entry of $v_c$); it is proportional to the
# residuals $g_{nc} = p_{nc} - \delta_{y_n c}$. The second comes from the curvature of the
# softmax and carries a factor $p_{nc}\approx 1/C$ at initialisation. So at initialisation
# $H_{wv}$ is close to *one column per block*, the same column $k$ in every block of the $k$-th
# row of blocks — the stripes of the talk. `hl.hwv_decomposition` returns the two terms;
# `ch.hessian_snapshot` records their Frobenius norms and the share of $\|H_{wv}\|_F^2$
# sitting in the "own" columns.

# %%
for name, s in (
    ("start", rnd.snapshots[0]),
    ("end, random", rnd.snapshots[-1]),
    (f"end, N = {cfg.fit_N}", fit.snapshots[-1]),
):
    M = (
        s.column_norms / s.column_norms.max()
    )  # (m, m): ‖column j of the blocks (k, ·)‖
    print(
        f"{name}: own-column share {s.hwv.own_column_fraction:.3f}; "
        f"column "
        "norms / max:"
    )
    print(
        np.array2string(
            M.numpy()[:8, :8], precision=2, suppress_small=True
        )
    )
assert rnd.snapshots[0].hwv.own_column_fraction > 0.9

# %% [markdown]
# At initialisation {glue:text}`ch03_own_init:.1%` of $\|H_{wv}\|_F^2$ lies in the own columns —
# the column-norm map is diagonal — and the residual term has norm
# {glue:text}`ch03_res_init:.3f` against {glue:text}`ch03_rest_init:.3f` for the rest. At the
# end of the random-label run the own columns hold only {glue:text}`ch03_own_final:.1%`: the
# stripes are gone. At the end of the interpolating run they still hold
# {glue:text}`ch03_fit_own_final:.1%` of a much smaller $H_{wv}$. {numref}`fig-03-zoom` shows
# the stripes at full resolution.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "$|H_{wv}|$ at full resolution on the first 24 input coordinates of each neuron (rows, one band per neuron $k$) and the first 6 classes (columns, $m$ columns per class block): at initialisation, and at the end of the two runs. Each panel has its own colour scale. At initialisation each band lights up column $k$ of every class block: the residual term.", "name": "fig-03-zoom"}}
fig, axes = plt.subplots(1, 3, figsize=(10.5, 4.2))
zooms = (
    (rnd.snapshots[0], "initialisation"),
    (rnd.snapshots[-1], "end, random labels"),
    (fit.snapshots[-1], f"end, N = {cfg.fit_N}"),
)
for ax, (s, name) in zip(axes, zooms):
    ax.imshow(
        s.hwv_zoom, cmap="viridis", aspect="auto", interpolation="nearest"
    )
    ax.set(title=name, xlabel="class blocks $v_c$ ($m$ columns each)")
axes[0].set_ylabel("neuron bands $w_k$")
plt.tight_layout()
plt.show()

# %% tags=["remove-cell"]
first, last = rnd.snapshots[0], rnd.snapshots[-1]
glue("ch03_own_init", first.hwv.own_column_fraction, display=False)
glue("ch03_own_final", last.hwv.own_column_fraction, display=False)
glue("ch03_res_init", first.hwv.residual, display=False)
glue("ch03_rest_init", first.hwv.rest, display=False)
glue("ch03_res_final", last.hwv.residual, display=False)
glue("ch03_rest_final", last.hwv.rest, display=False)
glue("ch03_hwv_init", first.hwv.total, display=False)
glue("ch03_hwv_final", last.hwv.total, display=False)
glue(
    "ch03_fit_own_final",
    fit.snapshots[-1].hwv.own_column_fraction,
    display=False,
)

# %% [markdown]
# ## Does the residual term fade with the gap?
#
# The talk's claim is about the *optimality gap*. For the cross-entropy the residuals
# $g_n = p_n - e_{y_n}$ vanish exactly when the loss does, so the gap that matters for the
# residual term is the loss itself, its distance to the value 0 of a perfect fit; in the
# interpolating run that is also the distance to the optimum. A second measure of the gap is
# stationarity, the gradient norm. {numref}`fig-03-residual-gap` puts the norm of the residual
# term against both, at every recorded step of the two runs.

# %% tags=["remove-cell"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
styles = (
    (rnd, f"random labels, N = {cfg.N}", "tab:blue"),
    (fit, f"random labels, N = {cfg.fit_N} (fits)", "tab:orange"),
)
for run, label, color in styles:
    tr = run.trace
    for ax, x in zip(axes, (tr["loss"], tr["grad_norm"])):
        ax.plot(
            x, tr["residual"], "o-", ms=3.5, lw=1, color=color, label=label
        )
        ax.plot(x[0], tr["residual"][0], "k*", ms=9)  # initialisation
late = (
    fit.trace["loss"] < 0.5
)  # the interpolating run once the loss is below 0.5
fit_slope = np.polyfit(
    np.log(fit.trace["loss"][late]), np.log(fit.trace["residual"][late]), 1
)
xs = np.geomspace(fit.trace["loss"][late].min(), 0.5, 20)
axes[0].plot(
    xs,
    np.exp(np.polyval(fit_slope, np.log(xs))),
    "k:",
    label=f"fit: residual term ∝ loss^{fit_slope[0]:.2f}",
)
axes[0].set(
    xscale="log",
    yscale="log",
    xlabel="training loss = gap to a perfect fit",
    ylabel="‖residual term of $H_{wv}$‖$_F$",
)
axes[1].set(xscale="log", xlabel="gradient norm ‖∇ℓ‖")
axes[0].legend(fontsize=7)
plt.tight_layout()
glue("ch03_fig_residual_gap", fig, display=False)
plt.close(fig)
glue("ch03_fit_slope", float(fit_slope[0]), display=False)

# %% [markdown]
# ```{glue:figure} ch03_fig_residual_gap
# :name: fig-03-residual-gap
#
# Norm of the residual term of $H_{wv}$ along the two runs (star: initialisation), against the
# training loss, i.e. the gap to a perfect fit (left), and against the gradient norm (right),
# log-log. With random labels on all $N$ samples (blue) the loss stops far from zero and the
# residual term barely moves, although the gradient shrinks. On $N\le d$ samples (orange) the
# network fits the labels and the residual term falls with the loss; dotted: a power-law fit
# over the points with loss below 0.5.
# ```
#
# In the interpolating run the residual term falls from {glue:text}`ch03_fit_res_init:.3f` to
# {glue:text}`ch03_fit_res_final:.3f` — to {glue:text}`ch03_fit_res_ratio:.1%` of its start —
# while the loss falls to {glue:text}`ch03_fit_loss_final:.4f`; once the loss is below 0.5 the
# two fall together like a power law, the residual term as the loss to the power
# {glue:text}`ch03_fit_slope:.2f`. In the random-label run the residual term goes from
# {glue:text}`ch03_res_init:.3f` to {glue:text}`ch03_res_final:.3f`, a drop of only
# {glue:text}`ch03_res_drop:.1%`, at a loss of {glue:text}`ch03_loss_final:.3f`: the
# geometric-mean probability of the true class is only {glue:text}`ch03_py_final:.3f`, so the
# residuals are still of order one. The gradient tells a different story: it is
# {glue:text}`ch03_grad_ratio:.2f` times its initial norm at the end of the random-label run,
# yet the residual term is not. **Measured by the loss, the talk's claim holds: the residual term
# is of the order of the gap and fades where the gap closes. Measured by stationarity, it does
# not: a network that cannot fit its labels stops with a small gradient and an intact residual
# term.**

# %% tags=["remove-cell"]
f0, f1 = fit.snapshots[0], fit.snapshots[-1]
glue("ch03_fit_res_init", f0.hwv.residual, display=False)
glue("ch03_fit_res_final", f1.hwv.residual, display=False)
glue(
    "ch03_fit_res_ratio", f1.hwv.residual / f0.hwv.residual, display=False
)
glue(
    "ch03_res_drop",
    1 - last.hwv.residual / first.hwv.residual,
    display=False,
)
glue("ch03_py_final", math.exp(-last.loss), display=False)
glue("ch03_grad_ratio", last.grad_norm / first.grad_norm, display=False)
assert (
    f1.hwv.residual < 0.25 * f0.hwv.residual
)  # fades with the loss where it can fit
assert (
    last.hwv.residual > 0.7 * first.hwv.residual
    and last.grad_norm < first.grad_norm
)

# %% [markdown]
# Why can the residual term survive at a point where the gradient is small? Because the
# gradient only sees *projections* of it. With $R_k = \frac1N X^\top \operatorname{diag}(D_{:k})
# G\in\mathbb R^{d\times C}$ (its columns are the residual columns of the blocks $H_{w_kv_c}$,
# and $G$ stacks the $g_n$),
#
# $$
# \frac{\partial \ell}{\partial V_{ck}} = w_k^\top R_k[:, c], \qquad
# \frac{\partial \ell}{\partial w_k} = R_k\, V_{:,k},
# $$
#
# so a stationary point only asks $R_k$ to be orthogonal to $w_k$ and to annihilate $V_{:,k}$ —
# $d + C$ conditions on $dC$ numbers. $R_k$ vanishes only when the residuals do, that is when
# the network fits the labels; exercise 3 checks these identities.
#
# ## What happens to $H_{wv}$ as a whole
#
# The residual term is only one of the two parts of $H_{wv}$, and the picture of the talk is
# about $H_{wv}$ against the rest of the Hessian. {numref}`fig-03-norms` follows the norms of
# the three blocks and of the two parts of $H_{wv}$ along both runs.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Along the random-label run (solid) and the interpolating run (dashed), against the step: left, the residual term and the rest of $H_{wv}$; middle, $\\|H_{wv}\\|_F$, $\\|H_{ww}\\|_F$ and $\\|H_{vv}\\|_F$; right, the share $\\|H_{wv}\\|_F/\\|H\\|_F$ of the cross block in the whole Hessian and the share of $\\|H_{wv}\\|_F^2$ in the own columns (log-log and log-linear axes).", "name": "fig-03-norms"}}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.7))
panels = (
    (0, "residual", "residual term"),
    (0, "rest", "rest"),
    (1, "hwv", "$H_{wv}$"),
    (1, "norm_ww", "$H_{ww}$"),
    (1, "norm_vv", "$H_{vv}$"),
    (2, "hwv_share", "$H_{wv}$ share of $H$"),
    (2, "own_column", "own-column share"),
)
colors = dict(
    zip(
        [key for _, key, _ in panels],
        plt.rcParams["axes.prop_cycle"].by_key()["color"],
    )
)
for run, ls in ((rnd, "-"), (fit, "--")):
    tab = run.table
    for i, key, label in panels:
        axes[i].plot(
            tab["step"] + 1,
            tab[key],
            ls,
            marker="o",
            ms=3,
            color=colors[key],
            label=label if run is rnd else None,
        )
for ax, ylab in zip(axes, ("Frobenius norm", "Frobenius norm", "share")):
    ax.set(xscale="log", xlabel="step + 1", ylabel=ylab)
    ax.legend(fontsize=7)
axes[0].set_yscale("log")
axes[1].set_yscale("log")
axes[2].set_ylim(0, 1.02)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## How much do these numbers move?
#
# A run like this is sensitive: two builds of an earlier version of this chapter, with the
# same seeds but on different machines, published final block ratios of $H_{ww}$ that
# differed in the second digit. So every number the conclusions below rest on is measured on
# {glue:text}`ch03_num_seeds` independent draws — data, initial weights and labels redrawn,
# the first draw being the runs above — and reported as the mean with its range (min–max) over
# the draws; the text concludes only from differences larger than that range. The extra draws
# keep only the first and the last checkpoint.

# %%
rows = [
    {"draw": 0, "run": k, **ch.run_summary(r)}
    for k, r in (("random", rnd), ("fit", fit))
]
for k in tqdm(range(1, cfg.num_seeds), desc="more draws"):
    s = seed + 1000 * k  # disjoint seed streams per draw
    d_k = hl.gaussian_data(cfg.N, cfg.d, cfg.C, seed=s, device=device)
    net_k = hl.one_hidden_net(
        cfg.d, cfg.m, cfg.C, seed=s + 1, device=device
    )
    for name, n in (("random", cfg.N), ("fit", cfg.fit_N)):
        r = ch.track_run(
            net_k,
            d_k.X[:n],
            d_k.y[:n],
            steps=cfg.steps,
            lr=cfg.lr,
            dtype=hess_dtype,
            progress=False,
        )
        rows.append({"draw": k, "run": name, **ch.run_summary(r)})
draws = pd.DataFrame(rows)
sp = {
    run: g.drop(columns=["draw", "run"]).agg(["mean", "min", "max"])
    for run, g in draws.groupby("run")
}  # run -> (stat x quantity) table
assert (
    sp["fit"].loc["max", "residual_ratio"]
    < 0.5 * sp["random"].loc["min", "residual_ratio"]
)

# %% tags=["hide-input"]
NAMES = {
    "loss_final": "final loss",
    "residual_ratio": "residual term, end / start",
    "rest_ratio": "rest of H_wv, end / start",
    "total_ratio": "‖H_wv‖, end / start",
    "norm_ww_ratio": "‖H_ww‖, end / start",
    "norm_vv_ratio": "‖H_vv‖, end / start",
    "share_init": "share of H_wv in H, start",
    "share_final": "share of H_wv in H, end",
    "own_final": "own-column share, end",
    "ratio_ww_final": "block ratio of H_ww, end",
    "ratio_vv_final": "block ratio of H_vv, end",
    "grad_norm_ratio": "gradient norm, end / start",
}
show = pd.DataFrame(
    {
        f"{label}: {col}": [
            f"{sp[run].loc['mean', k]:.3g}"
            if col == "mean"
            else f"[{sp[run].loc['min', k]:.3g}, "
            f"{sp[run].loc['max', k]:.3g}]"
            for k in NAMES
        ]
        for run, label in (
            ("random", f"N = {cfg.N}"),
            ("fit", f"N = {cfg.fit_N}"),
        )
        for col in ("mean", "range")
    },
    index=list(NAMES.values()),
)
show

# %% tags=["remove-cell"]
glue("ch03_num_seeds", cfg.num_seeds, display=False)
for run in ("random", "fit"):
    for key in NAMES:
        for stat in ("mean", "min", "max"):
            glue(
                f"ch03_sp_{run}_{key}_{stat}",
                float(sp[run].loc[stat, key]),
                display=False,
            )


def lo(r, k):
    return sp[r].loc["min", k]


def hi(r, k):
    return sp[r].loc["max", k]


assert (
    lo("random", "total_ratio") > 1 > hi("fit", "total_ratio")
)  # H_wv grows / shrinks
assert all(
    (draws["share_final"] < draws["share_init"]).tolist()
)  # its share falls, always
assert (
    hi("random", "own_final") < 0.5 and lo("random", "norm_vv_ratio") > 10
)
assert max(hi(r, "ratio_ww_final") for r in ("random", "fit")) < 0.5

# %% [markdown]
# Over the {glue:text}`ch03_num_seeds` draws ({numref}`fig-03-norms` shows the first; the
# table above all of them):
#
# * **The residual term fades only where the labels are fitted.** It ends at
#   {glue:text}`ch03_sp_fit_residual_ratio_mean:.3f` of its initial norm in the interpolating
#   run (range {glue:text}`ch03_sp_fit_residual_ratio_min:.3f` to
#   {glue:text}`ch03_sp_fit_residual_ratio_max:.3f`), at
#   {glue:text}`ch03_sp_random_residual_ratio_mean:.3f` with random labels on all
#   {glue:text}`ch03_N` samples (range {glue:text}`ch03_sp_random_residual_ratio_min:.3f` to
#   {glue:text}`ch03_sp_random_residual_ratio_max:.3f`).
# * **So does $H_{wv}$.** In the interpolating run the rest of $H_{wv}$, whose weights
#   $(V^\top S_n)_{kc}$ also vanish as $p_n\to e_{y_n}$, shrinks as well, and $\|H_{wv}\|_F$ ends
#   at {glue:text}`ch03_sp_fit_total_ratio_mean:.3f` of its start (range
#   {glue:text}`ch03_sp_fit_total_ratio_min:.3f` to {glue:text}`ch03_sp_fit_total_ratio_max:.3f`).
#   With random labels the rest grows by a factor
#   {glue:text}`ch03_sp_random_rest_ratio_mean:.0f` as Adam enlarges the weights, and
#   $\|H_{wv}\|_F$ grows by a factor {glue:text}`ch03_sp_random_total_ratio_mean:.2f` (range
#   {glue:text}`ch03_sp_random_total_ratio_min:.2f` to
#   {glue:text}`ch03_sp_random_total_ratio_max:.2f`).
# * **In both runs $H_{wv}$ loses its share of the Hessian.** Its share
#   $\|H_{wv}\|_F/\|H\|_F$ falls from {glue:text}`ch03_sp_random_share_init_mean:.3f` to
#   {glue:text}`ch03_sp_random_share_final_mean:.3f` with random labels (range at the end
#   {glue:text}`ch03_sp_random_share_final_min:.3f` to
#   {glue:text}`ch03_sp_random_share_final_max:.3f`) — because $H_{vv}$, tiny at
#   initialisation where $p_{nc}(1-p_{nc})\approx 1/C$, grows by a factor
#   {glue:text}`ch03_sp_random_norm_vv_ratio_mean:.0f` — and from
#   {glue:text}`ch03_sp_fit_share_init_mean:.3f` to {glue:text}`ch03_sp_fit_share_final_mean:.3f`
#   in the interpolating run (range {glue:text}`ch03_sp_fit_share_final_min:.3f` to
#   {glue:text}`ch03_sp_fit_share_final_max:.3f`). In pictures scaled to their own maximum —
#   the talk's video and {numref}`fig-03-snapshots` — both read as "$H_{wv}$ fades".
# * **The stripes.** With random labels the one-column pattern drowns in the growing rest
#   (own-column share {glue:text}`ch03_own_init:.2f` →
#   {glue:text}`ch03_sp_random_own_final_mean:.2f`, at most
#   {glue:text}`ch03_sp_random_own_final_max:.2f`): the block-circulant part vanishes from the
#   picture while its norm stays. In the interpolating run both parts shrink — the rest, tiny
#   at initialisation, by less — and what is left of $H_{wv}$ is still mostly stripes (own-column
#   share {glue:text}`ch03_sp_fit_own_final_mean:.2f` at the end, range
#   {glue:text}`ch03_sp_fit_own_final_min:.2f` to {glue:text}`ch03_sp_fit_own_final_max:.2f`), in
#   a block that has almost vanished.
#
# **What this says about the talk's claim.** The dynamic force acts as the talk describes it —
# residuals to zero, $H_{wv}\approx O(\text{gap})$ with the gap measured by the loss — when the
# network can fit its labels ({numref}`fig-03-residual-gap`): then the whole cross block fades
# with the loss. In the talk's own setting, random labels that eight neurons cannot fit, it
# cannot act: the residual term stays and $H_{wv}$ grows; the cross block fades only relative
# to the output block, which training makes a hundred times larger. Both runs end with a
# Hessian in which $H_{wv}$ weighs less than at initialisation, which is what the talk's
# pictures show.
#
# The other half of the talk's claim holds in both runs: the near-block-diagonal pattern of the
# two diagonal blocks survives training.

# %%
for name, run in (("random", rnd), (f"N = {cfg.fit_N}", fit)):
    s0, s1 = run.snapshots[0], run.snapshots[-1]
    print(
        f"{name:>9}: ratio H_ww {s0.ratio_ww:.4f} -> {s1.ratio_ww:.4f}, "
        f"H_vv {s0.ratio_vv:.4f} -> {s1.ratio_vv:.4f}"
    )
tab = rnd.table
assert tab["ratio_ww"].max() < 0.5 and tab["ratio_vv"].max() < 0.5

# %% tags=["remove-cell"]
glue("ch03_ratio_ww_init", first.ratio_ww, display=False)
glue("ch03_ratio_ww_final", last.ratio_ww, display=False)
glue("ch03_ratio_vv_init", first.ratio_vv, display=False)
glue("ch03_ratio_vv_final", last.ratio_vv, display=False)
glue("ch03_ratio_ww_max", float(tab["ratio_ww"].max()), display=False)
glue("ch03_share_init", first.hwv_share, display=False)
glue("ch03_share_final", last.hwv_share, display=False)
glue("ch03_norm_vv_growth", last.norm_vv / first.norm_vv, display=False)
glue("ch03_norm_ww_growth", last.norm_ww / first.norm_ww, display=False)
glue("ch03_hwv_growth", last.hwv.total / first.hwv.total, display=False)

# %% [markdown]
# The RMS off/diagonal block ratio (the statistic of {doc}`chapter 01 <01_observations>`) of the
# neuron blocks of $H_{ww}$ is {glue:text}`ch03_ratio_ww_init:.3f` at initialisation and
# {glue:text}`ch03_sp_random_ratio_ww_final_mean:.4f` at the end of the random-label run (range
# over draws {glue:text}`ch03_sp_random_ratio_ww_final_min:.4f` to
# {glue:text}`ch03_sp_random_ratio_ww_final_max:.4f`); for the class blocks of $H_{vv}$ it goes
# from {glue:text}`ch03_ratio_vv_init:.4f` to {glue:text}`ch03_sp_random_ratio_vv_final_mean:.4f`.
# In the interpolating run both ratios grow, to {glue:text}`ch03_sp_fit_ratio_ww_final_mean:.3f`
# and {glue:text}`ch03_sp_fit_ratio_vv_final_mean:.3f` (maxima over draws
# {glue:text}`ch03_sp_fit_ratio_ww_final_max:.3f` and
# {glue:text}`ch03_sp_fit_ratio_vv_final_max:.3f`), while the hidden layer loses almost all its
# weight ($\|H_{ww}\|_F$ ends at {glue:text}`ch03_sp_fit_norm_ww_ratio_mean:.3f` of its start).
# All stay well below 1: training does not undo the static structure that
# {doc}`chapter 04 <04_static_force>` explains.

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
# A ReLU network is piecewise linear in each weight matrix separately — its second derivative
# in one matrix is zero almost everywhere, with or without biases — so the residual part has
# no layer-diagonal blocks: it lives entirely between layers, and between adjacent layers it has
# the same one-column shape as the residual term of $H_{wv}$ above. Like the interpolating run
# above and unlike the talk's one-hidden-layer setting, this network has
# $P = 10\,000$ parameters for $N = 500$ samples and *can* memorise the random labels, so here
# the residuals do go to zero. We look at initialisation, 10 % and 100 % of the run.

# %%
dd, T = cfg.deep_width, cfg.deep_steps
deep_data = hl.gaussian_data(
    cfg.deep_N, dd, dd, seed=seed + 2, device=device
)
deep = hl.nets.deep_net(dd, dd, dd, depth=4, seed=seed + 3, device=device)
deep_adam = dict(steps=T, lr=cfg.deep_lr, checkpoints=[0, T // 10, T])
deep_run = hl.train_adam(
    deep, deep_data.X, deep_data.y, desc="Adam, 4-layer net", **deep_adam
)

# %%
deep_snaps = []
for c in tqdm(deep_run.checkpoints, desc="Hessians"):
    s = ch.deep_snapshot(
        c.model, deep_data.X.double(), deep_data.y, step=c.step
    )
    deep_snaps.append(s)
    print(
        f"step {s.step:>5}: loss {s.loss:.2e}, residual part "
        f"{s.residual_share:.3f} of |H|_F,\n{'':12}layer-diagonal mass "
        f"{s.layer_diag_mass:.3f}, ratios {np.round(s.neuron_ratios, 3)}"
    )
assert deep_snaps[-1].residual_share < 0.5 * deep_snaps[0].residual_share

# %% tags=["hide-input"] mystnb={"figure": {"caption": "$|H|$ of the 4-layer ReLU network at initialisation, at 10 % and at the end of training. White lines separate the four layers $W_1,\\dots,W_4$; the per-neuron blocks (one per row of each $W_l$, 50 per layer) lie along the diagonal. Max-pooled to 400 pixels and clipped at 1/10 of each panel's maximum (at 1/100 nearly every pooled pixel saturates).", "name": "fig-03-deep"}}
fig, axes = plt.subplots(
    1, len(deep_snaps), figsize=(3.4 * len(deep_snaps), 3.6), dpi=72
)
for ax, s in zip(axes, deep_snaps):
    title = f"step {s.step} ({100 * s.step / T:g} %), loss {s.loss:.2g}"
    hl.plot.deep_snapshot(s, ax=ax, clip=1 / 10, title=title)
plt.tight_layout()
plt.show()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Frobenius norms of the $4\\times4$ layer blocks $\\|H_{W_lW_k}\\|_F$ of the 4-layer network (log scale), at initialisation (left) and at the end of training (right).", "name": "fig-03-deep-layers"}}
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
for ax, s in zip(axes, (deep_snaps[0], deep_snaps[-1])):
    names = ["W1", "W2", "W3", "W4"]
    hl.plot.block_norm_map(
        s.layer_norms,
        ax=ax,
        log=True,
        labels=names,
        title=f"step {s.step}",
    )
plt.tight_layout()
plt.show()

# %% tags=["remove-cell"]
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
# {glue:text}`ch03_deep_layer_mass_final:.0%`. As in the interpolating run, the network fits
# its labels, the dynamic force acts in full, and it is what makes the per-neuron blocks
# visible. Within a layer the neuron blocks are clearly
# separated (RMS off/diagonal ratio {glue:text}`ch03_deep_ratio_w1_final:.3f` in the first
# layer, {glue:text}`ch03_deep_ratio_w4_final:.3f` among the class blocks of the last), but the
# Gauss–Newton part still couples the layers ({numref}`fig-03-deep-layers`): with only $C = 50$
# classes the static force of {doc}`chapter 04 <04_static_force>` is weak here.
#
# :::{admonition} The paper says / this chapter finds
# :class: tip
# - **The talk:** at initialisation $H_{wv}$ has a block-circulant stripe, a term proportional
#   to the residuals. **Here:** confirmed ({numref}`fig-03-snapshots`, {numref}`fig-03-zoom`);
#   the own columns hold {glue:text}`ch03_own_init:.1%` of $\|H_{wv}\|_F^2$ at the start.
# - **The talk:** training makes the stripe fade, $H_{wv}\approx O(\text{optimality gap})$.
#   **Here: not in the talk's own setting.** With random labels on all {glue:text}`ch03_N`
#   samples the loss stays at {glue:text}`ch03_loss_final:.3f` and the residual term drops by only
#   {glue:text}`ch03_res_drop:.1%`, although the gradient ends at
#   {glue:text}`ch03_grad_ratio:.2f` of its initial norm. Only the interpolating run drives it
#   down, to {glue:text}`ch03_fit_res_ratio:.1%` of its start ({numref}`fig-03-loss`,
#   {numref}`fig-03-residual-gap`). The claim holds measured by the loss, not by stationarity.
# - **Why the talk's pictures still look right:** $H_{wv}$ loses its *share* of the Hessian in
#   both runs ({glue:text}`ch03_sp_random_share_init_mean:.3f` →
#   {glue:text}`ch03_sp_random_share_final_mean:.3f` with random labels), because $H_{vv}$ grows
#   while $\|H_{wv}\|_F$ itself grows too ({numref}`fig-03-norms`).
# - **The talk:** the block structure of $H_{ww}$ and $H_{vv}$ survives training. **Here:** yes;
#   the ratios stay well below 1 (neuron blocks {glue:text}`ch03_sp_random_ratio_ww_final_mean:.4f`
#   with random labels, {glue:text}`ch03_sp_fit_ratio_ww_final_mean:.3f` when interpolating).
# - **The deeper network:** the residual part falls from {glue:text}`ch03_deep_res_init:.0%` to
#   {glue:text}`ch03_deep_res_final:.1%` of $\|H\|_F$, but with $C = 50$ the layers stay
#   coupled ({numref}`fig-03-deep`, {numref}`fig-03-deep-layers`).
# :::
#
# ## Exercises
#
# 1. **MSE.** For the MSE loss the curvature of the loss in the logits is the identity, so the
#    "rest" of $H_{w_kv_c}$ becomes $V_{ck}\,\frac1N\sum_n D_{nk}x_na_n^\top$ and the residual
#    term is proportional to $f(x_n) - e_{y_n}$. Compare the two terms at initialisation, then
#    predict what training does to them in the Gaussian setting with random labels, and check.
#
# :::{dropdown} Solution
# At LeCun initialisation the two terms are of the same size. Both are built from the products
# $D_{nk}x_n$ with a weight that is linear in $V$: the mean of the residual column
# $\frac1N\sum_n(f_{nc} - \delta_{y_nc})D_{nk}x_n$ is $A_kv_c$ with
# $A_k = \mathbb E[D_kx\,a^\top]$ (up to a label term of order $1/C$), and that of the rest is
# $V_{ck}A_k$. Summed over $c$, both have squared norm
# $\operatorname{tr}(A_kV^\top VA_k^\top)\approx\frac Cm\|A_k\|_F^2$ because
# $\mathbb E[V^\top V] = \frac Cm I$; their fluctuations match in the same way, since
# $\mathbb E f_{nc}^2 = \mathbb E\|a_n\|^2/m$. Training then shrinks both: the best MSE fit to
# random labels is close to the constant $1/C$ in every output, so $f$ shrinks — the residual
# term falls, but not to zero, since $1/C - e_y$ stays of order one in the true class — and
# the rest, proportional to $V$, falls as $V$ shrinks. The cell trains with MSE and prints both
# norms at the start and at the end.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
mse = ch.track_run(
    net,
    data.X,
    data.y,
    steps=cfg.ex_steps,
    lr=0.01,
    loss="mse",
    dtype=hess_dtype,
    progress=False,
)
for s in (mse.snapshots[0], mse.snapshots[-1]):
    print(
        f"MSE, step {s.step}: loss {s.loss:.3f}, residual "
        f"{s.hwv.residual:.3f}, rest {s.hwv.rest:.3f}"
    )
m0, m1 = mse.snapshots[0].hwv, mse.snapshots[-1].hwv
assert (
    abs(m0.residual / m0.rest - 1) < 0.25
)  # the same size at initialisation
assert m1.residual < m0.residual and m1.rest < m0.rest

# %% [markdown]
# 2. **Labels a teacher can give.** Another way to make labels learnable keeps all
#    {glue:text}`ch03_N` samples: take the labels of a *teacher* network of the same shape,
#    $y_n = \arg\max_c f_{\text{teacher}}(x_n)_c$ (`ch.teacher_labels`). How many of the $C$
#    classes does the teacher use? Train the same network on them; does the residual term fade,
#    and does $H_{wv}$?
#
# :::{dropdown} Solution
# An eight-neuron teacher uses only a fraction of the classes: its logits $Va$ are linear in a
# non-negative vector $a\in\mathbb R^8$, and only the rows $v_c$ that are extreme in some
# direction of the positive orthant can win the argmax. The labels are learnable, the loss
# falls far below chance and the residual term fades with it, as in the interpolating run. But
# the rest of $H_{wv}$ grows — here the network fits more slowly and its weights keep growing —
# so that $\|H_{wv}\|_F$ does not fade within this run. A fade of the residual term is not yet a
# fade of $H_{wv}$: the rest has to follow. (One draw only, unlike the spreads above.)
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
y_teacher = ch.teacher_labels(data.X, cfg.m, cfg.C, seed=seed + 7)
teach = ch.track_run(
    net,
    data.X,
    y_teacher,
    steps=cfg.steps,
    lr=cfg.lr,
    dtype=hess_dtype,
    progress=False,
)
t_sum = ch.run_summary(teach)
print(
    f"the teacher uses {int(y_teacher.unique().numel())} of {cfg.C} "
    f"classes"
)
for k in (
    "loss_init",
    "loss_final",
    "residual_ratio",
    "rest_ratio",
    "total_ratio",
):
    print(f"{k:>14}: {t_sum[k]:.3f}")
assert (
    t_sum["loss_final"] < 0.2 * t_sum["loss_init"]
    and t_sum["residual_ratio"] < 0.5
)
assert t_sum["rest_ratio"] > 1

# %% [markdown]
# 3. **The gradient sees only projections of the residual term.** Check numerically, at the
#    last checkpoint of the random-label run, that $\partial\ell/\partial V_{ck} = w_k^\top
#    R_k[:,c]$ and $\partial\ell/\partial w_k = R_kV_{:,k}$, and compare $\|\nabla\ell\|$ with
#    $\|R\|_F$.
#
# :::{dropdown} Solution
# `ch.residual_columns` returns $R$ as an $(m, d, C)$ array; both identities hold to rounding
# error, and at the end of training the gradient is much smaller than the residual term.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
fin = rnd.final  # float64 copy of the weights after the last step
X64, W, V = data.X.double(), fin.W.detach(), fin.V.detach()
R = ch.residual_columns(X64, data.y, W, V)  # (m, d, C)
f, theta = hl.flat_loss(fin, X64, data.y, "ce")
g = torch.func.grad(f)(theta)
gW, gV = g[:Pw].view_as(W), g[Pw:].view_as(V)
err = max(
    float((torch.einsum("kd,kdc->ck", W, R) - gV).abs().max()),
    float((torch.einsum("kdc,ck->kd", R, V) - gW).abs().max()),
)
print(
    f"identity error {err:.1e}; |grad| = {g.norm():.3e}, |R|_F = "
    f"{R.norm():.3f}"
)
assert err < 1e-12
