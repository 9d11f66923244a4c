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
# # 02 Intuition: what linear algebra explains
#
# {doc}`Chapter 01 <01_observations>` showed bright diagonal blocks and a dim background. Part of
# that picture needs no probability at all: it is already written in the way a matrix product
# wires the parameters together. This chapter follows the first intuition of
# {cite}`dong2025hessian` (Part II-1 of the talk) on networks small enough to differentiate by
# hand — or by `sympy` — and states the rule they teach: **a Hessian entry can only be non-zero if
# the computation graph links the two parameters.**
#
# All examples are two-layer *linear* networks $f(x) = VWx$ with $W\in\mathbb R^{m\times d}$
# (rows $w_i$), $V\in\mathbb R^{C\times m}$ (rows $v_c$), fed the unit inputs
# $x = e_1,\dots,e_d$ (so $X = I$) with targets $Y$ (zero unless said otherwise) and the summed
# squared loss
#
# $$
# \ell(W,V) = \tfrac12\lVert VW - Y\rVert_F^2 = \tfrac12\sum_{c,j} R_{cj}^2,\qquad
# R_{cj} = \sum_i v_{ci}\,w_{ij} - Y_{cj}.
# $$
#
# The residual $R_{cj}$ is a sum over the **paths** $x_j\to h_i\to f_c$ of the product of the
# two weights on the path. Differentiating twice,
#
# $$
# \frac{\partial^2\ell}{\partial a\,\partial b}
#  = \sum_{c,j}\Big(\frac{\partial R_{cj}}{\partial a}\frac{\partial R_{cj}}{\partial b}
#    + R_{cj}\,\frac{\partial^2 R_{cj}}{\partial a\,\partial b}\Big),
# $$
#
# and there are exactly three cases for a pair of parameters $a \ne b$:
#
# * **direct link** — $a$ and $b$ sit on the same path ($a = w_{ij}$, $b = v_{ci}$): they
#   multiply each other, and the second term, proportional to the residual, appears;
# * **indirect link** — they sit on different paths between the same input and output: only the
#   first term survives, a *cross term* of the square $R_{cj}^2$;
# * **no link** — they never meet in the same $R_{cj}$: the entry is identically zero.
#
# `hesslib.graphs` builds each example as a `sympy` expression, a computation graph (`networkx`)
# and a torch function, and `hesslib.symbolic` differentiates the expression exactly, so each
# claim below is checked three ways: exact symbolic Hessian,
# automatic differentiation (`hl.hessian_reference`, i.e. `torch.func.hessian`, and the batched
# Hessian-vector-product path `hl.full_hessian`), and the link pattern read off the
# graph. Parameters are ordered as everywhere in the book: rows of $W$, then rows of $V$.

# %% [markdown]
# ## What you will be able to do after this chapter
#
# * predict which Hessian entries are exactly zero from the computation graph (direct, indirect
#   and missing links) and check it with `hl.symbolic` and `torch.func.hessian`;
# * explain the block-circulant stripes of $H_{wv}$ as the residual term, and why they vanish at
#   a perfect fit;
# * compute the off/diagonal ratio of $H_{ww} = (V^\top V)\otimes I_d$ and compare it with
#   $1/\sqrt{C+2}$;
# * list what linear algebra alone leaves open (non-linearity, softmax coupling, rates in $C$).
#
# Symbols and block names are collected on {doc}`the notation page <../book/notation>`.

# %% tags=["parameters"]
profile = "default"
seed = 0
draws = None  # random V per number of classes in the white-box experiment
C_max = None  # largest number of classes in that experiment

# %%
import hesslib as hl
import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
import torch
from IPython.display import Math, display
from myst_nb import glue

PROFILES = {
    "quick": {"draws": 10, "C_max": 256},
    "default": {"draws": 200, "C_max": 4096},
    "paper": {"draws": 1000, "C_max": 16384},
}
cfg = hl.resolve_profile(profile, PROFILES, draws=draws, C_max=C_max)
device = hl.default_device()
torch.set_default_dtype(torch.float64)

# %% [markdown]
# ## Example 1: one input, one output
#
# The smallest network has one weight per layer: $f(x) = v_1 w_1 x$. With $x = 1$ and target 0,
# $\ell = \tfrac12 (w_1v_1)^2$. Its exact Hessian:

# %%
ex1 = hl.symbolic.talk_example("1")
chk1 = hl.symbolic.verify_example(ex1, seed=seed)
display(Math(r"\nabla^2\ell = " + hl.symbolic.hessian_latex(ex1, chk1.H)))
print(
    f"largest difference to autograd at a random point: {chk1.max_err:.1e}"
)
assert chk1.max_err < 1e-12 and chk1.pattern_ok

# %% [markdown]
# The off-diagonal entry $\partial^2\ell/\partial w_1\partial v_1 = 2w_1v_1$ is not zero: $w_1$
# and $v_1$ lie on the same path, so they multiply each other, and a change in one changes the
# slope of the loss along the other. The lesson of the talk is to *check the links*: the graph
# in {numref}`fig-02-siso` has a single path, so every pair is directly linked and every entry
# is non-zero.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Example 1. Left: the computation graph, each edge labelled with the weight it multiplies by. Right: $|\\nabla^2\\ell|$ at a random point (values in the cells); all four entries are non-zero because $w_1$ and $v_1$ share the only path.", "name": "fig-02-siso"}}
fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), width_ratios=[1.2, 1])
hl.plot.network(ex1, ax=axes[0])
hl.plot.pattern(ex1, chk1.H_exact, ax=axes[1])
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Example 2-1: two separate chains
#
# Now two outputs, each fed by its own chain: $\ell = \tfrac12(w_1v_1)^2 + \tfrac12(w_2v_2)^2$
# ($x = 1$, targets 0). This is not a standard network — $v_1$ only reads $h_1$ and $v_2$ only
# $h_2$ — but it isolates the effect of the wiring.

# %%
ex21 = hl.symbolic.talk_example("2-1")
chk21 = hl.symbolic.verify_example(ex21, seed=seed)
display(
    Math(r"\nabla^2\ell = " + hl.symbolic.hessian_latex(ex21, chk21.H))
)
assert chk21.max_err < 1e-12 and chk21.pattern_ok

# %% tags=["remove-cell"]
glue("ch02_zeros_ex21", chk21.num_zero, display=False)

# %% [markdown]
# {glue:text}`ch02_zeros_ex21` of the 16 entries are identically zero, and they are exactly the
# pairs on different chains: $w_1$ and $v_2$ are never multiplied together, so
# $\partial^2\ell/\partial w_1\partial v_2 = 0$ whatever the weights. Ordered as
# $(w_1, w_2 \mid v_1, v_2)$, each of the four $2\times2$ quadrants is diagonal. This is the
# simplest instance of the pattern the talk calls *block-circulant-block-diagonal*: the
# $W$–$W$ and $V$–$V$ parts are (block-)diagonal, and in the $W$–$V$ part the non-zero entry of
# each row moves one step to the right from one hidden unit to the next.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Example 2-1. Left: two separate chains. Middle: the link graph over the parameters — red edges join parameters on a common path (direct links); pairs without an edge are never multiplied together. Right: $|\\nabla^2\\ell|$ at a random point; the zeros are exactly the missing links.", "name": "fig-02-simo-chains"}}
fig, axes = plt.subplots(
    1, 3, figsize=(11, 3.2), width_ratios=[1.1, 1.1, 1]
)
hl.plot.network(ex21, ax=axes[0])
hl.plot.links(ex21, ax=axes[1])
hl.plot.pattern(ex21, chk21.H_exact, ax=axes[2])
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Example 2-2: one input, a fully connected layer
#
# Connect both hidden units to both outputs: $h = w = (w_1, w_2)$, $f_c = v_c^\top w$ with
# $v_c = (v_{c,1}, v_{c,2})$, and $\ell = \tfrac12\sum_c (v_c^\top w)^2$. Now every path
# starts at the same input, so many more pairs meet in a common residual.

# %%
ex22 = hl.symbolic.talk_example("2-2")
chk22 = hl.symbolic.verify_example(ex22, seed=seed)
display(
    Math(r"\nabla^2\ell = " + hl.symbolic.hessian_latex(ex22, chk22.H))
)
assert chk22.max_err < 1e-12 and chk22.pattern_ok

# %% tags=["remove-cell"]
glue("ch02_zeros_ex22", chk22.num_zero, display=False)

# %% [markdown]
# Three things can be read off the matrix and the graph in {numref}`fig-02-simo`:
#
# * $v_1$ and $v_2$ feed different outputs, so they never share a residual: the class blocks
#   $H_{v_1v_2}$ are exactly zero (these are the {glue:text}`ch02_zeros_ex22` zero entries) — the
#   output layer is block-diagonal for the squared loss, at any weights.
# * $w_1$ and $v_{c,1}$ are on one path (direct link, e.g. $2v_{1,1}w_1 + v_{1,2}w_2$, which
#   contains the residual $R_1 = v_{1,1}w_1 + v_{1,2}w_2$), while $w_1$ and $v_{c,2}$ are on
#   different paths into the same output (indirect link, $v_{1,1}w_2$).
# * $w_1$ and $w_2$ never multiply each other, yet
#   $\partial^2\ell/\partial w_1\partial w_2 = v_{1,1}v_{1,2} + v_{2,1}v_{2,2}$: a sum of cross
#   terms, one per output. This is the entry that the "white boxes" of the next example are
#   made of.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Example 2-2. Left: the computation graph. Middle: link graph (red: direct, dashed grey: indirect; no edge between $v_{1,\\cdot}$ and $v_{2,\\cdot}$). Right: $|\\nabla^2\\ell|$ at a random point; the only zeros are the off-diagonal class blocks.", "name": "fig-02-simo"}}
fig, axes = plt.subplots(
    1, 3, figsize=(11, 3.4), width_ratios=[1.1, 1.1, 1]
)
hl.plot.network(ex22, ax=axes[0])
hl.plot.links(ex22, ax=axes[1])
hl.plot.pattern(ex22, chk22.H_exact, ax=axes[2])
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Example 3: two inputs, two outputs
#
# With $W, V\in\mathbb R^{2\times 2}$ and $X = I$, $Y = 0$, the loss is
# $\ell = \tfrac12\lVert VW\rVert_F^2 = \tfrac12\lVert v_{1,1}w_1 + v_{1,2}w_2\rVert^2 +
# \tfrac12\lVert v_{2,1}w_1 + v_{2,2}w_2\rVert^2$ (the talk writes $\lVert VW\rVert_F^2$; we
# keep the ½ of its expansion). The first block-row, the derivatives with respect to
# $w_1 = (w_{1,1}, w_{1,2})$:

# %%
ex3 = hl.symbolic.talk_example("3")
chk3 = hl.symbolic.verify_example(ex3, seed=seed)
display(Math(hl.symbolic.hessian_latex(ex3, chk3.H, rows=range(ex3.d))))
assert chk3.max_err < 1e-12 and chk3.pattern_ok

# %% tags=["remove-cell"]
glue("ch02_zeros_ex3", chk3.num_zero, display=False)

# %% [markdown]
# In block form, for any $d$, $m$, $C$ (with $\otimes$ the Kronecker product and $R = VW - Y$):
#
# $$
# H_{ww} = (V^\top V)\otimes I_d,\qquad
# H_{vv} = I_C\otimes (WW^\top),\qquad
# \big[H_{w_iv_c}\big]_{j i'} = \delta_{ii'}R_{cj} + v_{ci}w_{i'j}.
# $$
#
# The cell below checks these formulas (`hl.two_layer_hessian`) against the exact
# Hessian of Example 3.

# %%
W3, V3 = (torch.tensor(a) for a in ex3.matrices(chk3.theta))
H3 = hl.two_layer_hessian(W3, V3)
err3 = float((H3 - chk3.H_exact).abs().max())
print(f"block formulas vs exact Hessian: {err3:.1e}")
assert err3 < 1e-12

# %% [markdown]
# Every structural feature of the pattern is in these three formulas:
#
# * $H_{vv}$ is **exactly block-diagonal**: different outputs never share a residual.
# * Each $d\times d$ block of $H_{ww}$ is a multiple of $I_d$ — different inputs never share a
#   residual either ({glue:text}`ch02_zeros_ex3` of the 64 entries are identically zero). The
#   off-diagonal neuron blocks $H_{w_1w_2} = (v_{1,1}v_{1,2} + v_{2,1}v_{2,2})\,I_d$ are the
#   **white boxes** of the talk: $w_1$ and $w_2$ are only *indirectly* linked, through the cross
#   term of each output's square. Linear algebra says they are not zero; it does not say they
#   are small.
# * In block $(w_i, v_c)$ of $H_{wv}$ the residual term $R_{cj}$ fills **only column $i$**: the
#   direct links. Going down from neuron $i$ to neuron $i+1$, the filled column moves one step
#   to the right in every class block — the *block-circulant* part of the pattern.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Example 3. Left: the computation graph. Middle: the link graph. Right: $|\\nabla^2\\ell|$ at a random point. The off-diagonal neuron blocks ($w_{1,\\cdot}$ against $w_{2,\\cdot}$) are non-zero on their diagonal: indirect links, made of cross terms.", "name": "fig-02-mimo"}}
fig, axes = plt.subplots(
    1, 3, figsize=(12, 3.6), width_ratios=[1.1, 1.1, 1.1]
)
hl.plot.network(ex3, ax=axes[0])
hl.plot.links(ex3, ax=axes[1])
hl.plot.pattern(ex3, chk3.H_exact, ax=axes[2])
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The pattern at a larger size
#
# The same rule at $d = 4$, $m = 3$, $C = 6$ (42 parameters). {numref}`fig-02-pattern` puts
# the graph's prediction next to the Hessian at one random point, twice: with targets far
# from the outputs (large residual, as at initialisation) and with targets equal to the
# outputs ($Y = VW$, a perfect fit, $R = 0$). $H_{ww}$ and $H_{vv}$ do not depend on $Y$; only
# the residual term of $H_{wv}$ does.

# %%
exL = hl.symbolic.linear_example(4, 3, 6, name="d=4, m=3, C=6")
WL, VL = (
    torch.tensor(a)
    for a in exL.matrices(
        hl.symbolic.random_point(exL, seed=seed, scale=0.7)
    )
)
Y_far = torch.full((exL.C, exL.d), -3.0)
H_far, H_fit = (
    hl.two_layer_hessian(WL, VL, Y_far),
    hl.two_layer_hessian(WL, VL, VL @ WL),
)
wv = (exL.layout.param_slice("W"), exL.layout.param_slice("V"))
res_share = float((H_far - H_fit)[wv].norm() / H_far[wv].norm())
direct = torch.tensor(
    hl.symbolic.predicted_pattern(exL)[wv] == 2
)  # the graph's direct links in H_wv
assert torch.equal((H_far - H_fit)[wv] != 0, direct)

# %% tags=["remove-cell"]
glue("ch02_residual_share", res_share, display=False)

# %% [markdown]
# The difference between the two Hessians is the residual term, and the last line of the cell
# checks that it is non-zero exactly on the direct links of $H_{wv}$. Far from the targets it
# carries a fraction {glue:text}`ch02_residual_share:.2f` of the Frobenius norm of $H_{wv}$;
# at a perfect fit it is gone, and with it the block-circulant stripes.
# {doc}`Chapter 03 <03_dynamic_force>` follows this along the training of a real network:
# where the network can fit its labels the residuals shrink and the stripes fade with them;
# with random labels it cannot fit, the residual term stays ({numref}`fig-03-residual-gap`).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "A two-layer linear network with $d = 4$, $m = 3$, $C = 6$. Left: the links read off the computation graph (white: no link, the entry is exactly 0; grey: indirect; red: direct). Middle: $|H|$ far from the targets ($Y = -3$): the direct links of $H_{wv}$ (top right) light up as block-circulant stripes. Right: $|H|$ at a perfect fit ($Y = VW$): the stripes are gone; $H_{ww}$ and $H_{vv}$ are unchanged.", "name": "fig-02-pattern"}}
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
hl.plot.link_matrix(exL, ax=axes[0], title="graph: links")
hl.plot.pattern(exL, H_far, ax=axes[1], title="|H|, far from the targets")
hl.plot.pattern(exL, H_fit, ax=axes[2], title="|H|, at a perfect fit")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## How small are the white boxes?
#
# The white boxes of $H_{ww}$ are sums of cross terms, $H_{w_iw_{i'}} =
# \big(\sum_{c=1}^C v_{ci}v_{ci'}\big) I_d$, while the diagonal blocks are sums of squares,
# $H_{w_iw_i} = \big(\sum_c v_{ci}^2\big) I_d$. Nothing in the algebra makes the first small.
# What does is *randomness*: at initialisation the $v_{ci}$ are independent with mean zero, so
# the $C$ cross terms have random signs and largely cancel, while the squares add up. For
# i.i.d. Gaussian $V$,
# $\mathbb E\big(\sum_c v_{ci}v_{ci'}\big)^2 = C\sigma^4$ and
# $\mathbb E\big(\sum_c v_{ci}^2\big)^2 = (C^2 + 2C)\sigma^4$, so the RMS block ratio of
# {doc}`chapter 01 <01_observations>` is about
#
# $$
# r \approx \sqrt{\frac{C}{C^2 + 2C}} = \frac{1}{\sqrt{C + 2}}.
# $$
#
# The cell below measures $r$ for $m = 8$ neurons (as in paper Fig. 1) and growing $C$, from
# the block norms $\sqrt d\,|V^\top V|$ (checked once against the dense Hessian).

# %%
m, Cs = 8, [2**k for k in range(1, int(np.log2(cfg.C_max)) + 1)]
gen = hl.make_generator(seed)
off_diag = ~torch.eye(m, dtype=torch.bool)
ratios = []
for C in Cs:
    V = (
        torch.randn(cfg.draws, C, m, generator=gen) / m**0.5
    )  # (draws, C, m)
    G = V.transpose(1, 2) @ V  # (draws, m, m): block norms / sqrt(d)
    off, diag = (
        G[:, off_diag].pow(2).mean(),
        G.diagonal(dim1=1, dim2=2).pow(2).mean(),
    )
    ratios.append(float((off / diag).sqrt()))

# %%
V_small = torch.randn(4, m, generator=gen)
H_small = hl.two_layer_hessian(torch.randn(m, 3, generator=gen), V_small)
lay = hl.BlockLayout.uniform([("W", m, 3), ("V", 4, m)])
norms_dense = hl.block_norms(H_small, lay)[:m, :m]
assert torch.allclose(
    norms_dense, 3**0.5 * (V_small.T @ V_small).abs(), atol=1e-12
)
pred = [1 / np.sqrt(C + 2) for C in Cs]
rel = float(max(abs(r / p - 1) for r, p in zip(ratios, pred)))
print(f"largest relative deviation from 1/sqrt(C+2): {rel:.3f}")
assert rel < 0.2

# %% tags=["remove-cell"]
glue("ch02_ratio_C2", ratios[0], display=False)
glue("ch02_ratio_Cmax", ratios[-1], display=False)
glue("ch02_Cmax", Cs[-1], display=False)
glue("ch02_ratio_relerr", rel, display=False)

# %% [markdown]
# With two outputs the white boxes are not small at all (ratio
# {glue:text}`ch02_ratio_C2:.2f`); with {glue:text}`ch02_Cmax` outputs the ratio is
# {glue:text}`ch02_ratio_Cmax:.4f`, within {glue:text}`ch02_ratio_relerr:.1%` of
# $1/\sqrt{C+2}$ over the whole range ({numref}`fig-02-whitebox`). Many outputs are what make
# the indirect links weak — the "static force" that {doc}`chapter 04 <04_static_force>` studies
# for real networks.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Off-diagonal / diagonal RMS block ratio of $H_{ww} = (V^\\top V)\\otimes I_d$ for random Gaussian $V$ with $m = 8$ neurons, against the number of outputs $C$ (log-log), and the prediction $1/\\sqrt{C+2}$.", "name": "fig-02-whitebox"}}
ax = hl.plot.ratio_vs_c(Cs, ratios, label="measured (mean over draws)")
ax.plot(Cs, pred, "k--", label=r"$1/\sqrt{C+2}$")
ax.set_ylabel(r"RMS ratio of $H_{ww}$ blocks")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What linear algebra cannot explain
#
# The link rule explains the *skeleton* of the pattern: which entries are exactly zero (no
# link), which carry the residual (direct links, the block-circulant part of $H_{wv}$), and
# which are sums of cross terms (indirect links, the white boxes). It leaves four questions
# open — the questions of the talk:
#
# 1. **Non-linearity.** A ReLU multiplies each path by an activation indicator, and
#    cross-entropy couples *all* outputs through the softmax: its curvature
#    $\operatorname{diag}(p) - pp^\top$ is not diagonal, so under CE $v_1$ and $v_2$ *are*
#    linked and $H_{vv}$ is no longer exactly block-diagonal (Exercise 4). Why is it still
#    nearly so?
# 2. **Why large $C$ helps.** We saw the white boxes shrink like $1/\sqrt C$ when $V$ is
#    random; for CE the class blocks shrink like $1/C$. Proving such rates for real networks
#    takes random-matrix theory ({doc}`chapters 04 <04_static_force>` and
#    {doc}`05 <05_random_matrices>`).
# 3. **When training removes the cross terms.** The block-circulant part is proportional to
#    the residuals; {doc}`chapter 03 <03_dynamic_force>` follows it along training, with labels
#    the network can fit and with labels it cannot.
# 4. **Are the white boxes provably small?** Only with probability, not with algebra:
#    {doc}`chapter 05 <05_random_matrices>`.
#
# :::{admonition} The paper says / this chapter finds
# :class: tip
# - **The talk:** a Hessian entry can be non-zero only if the computation graph links the two
#   parameters. **Here:** checked exactly (symbolic and automatic differentiation): the zeros
#   are precisely the missing links ({numref}`fig-02-siso`, {numref}`fig-02-simo-chains`,
#   {numref}`fig-02-simo`, {numref}`fig-02-mimo`).
# - **The talk:** direct links in $H_{wv}$ carry the residual and give block-circulant stripes.
#   **Here:** the stripes appear far from the targets and vanish at a perfect fit, while
#   $H_{ww}$ and $H_{vv}$ do not change ({numref}`fig-02-pattern`).
# - **The talk:** many outputs make the indirect links weak. **Here:** for random $V$ the
#   neuron-block ratio falls from {glue:text}`ch02_ratio_C2:.2f` at $C = 2$ to
#   {glue:text}`ch02_ratio_Cmax:.4f` at $C =$ {glue:text}`ch02_Cmax`, within
#   {glue:text}`ch02_ratio_relerr:.1%` of $1/\sqrt{C+2}$ ({numref}`fig-02-whitebox`).
# - **Not explained here:** ReLU, the softmax coupling of CE and the rates for real networks;
#   those need chapters {doc}`03 <03_dynamic_force>`–{doc}`05 <05_random_matrices>`.
# :::
#
# ## Exercises
#
# 1. *Predict, then check.* Take $d = 2$, $m = 3$, $C = 2$ and remove two weights of $V$:
#    output 1 reads only $h_1, h_2$ and output 2 only $h_2, h_3$. Before computing anything,
#    decide from the graph whether $\partial^2\ell/\partial w_{1,1}\partial w_{3,1}$,
#    $\partial^2\ell/\partial w_{1,1}\partial w_{2,1}$ and
#    $\partial^2\ell/\partial v_{1,1}\partial v_{2,3}$ are identically zero, and how many
#    entries of the Hessian are.
#
# :::{dropdown} Solution
# $w_{1,\cdot}$ reaches only output 1 and $w_{3,\cdot}$ only output 2, so no residual contains
# both: $\partial^2\ell/\partial w_{1,1}\partial w_{3,1} = 0$. $w_{1,1}$ and $w_{2,1}$ both
# reach output 1 from input 1 (indirect link): the entry is $v_{1,1}v_{1,2}$, not zero.
# $v_{1,1}$ and $v_{2,3}$ feed different outputs: zero. The cell below builds the example and
# compares the prediction of the graph with the exact Hessian entry by entry; it also counts
# the identically zero entries.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
ex_new = hl.symbolic.linear_example(
    2, 3, 2, mask=[[1, 1, 0], [0, 1, 1]], name="exercise 1"
)
chk_new = hl.symbolic.verify_example(ex_new, seed=seed)
idx = {lab: k for k, lab in enumerate(ex_new.labels)}
entry = {
    pair: chk_new.H[idx[pair[0]], idx[pair[1]]]
    for pair in [
        ("w_{1,1}", "w_{3,1}"),
        ("w_{1,1}", "w_{2,1}"),
        ("v_{1,1}", "v_{2,3}"),
    ]
}
n_entries = ex_new.num_params**2
for (a, b), value in entry.items():
    print(f"Hessian entry ({a}, {b}): {value}")
print(f"{chk_new.num_zero} of {n_entries} entries are identically zero")
assert chk_new.pattern_ok and chk_new.max_err < 1e-12
assert (
    entry[("w_{1,1}", "w_{3,1}")] == 0
    and entry[("v_{1,1}", "v_{2,3}")] == 0
)

# %% [markdown]
# 2. *The residual lives on the direct links.* For the fully connected network of any size,
#    show that $\nabla^2\ell(Y) - \nabla^2\ell(Y')$ depends only on $Y - Y'$ and is non-zero only
#    on the direct links of $H_{wv}$. What is it for Example 3 with $Y' = 0$?
#
# :::{dropdown} Solution
# Only the second term of the rule, $R_{cj}\,\partial^2R_{cj}/\partial a\partial b$, involves
# $Y$, and $\partial^2R_{cj}/\partial a\partial b$ is non-zero only for $a = w_{ij}$,
# $b = v_{ci}$. So the difference is $-(Y - Y')_{cj}$ at entry $(w_{ij}, v_{ci})$ and zero
# elsewhere. The cell checks it on Example 3 with a random $Y$.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
Y3 = torch.randn(2, 2, generator=gen)
diff = hl.two_layer_hessian(W3, V3, Y3) - hl.two_layer_hessian(W3, V3)
expected = torch.zeros_like(diff)
for c, i, j in np.ndindex(2, 2, 2):
    a, b = ex3.index("w", i, j), ex3.index("v", c, i)
    expected[a, b] = expected[b, a] = -Y3[c, j]
assert torch.allclose(diff, expected, atol=1e-12)
print(
    "difference = -Y on the direct links (w_ij, v_ci), zero elsewhere: "
    "checked"
)

# %% [markdown]
# 3. *A deeper chain.* For the three-layer chain $\ell = \tfrac12(u\,v\,w)^2$, predict the
#    pattern of the $3\times3$ Hessian and find which entries contain the residual
#    $r = uvw$.
#
# :::{dropdown} Solution
# There is one path and all three weights are on it, so all entries are non-zero. The second
# derivative of $r$ with respect to two *different* weights is the third weight, so each
# off-diagonal entry is a cross term plus $r$ times that weight, e.g.
# $\partial^2\ell/\partial u\,\partial v = (vw)(uw) + r\,w = 2uvw^2$; the diagonal entries
# ($\partial^2\ell/\partial u^2 = (vw)^2$) have no residual term. `sympy` confirms it.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
u, v, w = sp.symbols("u v w", real=True)
H_chain = sp.hessian(sp.Rational(1, 2) * (u * v * w) ** 2, (u, v, w))
display(Math(sp.latex(H_chain)))
assert (
    sp.simplify(H_chain[0, 1] - ((v * w) * (u * w) + u * v * w * w)) == 0
)
assert sp.simplify(H_chain[0, 0] - (v * w) ** 2) == 0 and all(
    e != 0 for e in H_chain
)

# %% [markdown]
# 4. *Cross-entropy links the outputs.* Replace the squared loss of Example 2-2 by
#    cross-entropy with label 1, $\ell = -\log\operatorname{softmax}(Vw)_1$. Is the class block
#    $H_{v_1v_2}$ still zero? Compute it.
#
# :::{dropdown} Solution
# No. With logits $z = Vw$, $\partial^2\ell/\partial z\partial z^\top =
# \operatorname{diag}(p) - pp^\top$, whose off-diagonal entry is $-p_1p_2 \ne 0$; since
# $\partial z_c/\partial v_c = w$, $H_{v_1v_2} = -p_1p_2\,ww^\top$. The loss itself links the
# two outputs, and the graph of the network no longer tells the whole story — point 1 of the
# list above. The cell compares autograd with this formula.
# :::

# %% tags=["solution", "hide-cell"] mystnb={"code_prompt_show": "Check the solution", "code_prompt_hide": "Hide the check"}
theta = chk22.theta


def ce_loss(t):
    w_, V_ = t[:2], t[2:].reshape(2, 2)  # h = w, logits = V h
    return torch.nn.functional.cross_entropy(
        (V_ @ w_)[None], torch.tensor([0])
    )


H_ce = hl.hessian_reference(ce_loss, theta)
p = torch.softmax(theta[2:].reshape(2, 2) @ theta[:2], 0)
block = H_ce[2:4, 4:6]
print("H_{v1 v2} =", block.numpy().round(4).tolist())
assert torch.allclose(
    block, -p[0] * p[1] * torch.outer(theta[:2], theta[:2]), atol=1e-12
)
assert float(block.abs().max()) > 1e-3
