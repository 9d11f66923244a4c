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
# # 06 Implications for transformers and optimisers
#
# The previous chapters explained *why* the Hessian of a classifier is close to block-diagonal.
# This chapter asks what the diagonal blocks *look like*, and why an optimiser should care. The
# argument of {cite}`zhang2024transformers`, with which the talk {cite}`dong2025hessian` closes,
# has three steps:
#
# 1. a transformer's Hessian is near-block-diagonal by *module* (embedding, query, key, value,
#    output projection, MLP, LM head), as an MLP's is by neuron;
# 2. the spectra of those diagonal blocks differ strongly from one module to another in a
#    transformer ("block heterogeneity") but little from one layer to another in a CNN;
# 3. on a block-diagonal quadratic with heterogeneous blocks, a method with *one* learning rate
#    (gradient descent) is held back by the global condition number, while a method with one
#    learning rate per block (blockwise GD, or Adam's per-coordinate steps) is not.
#
# We check each step on models small enough for a laptop: a tiny transformer whose Hessian we
# form exactly; a small GPT and a small CNN whose blockwise spectra we estimate by stochastic
# Lanczos quadrature (SLQ); block-diagonal quadratics; and the "heterogeneity dial" of the paper,
# an MLP with every layer's output multiplied by $c$. Two further sections connect to large
# language models: one learning rate per block (the idea behind Adam-mini
# {cite}`zhang2025adammini`), and the output layer of a model with an LLM-sized vocabulary, whose
# block ratio we compute for tens of thousands of classes without forming its Hessian.
#
# Where our measurements disagree with the papers, the text says so.

# %% tags=["parameters"]
profile = "default"
seed = 0
tiny_layers = None  # layers of the tiny transformer (exact Hessian)
slq_steps = None  # Lanczos steps per block
slq_probes = None  # Rademacher probes per block
vocab_max_log2 = None  # largest vocabulary 2**k of the LM-head section
gpt_spectra_file = None  # blockwise spectra from `python -m hesslib.cli slq --model gpt` instead
cnn_spectra_file = None  # ... and from `--model cnn` (see the page on scaling out)

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from myst_nb import glue
from tqdm.auto import tqdm

import hesslib as hl
from hesslib.chapters import llm_implications as ch

# fmt: off
PROFILES = {
    "quick": dict(
        tiny_layers=1, tiny_windows=200, tiny_steps=60, tiny_lr=1e-2,
        quad_dim=20, quad_steps=400, quad_lrs=9,
        mlp_widths=(64, 32, 16, 16, 10), dial_c=(1, 4, 15), dial_images=64, dial_epochs=2,
        vocab_max_log2=10, gram_N=128, gram_d=32,
    ),
    "default": dict(
        tiny_layers=2, tiny_windows=None, tiny_steps=150, tiny_lr=1e-2,
        quad_dim=100, quad_steps=2000, quad_lrs=17,
        mlp_widths=(64, 300, 128, 64, 10), dial_c=(1, 2, 3, 4, 6, 9, 12, 15), dial_images=256,
        dial_epochs=20,
        vocab_max_log2=15, gram_N=1024, gram_d=256,
    ),
    "paper": dict(
        tiny_layers=4, tiny_windows=None, tiny_steps=500, tiny_lr=1e-2,
        quad_dim=100, quad_steps=5000, quad_lrs=33,
        mlp_widths=(64, 300, 128, 64, 10), dial_c=tuple(range(1, 16)), dial_images=1797,
        dial_epochs=30,
        vocab_max_log2=17, gram_N=2048, gram_d=768,
    ),
}
# fmt: on
cfg = hl.resolve_profile(
    profile,
    PROFILES,
    tiny_layers=tiny_layers,
    vocab_max_log2=vocab_max_log2,
)
# the GPT and CNN of section 2 (and the Lanczos settings of every SLQ here): one table shared
# with `python -m hesslib.cli slq`, so that its spectra files are of exactly these models
slq = {
    model: hl.nets.spectra_settings(
        model, profile, steps=slq_steps, probes=slq_probes, verbose=True
    )
    for model in ("gpt", "cnn")
}
device = hl.default_device()
if device.type == "cpu":  # small models: extra intra-op threads cost more than they give
    torch.set_num_threads(1)
print("device:", hl.device_name(device), "| threads:", torch.get_num_threads())
t_start = time.perf_counter()

# %% [markdown]
# ## 1 A tiny transformer, exactly
#
# The model is the kind {cite}`zhang2024transformers` use to show a near-block-diagonal
# transformer Hessian: a decoder-only transformer with context length 2, embedding width 4, two attention heads, MLP width 4, no LayerNorm and
# no biases, with 1–4 layers (`hl.nets.gpt`). Its parameters, in order, are the token and position
# embeddings, then per layer the query, key, value and output-projection matrices $Q, K, V, O$
# (stored head by head) and the two MLP matrices, and last the LM head. The data are next-token
# windows of a real text that ships with Python: the Zen of Python (the standard-library module
# `this` keeps it ROT13-encoded; `hl.nets.zen_text` decodes it), lowercased, with its 15 most
# frequent characters as tokens and one token for all others.
#
# The Hessian comes from hesslib's general path — batched Hessian-vector products through
# `torch.func`, no formulas — which the test suite checks against `torch.func.hessian`. Here we
# check that it is symmetric, which nothing in the computation enforces.

# %%
tokens, alphabet = hl.nets.char_tokens(hl.nets.zen_text(), vocab_size=16)
tiny_data = hl.nets.token_windows(
    tokens, 2, num=cfg.tiny_windows, vocab_size=16, device=device, name="Zen of Python"
)
tiny = hl.nets.gpt(16, num_layers=cfg.tiny_layers, seed=seed, device=device)
f_tiny, theta0 = hl.flat_loss(tiny, tiny_data.X, tiny_data.y, "ce")
layouts = {
    "module": hl.nets.gpt_layout(tiny, by="module"),
    "head": hl.nets.gpt_layout(tiny, by="head"),
}
H0 = hl.full_hessian(f_tiny, theta0)
asym = float((H0 - H0.T).abs().max() / H0.abs().max())
print(f"P = {theta0.numel()}, {tiny_data.name}; max|H - Hᵀ| / max|H| = {asym:.1e}")
assert asym < 1e-10

# %% [markdown]
# To see whether training changes the picture, we also train the model with full-batch Adam
# (`hl.train.adam_flat`, bias-corrected, $\beta = (0.9, 0.999)$) and form the Hessian again.

# %%
loss_adam, theta_T, state_adam = hl.train.adam_flat(
    f_tiny, theta0, lr=cfg.tiny_lr, steps=cfg.tiny_steps
)
HT = hl.full_hessian(f_tiny, theta_T)
mass = {
    (when, by): hl.diag_mass_fraction(H, lay)
    for when, H in (("init", H0), ("trained", HT))
    for by, lay in layouts.items()
}
null = {by: ch.null_diag_mass(lay) for by, lay in layouts.items()}
for (when, by), m in mass.items():
    print(
        f"{when:>7}, blocks by {by:6}: diagonal mass {m:.3f}  (equal-entries baseline {null[by]:.3f})"
    )
    glue(f"ch06_tiny_mass_{when}_{by}", m, display=False)
    assert when == "init" or m > 2 * null[by]  # after training: well above the baseline
glue("ch06_tiny_null_module", null["module"], display=False)
glue("ch06_tiny_null_head", null["head"], display=False)
glue("ch06_tiny_P", theta0.numel(), display=False)
glue("ch06_tiny_layers", cfg.tiny_layers, display=False)
glue("ch06_tiny_steps", cfg.tiny_steps, display=False)
glue("ch06_tiny_loss0", float(loss_adam[0]), display=False)
glue("ch06_tiny_lossT", float(loss_adam[-1]), display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Absolute values of the exact Hessian of the tiny transformer on the Zen of Python, at initialisation (left) and after full-batch Adam (right). Grid lines separate the modules (token and position embeddings, then $Q$, $K$, $V$, $O$, MLP-in, MLP-out of each layer, then the LM head); thick lines separate the embedding, each layer and the head. The colour scale saturates at 1/100 of the largest entry.", "name": "fig-06-tiny-hessian"}}
fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.2))
for ax, H, when in zip(axes, (H0, HT), ("initialisation", "after Adam")):
    hl.plot.heatmap(
        H, layouts["module"], ax=ax, clip=1 / 100, title=f"{when}, {cfg.tiny_layers} layer(s)"
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# The $P =$ {glue:text}`ch06_tiny_P` parameters of the {glue:text}`ch06_tiny_layers`-layer model
# fall into module blocks of very different sizes (64 entries for an embedding, 16 for one
# attention matrix), so we measure against a baseline: a matrix whose entries all had the same
# size would put a fraction $\sum_i d_i^2/P^2 =$ {glue:text}`ch06_tiny_null_module:.2f` of
# $\|H\|_F^2$ on the diagonal module blocks.
#
# At initialisation ({numref}`fig-06-tiny-hessian`, left) the measured fraction is
# {glue:text}`ch06_tiny_mass_init_module:.2f` — at
# most a modest excess over the baseline (it varies with the seed). The brightest off-diagonal
# blocks couple matrices that multiply each other along one path — the two MLP matrices of a
# layer, $V$ with $O$, $O$ with the MLP: they are the analogue of the cross block $H_{wv}$ of the one-hidden-layer net, which carries the
# residuals $p - e_y$ (chapter 03). After {glue:text}`ch06_tiny_steps` Adam steps (the loss went
# from {glue:text}`ch06_tiny_loss0:.2f` to {glue:text}`ch06_tiny_lossT:.2f`) the fraction is
# {glue:text}`ch06_tiny_mass_trained_module:.2f`, several times the baseline: as in chapter 03,
# training removes the residual-driven couplings and leaves the module blocks. Cutting $Q, K,
# V, O$ further into one block per head gives {glue:text}`ch06_tiny_mass_init_head:.2f` at
# initialisation and {glue:text}`ch06_tiny_mass_trained_head:.2f` after training, against a
# baseline of {glue:text}`ch06_tiny_null_head:.2f`. {numref}`fig-06-tiny-blocks` shows the
# RMS entry $\|H_{ij}\|_F/\sqrt{d_id_j}$ of every pair of modules, which makes blocks of
# different sizes comparable.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "RMS entry $\\|H_{ij}\\|_F/\\sqrt{d_id_j}$ of every pair of module blocks of the tiny transformer (log scale), at initialisation (left) and after Adam (right).", "name": "fig-06-tiny-blocks"}}
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
lay = layouts["module"]
for ax, H, when in zip(axes, (H0, HT), ("initialisation", "after Adam")):
    rms = ch.block_entry_rms(hl.block_norms(H, lay), lay)
    hl.plot.block_norm_map(rms, ax=ax, labels=list(lay.names), log=True, annotate=False, title=when)
    ax.collections[0].colorbar.set_label("log10 RMS entry of the block")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2 Blockwise spectra: a small GPT against a small CNN
#
# For networks with tens of thousands of parameters the Hessian is no longer formed; we
# estimate the *eigenvalue density of every diagonal block* $H_{bb}$ by SLQ (chapter 05): a few
# Lanczos steps from random probes, each step one Hessian-vector product, turned into a
# Gauss-quadrature estimate of the density, blurred by a Gaussian of width 2 % of the block's
# spectral range. The paper runs one SLQ per block (App. C.1 of {cite}`zhang2024transformers`).
# `hl.blockwise_spectra` advances all blocks at once instead: a probe of block $b$ padded with
# zeros is a vector of the full parameter space, and the $b$ rows of its HVP are exactly
# $H_{bb}$ times the probe. Stacking the probes of all blocks as columns, *one* batched HVP
# (`torch.func.vmap`) per Lanczos step serves every block. The benchmark
# `benchmarks/bench_slq.py --blocks` times this against the block-after-block loop.
#
# The two models, at initialisation:
#
# * a GPT with LayerNorm (nanoGPT's layout and its $\mathcal N(0, 0.02^2)$ initialisation) on
#   windows of the Zen of Python, tokenised by characters (all of them);
# * a CNN of 3×3 convolutions with ReLU and average pooling, He initialisation, no
#   normalisation, on scikit-learn's handwritten digits (8×8 images that ship with the package).
#
# Blocks are the parameter tensors, as PyTorch partitions them: embeddings, $Q$, $K$, $V$, $O$,
# MLP-in, MLP-out of each layer and the LM head for the GPT; each convolution and the final
# linear layer for the CNN.

# %%
problems = {m: hl.nets.spectra_problem(slq[m], seed=seed, device=device) for m in ("gpt", "cnn")}
spectra_files = {"gpt": gpt_spectra_file, "cnn": cnn_spectra_file}
spec = {}
for m, pb in problems.items():
    if spectra_files[m] is None:
        spec[m] = hl.blockwise_spectra(
            pb.net,
            pb.data.X,
            pb.data.y,
            pb.layout,
            num_steps=slq[m].steps,
            num_probes=slq[m].probes,
            seed=seed,
            chunk=slq[m].chunk_size,
        )
    else:  # computed elsewhere, e.g. on GPUs with torchrun: it must be of this very model
        spec[m] = hl.spectral.blockwise_spectra_from_file(
            spectra_files[m],
            expect=hl.nets.spectra_file_settings(slq[m], seed=seed),
            names=pb.layout.names,
        )
    print(
        f"{m.upper()}: P = {pb.layout.num_params}, {pb.data.name}, "
        f"{len(spec[m].names)} blocks, {spec[m].num_matvecs} batched HVPs, "
        f"{spec[m].seconds:.1f} s, JS0 = {spec[m].js0:.3f}"
    )
gpt_spec, cnn_spec = spec["gpt"], spec["cnn"]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "SLQ densities of the diagonal Hessian blocks at initialisation, log density against a symmetric-log eigenvalue axis. Left: the GPT, one curve per parameter tensor; right: the CNN, one per layer.", "name": "fig-06-block-spectra"}}
fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
hl.plot.block_spectra(gpt_spec, ax=axes[0], title="GPT blocks")
hl.plot.block_spectra(cnn_spec, ax=axes[1], title="CNN blocks")
for ax in axes:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
plt.tight_layout()
plt.show()

# %% [markdown]
# To compare two blocks we use the Jensen–Shannon distance between their densities: both are
# turned into probability vectors on a common grid (the union of the blocks' own grids, so that
# a block whose spectrum is a thousand times narrower than another's is still resolved) and
#
# $$\mathrm{JS}(P, Q) = \sqrt{\tfrac12\mathrm{KL}(P\,\|\,M) + \tfrac12\mathrm{KL}(Q\,\|\,M)},
# \qquad M = \tfrac12(P+Q),$$
#
# with base-2 logarithms. This is a metric with values in $[0, 1]$: 0 for equal densities, 1
# for densities with disjoint supports. The paper's summary statistic $\mathrm{JS}^0$ is the mean
# distance over all pairs of blocks.


# %%
def hidden_js0(spec, outer):
    """JS0 over the blocks that are neither the input nor the output layer."""
    keep = [i for i, n in enumerate(spec.names) if n not in outer]
    return hl.js_zero(spec.js[keep][:, keep])


js0 = {"gpt": gpt_spec.js0, "cnn": cnn_spec.js0}
js0_hidden = {
    "gpt": hidden_js0(gpt_spec, ("wte", "wpe", "lm_head")),
    "cnn": hidden_js0(cnn_spec, ("conv1", "fc")),
}
for spec in (gpt_spec, cnn_spec):
    assert (
        bool(torch.isfinite(spec.js).all())
        and float(spec.js.min()) >= 0
        and float(spec.js.max()) <= 1
    )
for k in ("gpt", "cnn"):
    glue(f"ch06_js0_{k}", js0[k], display=False)
    glue(f"ch06_js0_hidden_{k}", js0_hidden[k], display=False)
glue("ch06_js0_ratio", js0["gpt"] / js0["cnn"], display=False)
glue("ch06_js0_hidden_ratio", js0_hidden["gpt"] / js0_hidden["cnn"], display=False)
glue("ch06_slq_steps", slq["gpt"].steps, display=False)
glue("ch06_slq_probes", slq["gpt"].probes, display=False)
glue("ch06_gpt_blocks", len(gpt_spec.names), display=False)
glue(
    "ch06_gpt_single_hvps",
    slq["gpt"].steps * slq["gpt"].probes * len(gpt_spec.names),
    display=False,
)
print(
    f"JS0 all blocks: GPT {js0['gpt']:.3f}, CNN {js0['cnn']:.3f}; "
    f"hidden blocks: GPT {js0_hidden['gpt']:.3f}, CNN {js0_hidden['cnn']:.3f}"
)
if cfg.profile != "quick":  # the ordering claim of the paper (quick models are too small)
    assert js0_hidden["cnn"] < js0_hidden["gpt"] and js0["cnn"] < js0["gpt"]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Pairwise Jensen–Shannon distances (base 2, bounded by 1) between the blockwise spectra of the GPT (left) and of the CNN (right) at initialisation.", "name": "fig-06-js"}}
fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.6), gridspec_kw={"width_ratios": [1.6, 1]})
hl.plot.js_heatmap(gpt_spec, ax=axes[0], title=f"GPT, JS⁰ = {js0['gpt']:.3f}")
hl.plot.js_heatmap(cnn_spec, ax=axes[1], title=f"CNN, JS⁰ = {js0['cnn']:.3f}")
plt.tight_layout()
plt.show()

# %% [markdown]
# Over all blocks, $\mathrm{JS}^0$ is {glue:text}`ch06_js0_gpt:.3f` for the GPT and
# {glue:text}`ch06_js0_cnn:.3f` for the CNN, a ratio of {glue:text}`ch06_js0_ratio:.1f`. The
# heatmaps of {numref}`fig-06-js` show where the difference comes from. In the GPT, blocks of the same *kind* in
# different layers are alike (the two MLP-out matrices, the two value matrices), but blocks of
# different kinds are far apart; the query and key matrices, whose Hessian blocks at this
# initialisation are orders of magnitude smaller than the rest (the attention scores start near
# zero, so the loss hardly depends on them), are almost at the maximal distance 1 from
# everything else. In the CNN the interior convolutions are close to
# one another; the first convolution and the final linear layer, which see the raw pixels and
# the logits, stand apart. Leaving out the input and output layers of both models, the means are
# {glue:text}`ch06_js0_hidden_gpt:.3f` (GPT) and {glue:text}`ch06_js0_hidden_cnn:.3f` (CNN), a
# ratio of {glue:text}`ch06_js0_hidden_ratio:.1f`.
#
# The ordering of {cite}`zhang2024transformers` — CNN blocks alike, transformer blocks not —
# is reproduced. Its magnitude is not, and should not be expected to be: the paper's Table 1
# reports $\mathrm{JS}^0$ = 0.10 (ResNet18), 0.09 (VGG16), 53.38 (BERT), 14.93 (GPT2-nano),
# 286.41 (ViT-base), a ratio of over 140. Values above 1 cannot be Jensen–Shannon *distances*,
# which are bounded (by 1 with base-2 logarithms, by $\sqrt{\ln 2}$ with natural ones), so those
# numbers are on another, unbounded scale, and their Table 3 reports NaN where our distance is
# always finite. The absolute values are therefore not comparable with ours; only the ordering
# is. Each SLQ here used {glue:text}`ch06_slq_steps` Lanczos steps and
# {glue:text}`ch06_slq_probes` probe(s) per block; for the GPT's
# {glue:text}`ch06_gpt_blocks` blocks that is {glue:text}`ch06_slq_steps` batched HVPs instead
# of {glue:text}`ch06_gpt_single_hvps` single ones.
#
# ## 3 Quadratic models: one learning rate against one per block
#
# Why would heterogeneity matter? Take $L(w) = \frac12 w^\top Hw$ with
# $H = \operatorname{diag}(H_1,\dots,H_L)$, $H_l = Q_l\Lambda_lQ_l^\top$ ($Q_l$ random orthogonal),
# condition number $\kappa = \lambda_{\max}(H)/\lambda_{\min}(H)$ and block condition numbers
# $\kappa_l$. Gradient descent with its best constant step $\eta = 2/(\lambda_{\min} +
# \lambda_{\max})$ multiplies the error along an eigenvector of eigenvalue $\lambda$ by
# $1 - \eta\lambda$; the worst directions, at both ends of the *whole* spectrum, contract by
# $(\kappa-1)/(\kappa+1)$ per step, the loss by its square. A single step must be small enough
# for the sharpest block and is then far too small for the flattest one. Blockwise GD picks
# $\eta_l = 2/(\lambda_{\min}(H_l) + \lambda_{\max}(H_l))$ in each block, and its rate depends
# only on $\max_l\kappa_l$, which can be far smaller than $\kappa$ when the blocks sit at
# different scales (Theorem 1 of {cite}`zhang2024transformers`). Adam with $\beta_1 = 0$ and
# $\beta_2 = 1$ is GD with the fixed per-coordinate steps $\eta/|g_0|$ ($g_0$ the first
# gradient), a cheap guess of such per-block scales.
#
# The four cases of the paper (§3.2) share $\kappa = 2000$:
#
# * case 1: four blocks whose eigenvalues are drawn from measured *transformer* block spectra —
#   here the GPT's token embedding and the last layer's $Q$, $V$ and MLP-in (the paper used
#   GPT2's);
# * case 2: four blocks from measured *CNN* spectra — here our CNN's first four convolutions;
# * case 3: three 3×3 blocks with eigenvalues $\{1,2,3\}, \{99,100,101\}, \{1998,1999,2000\}$
#   (heterogeneous);
# * case 4: the same nine eigenvalues dealt out as $\{1,99,1998\}, \{2,100,1999\},
#   \{3,101,2000\}$ (homogeneous).
#
# For cases 1 and 2 each block gets the quantiles of its SLQ density, and one affine map for all
# blocks sends the smallest eigenvalue to 1 and the largest to 2000 ("shifting and proportional
# scaling", as in the paper).


# %%
def measured_case(spec, names, label):
    eigs = [
        hl.train.spectrum_quantiles(spec.spectra[spec.names.index(n)], cfg.quad_dim) for n in names
    ]
    return hl.train.block_quadratic(
        hl.train.rescale_spectra(eigs), names=names, seed=seed, name=label
    )


last = max(int(n[1 : n.index(".")]) for n in gpt_spec.names if n.startswith("L"))
cases = {
    1: measured_case(
        gpt_spec, ["wte", f"L{last}.Q", f"L{last}.V", f"L{last}.fc_in"], "case 1: GPT blocks"
    ),
    2: measured_case(cnn_spec, ["conv1", "conv2", "conv3", "conv4"], "case 2: CNN blocks"),
    3: hl.train.paper_quadratic(3, seed=seed),
    4: hl.train.paper_quadratic(4, seed=seed),
}
for k, q in cases.items():
    print(
        f"{q.name:32} d = {q.dim:3}, κ = {q.kappa:.0f}, κ_l = {[round(x, 1) for x in q.block_kappas]}"
    )

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Eigenvalues of the blocks of the four quadratic problems (one row per block, log scale). All four have condition number 2000.", "name": "fig-06-case-spectra"}}
fig, axes = plt.subplots(1, 4, figsize=(12, 2.6), sharex=True)
for ax, q in zip(axes, cases.values()):
    for i, (name, e) in enumerate(zip(q.layout.names, q.eigenvalues)):
        ax.plot(e.numpy(), [i] * e.numel(), "|", ms=9)
    ax.set_yticks(range(len(q.eigenvalues)), q.layout.names, fontsize=7)
    ax.set_xscale("log")
    ax.set_title(q.name, fontsize=8)
    ax.set_xlabel("eigenvalue")
plt.tight_layout()
plt.show()

# %% [markdown]
# Each optimiser starts from the same standard Gaussian point. GD and blockwise GD use their
# optimal steps; the Adam variants (no bias correction, $\varepsilon = 0$, $v_0 = g_0^2$, as in
# eqs. (2)–(3) of the paper) use the step size from a log-spaced grid that gives the smallest
# final loss. "Adam-mini" is the same Adam with a single second-moment number per block, the
# mean of $g^2$ over the block (section 4).

# %%
lrs = torch.logspace(-4, 0, cfg.quad_lrs).tolist()
runs = {
    k: hl.train.compare_optimizers(q, cfg.quad_steps, lrs=lrs, seed=seed) for k, q in cases.items()
}

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Relative loss gap $L(w_t)/L(w_0)$ of the five optimisers on the four block-diagonal quadratics (log scale; curves stop when the loss reaches 0 in floating point). GD uses its optimal constant step, blockwise GD the optimal step per block, the Adam variants their best step on a grid.", "name": "fig-06-quadratics"}}
fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
for ax, (k, q) in zip(axes.flat, cases.items()):
    for name, r in runs[k].items():
        g = r.gaps.clone()
        g[g <= 0] = float("nan")
        ax.semilogy(g.numpy(), label=name, lw=1.3, ls="--" if "mini" in name else "-")
    ax.set_ylim(1e-16, 3)
    ax.set_title(f"{q.name} (κ = {q.kappa:.0f}, max κ_l = {max(q.block_kappas):.0f})", fontsize=9)
for ax in axes[1]:
    ax.set_xlabel("iteration t")
for ax in axes[:, 0]:
    ax.set_ylabel("L(w_t) / L(w_0)")
axes[0, 0].legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The measured asymptotic rates (per-step contraction $\rho$ of the loss gap, fitted over the
# second half of the run) against the predictions $((\kappa-1)/(\kappa+1))^2$ for GD and
# $\max_l((\kappa_l-1)/(\kappa_l+1))^2$ for blockwise GD. The predictions are worst-case rates:
# a run can only be faster. For speed, compare $-\ln\rho$, the number of e-folds gained per step.

# %%
rate = {k: {name: hl.train.measured_rate(r.gaps) for name, r in runs[k].items()} for k in cases}
pred = {
    k: (hl.train.predicted_rate(q.kappa), max(hl.train.predicted_rate(x) for x in q.block_kappas))
    for k, q in cases.items()
}
print("case  max κ_l  GD pred  BGD pred | measured: " + "  ".join(runs[1]))
for k, q in cases.items():
    print(
        f"{k:4} {max(q.block_kappas):8.1f}  {pred[k][0]:.5f}  {pred[k][1]:.5f} |           "
        + "  ".join(f"{v:.5f}" for v in rate[k].values())
    )
    assert rate[k]["GD"] <= pred[k][0] + 1e-3 and rate[k]["blockwise GD"] <= pred[k][1] + 1e-3
speed = {k: {name: -math.log(v) for name, v in rate[k].items()} for k in cases}  # e-folds/step
# heterogeneous case: blockwise GD and Adam (β2 = 1) are more than 10x faster than GD
assert runs[3]["blockwise GD"].final < 1e-12 and speed[3]["Adam, β2 = 1"] > 10 * speed[3]["GD"]
# homogeneous case with the same eigenvalues: no such speed-up
assert speed[4]["Adam, β2 = 1"] < 5 * speed[4]["GD"] > speed[4]["blockwise GD"] / 2

# %%
KEYS = {
    "GD": "gd",
    "blockwise GD": "bgd",
    "Adam, β2 = 1": "adam",
    "Adam, β2 = 0.999": "adam999",
    "Adam-mini, β2 = 1": "mini",
}
for k, q in cases.items():
    for name, key in KEYS.items():
        glue(f"ch06_q{k}_final_{key}", runs[k][name].final, display=False)
        glue(f"ch06_q{k}_rate_{key}", rate[k][name], display=False)
        glue(f"ch06_q{k}_speedup_{key}", speed[k][name] / speed[k]["GD"], display=False)
    glue(f"ch06_q{k}_max_kappa_l", max(q.block_kappas), display=False)
glue("ch06_pred_gd", hl.train.predicted_rate(2000.0), display=False)
glue("ch06_quad_steps", cfg.quad_steps, display=False)

# %% [markdown]
# The synthetic cases reproduce the paper. In case 3 (heterogeneous) GD is stuck near its
# predicted rate {glue:text}`ch06_pred_gd:.4f` (measured {glue:text}`ch06_q3_rate_gd:.4f`): after
# {glue:text}`ch06_quad_steps` steps its loss gap is still {glue:text}`ch06_q3_final_gd:.1e`.
# Blockwise GD, whose blocks have $\max_l\kappa_l =$ {glue:text}`ch06_q3_max_kappa_l:.0f`,
# contracts by {glue:text}`ch06_q3_rate_bgd:.2f` per step and reaches zero within a few
# dozen steps; Adam with $\beta_2 = 1$ contracts by {glue:text}`ch06_q3_rate_adam:.3f` per
# step, {glue:text}`ch06_q3_speedup_adam:.0f` times as many e-folds per step as GD, and ends at
# {glue:text}`ch06_q3_final_adam:.1e`. Case 4 has *the same nine eigenvalues*, only dealt
# out differently: every block now spans the whole range, and neither blockwise GD (rate
# {glue:text}`ch06_q4_rate_bgd:.4f`) nor Adam (rate {glue:text}`ch06_q4_rate_adam:.4f`,
# {glue:text}`ch06_q4_speedup_adam:.1f` times GD's e-folds per step) converges materially
# faster than GD ({glue:text}`ch06_q4_rate_gd:.4f`). Adam's first steps are better tuned than
# GD's fixed step, so after {glue:text}`ch06_quad_steps` steps it still ends lower
# ({glue:text}`ch06_q4_final_adam:.1e` against {glue:text}`ch06_q4_final_gd:.1e`); the paper
# reports GD "on par or better" here, which holds for the rate, not for this constant factor.
# Condition number alone cannot tell the two cases apart; *where* the eigenvalues sit, block by
# block, does. With $\beta_2 = 0.999$ the steps are no longer frozen; Proposition 2 of the paper
# shows that a constant step size then need not converge, and in case 4 the loss of that variant
# indeed stops decreasing (rate {glue:text}`ch06_q4_rate_adam999:.4f`).
#
# Cases 1 and 2 do **not** reproduce the paper's contrast. With our measured spectra the
# blockwise speed-up over GD is modest in *both* cases — {glue:text}`ch06_q1_speedup_bgd:.1f`
# times GD's e-folds per step with GPT blocks, {glue:text}`ch06_q2_speedup_bgd:.1f` times with
# CNN blocks, against {glue:text}`ch06_q3_speedup_bgd:.0f` times in case 3 — because in each one
# block spans a large part of the interval ({numref}`fig-06-case-spectra`): $\max_l\kappa_l$ is
# {glue:text}`ch06_q1_max_kappa_l:.0f` (GPT blocks) and {glue:text}`ch06_q2_max_kappa_l:.0f`
# (CNN blocks), against $\kappa = 2000$. The reason is the recipe, not the models: at
# initialisation every block's spectrum is a two-sided bulk around zero
# ({numref}`fig-06-block-spectra`), so the
# common shift that makes all eigenvalues positive sends each block's bulk to the middle of
# $[1, 2000]$ and lets the widest blocks reach the ends. Heterogeneity of *scale* — the query
# and key blocks' eigenvalues are thousands of times smaller than the MLP's — becomes a cluster
# in the middle, where it does not hurt GD. The paper's GPT2 spectra were evidently of another shape;
# with ours, the quadratics built from measured spectra are not evidence either way.
#
# ## 4 One learning rate per block
#
# If the Hessian is near-block-diagonal and what matters is the scale of each block, then one
# step size per block should be enough, instead of Adam's one per coordinate. This is the idea
# of Adam-mini {cite}`zhang2025adammini`: keep Adam's first moment per coordinate but only one
# second moment $v_b$, the running mean of $\operatorname{mean}_{i\in b} g_i^2$, per block. Its
# optimiser state is $P + B$ numbers instead of $2P$ ($B$ blocks, $P$ parameters) — for a large
# model, half of Adam's memory.
#
# On the quadratics (dashed curves in {numref}`fig-06-quadratics`) Adam-mini with $\beta_2 = 1$ is blockwise GD with
# step $\eta/\sqrt{v_b}$: on case 3 it ends at {glue:text}`ch06_q3_final_mini:.1e`,
# like Adam ({glue:text}`ch06_q3_final_adam:.1e`), with 3 numbers of state instead of 9.
#
# On the tiny transformer the partition matters. We compare Adam with two one-$v$-per-block
# variants at the same learning rate: the blocks of section 1 (one per head of $Q, K, V, O$, one
# per other matrix), and the partition of Adam-mini (`hl.nets.adam_mini_blocks`): $Q$ and $K$ by
# head; $V$, $O$ and the MLP matrices by output neuron; embeddings and LM head by token.

# %%
variants = {
    "section-1 blocks": layouts["head"],
    "Adam-mini partition": hl.nets.adam_mini_blocks(tiny),
}
curves, states = {"Adam": loss_adam}, {"Adam": state_adam}
for name, blocks in variants.items():
    curves[name], _, states[name] = hl.train.adam_flat(
        f_tiny, theta0, lr=cfg.tiny_lr, steps=cfg.tiny_steps, layout=blocks
    )
P_tiny = theta0.numel()
B_mini = hl.nets.adam_mini_num_blocks(tiny)
assert states["Adam"] == 2 * P_tiny and states["Adam-mini partition"] == P_tiny + B_mini
for name, c in curves.items():
    print(f"{name:20}: final loss {float(c[-1]):.4f}, optimiser state {states[name]} numbers")
    assert c[-1] < c[0]
glue("ch06_mini_loss_head", float(curves["section-1 blocks"][-1]), display=False)
glue("ch06_mini_loss", float(curves["Adam-mini partition"][-1]), display=False)
glue("ch06_mini_state_head", states["section-1 blocks"], display=False)
glue("ch06_mini_state", states["Adam-mini partition"], display=False)
glue("ch06_adam_state", state_adam, display=False)
glue("ch06_tiny_blocks_head", layouts["head"].num_blocks, display=False)
glue("ch06_tiny_blocks_mini", B_mini, display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Full-batch training loss of the tiny transformer with Adam (one second moment per parameter) and with one second moment per block, for two partitions, at the same learning rate. The legend gives the number of optimiser-state entries.", "name": "fig-06-adam-mini"}}
fig, ax = plt.subplots(figsize=(5.8, 3.6))
for (name, c), ls in zip(curves.items(), ("-", "--", ":")):
    ax.plot(c.numpy(), ls, lw=1.5, label=f"{name} ({states[name]} state numbers)")
ax.set_xlabel("step")
ax.set_ylabel("training loss (CE)")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# In {numref}`fig-06-adam-mini`, Adam ends at {glue:text}`ch06_tiny_lossT:.3f`; the Adam-mini partition, with
# {glue:text}`ch06_tiny_blocks_mini` second moments, at {glue:text}`ch06_mini_loss:.3f`
# ({glue:text}`ch06_mini_state` state numbers instead of {glue:text}`ch06_adam_state`); the
# coarser partition of section 1, with {glue:text}`ch06_tiny_blocks_head` second moments, lags
# at {glue:text}`ch06_mini_loss_head:.3f`. A whole embedding matrix is too coarse a block: the
# rows of frequent and rare tokens see gradients of very different sizes, so one step size cannot
# suit them all. At the scale of GPT-2 small (12 layers, width 768, vocabulary 50 257, untied
# embeddings here) the Adam-mini partition has a few hundred thousand blocks for over a hundred
# million parameters:

# %%
with torch.device("meta"):  # shapes only, no memory
    gpt2_small = hl.nets.GPT(50257, 1024, 768, 12, 3072, 12, layernorm=True)
P_gpt2 = sum(p.numel() for p in gpt2_small.parameters())
B_gpt2 = hl.nets.adam_mini_num_blocks(gpt2_small)
mem = {
    k: 4 * hl.train.optimizer_state_numel((P_gpt2, B_gpt2), k) / 2**20
    for k in ("adam", "adam-mini")
}
print(
    f"GPT-2 small: P = {P_gpt2:,}, B = {B_gpt2:,}; float32 state: "
    f"Adam {mem['adam']:.0f} MiB, Adam-mini {mem['adam-mini']:.0f} MiB"
)
glue("ch06_gpt2_P_millions", P_gpt2 / 1e6, display=False)
glue("ch06_gpt2_blocks", B_gpt2, display=False)
glue("ch06_gpt2_mem_adam", mem["adam"], display=False)
glue("ch06_gpt2_mem_mini", mem["adam-mini"], display=False)
assert 0.5 < mem["adam-mini"] / mem["adam"] < 0.51

# %% [markdown]
# that is {glue:text}`ch06_gpt2_blocks:,` blocks for {glue:text}`ch06_gpt2_P_millions:.0f`
# million parameters, and optimiser state of {glue:text}`ch06_gpt2_mem_mini:.0f` MiB instead of
# {glue:text}`ch06_gpt2_mem_adam:.0f` MiB in float32.
#
# ## 5 The heterogeneity dial
#
# Section 2.4 of {cite}`zhang2024transformers` builds heterogeneity into a plain network: a
# 4-layer ReLU MLP (hidden widths 300, 128, 64, no biases here) whose every layer output is
# multiplied by a constant $c$, trained on MNIST. The paper reports that $\mathrm{JS}^0$ grows
# with $c$ (Table 3, NaN for $c \ge 9$) and so does the gap between SGD and Adam. We repeat it on
# scikit-learn's digits (1500 images for training, 297 held out), with PyTorch's default
# initialisation as in the paper. For each $c$: the blockwise spectra (one block per layer) at
# initialisation by SLQ, then SGD (momentum 0.9) and Adam for a fixed budget of epochs with
# mini-batches of 128, each with its best learning rate from the paper's grid
# $\{10^{-4}, \dots, 10^{-1}\}$; SGD also from a grid extended down to $10^{-7}$.

# %%
dig_all = hl.nets.digits_data(image=False, seed=seed, device=device, dtype=torch.float32)
perm = torch.randperm(dig_all.N, generator=hl.make_generator(seed)).to(device)
train = hl.Dataset(dig_all.X[perm[:1500]], dig_all.y[perm[:1500]], 10, "digits train")
test = hl.Dataset(dig_all.X[perm[1500:]], dig_all.y[perm[1500:]], 10, "digits test")
dial = {
    c: ch.heterogeneity_dial(
        c,
        train,
        test,
        widths=cfg.mlp_widths,
        epochs=cfg.dial_epochs,
        spectra_samples=cfg.dial_images,
        num_steps=slq["cnn"].steps,
        num_probes=slq["cnn"].probes,
        seed=seed,
    )
    for c in tqdm(cfg.dial_c, desc="c")
}
for c, pt in dial.items():
    assert bool(torch.isfinite(pt.spectra.js).all()) and 0 <= pt.spectra.js0 <= 1
    print(
        f"c = {c:2}: JS0 {pt.spectra.js0:.3f}, top eigenvalue {float(pt.top_eigenvalues.max()):9.2e}; "
        f"loss SGD {pt.sgd.final_loss:.2e} (lr {pt.sgd.lr:g}), SGD low lr {pt.sgd_low.final_loss:.2e} "
        f"(lr {pt.sgd_low.lr:g}), Adam {pt.adam.final_loss:.2e} (lr {pt.adam.lr:g})"
    )

# %%
cs = list(dial)
top_all = [float(dial[c].top_eigenvalues.max()) for c in cs]
spread = [float(dial[c].top_eigenvalues.max() / dial[c].top_eigenvalues.min()) for c in cs]
c_lo, c_hi = cs[0], cs[-1]
glue("ch06_dial_c_hi", c_hi, display=False)
glue("ch06_dial_epochs", cfg.dial_epochs, display=False)
glue("ch06_dial_js0_lo", dial[c_lo].spectra.js0, display=False)
glue("ch06_dial_js0_hi", dial[c_hi].spectra.js0, display=False)
glue("ch06_dial_js0_max", max(dial[c].spectra.js0 for c in cs), display=False)
glue("ch06_dial_top_growth", top_all[-1] / top_all[0], display=False)
glue("ch06_dial_spread_lo", spread[0], display=False)
glue("ch06_dial_spread_hi", spread[-1], display=False)
glue("ch06_dial_spread_max", max(spread), display=False)
for key, attr in (("sgd_paper", "sgd"), ("sgd_low", "sgd_low"), ("adam", "adam")):
    glue(f"ch06_dial_{key}_lo", getattr(dial[c_lo], attr).final_loss, display=False)
    glue(f"ch06_dial_{key}_hi", getattr(dial[c_hi], attr).final_loss, display=False)
    glue(f"ch06_dial_{key}_acc_hi", getattr(dial[c_hi], attr).test_accuracy, display=False)
glue("ch06_dial_sgd_low_lr_hi", dial[c_hi].sgd_low.lr, display=False)
if cfg.profile != "quick":  # the claims of the text below (quick trains for 2 epochs only)
    assert dial[c_hi].sgd.final_loss > 10 * dial[c_hi].adam.final_loss  # the paper's gap ...
    assert (
        dial[c_hi].sgd_low.final_loss < 10 * dial[c_hi].adam.final_loss
    )  # ... closed by small steps
    assert max(spread) < 10 * min(spread) and max(dial[c].spectra.js0 for c in cs) < 0.8

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The heterogeneity dial on digits. Left: $\\mathrm{JS}^0$ of the four layer blocks at initialisation (standard bounded distance). Middle: the largest eigenvalue over all blocks (the common curvature scale) and the ratio of the largest to the smallest blockwise top eigenvalue (the spread of scales between blocks). Right: training loss after the fixed budget for SGD and Adam with their best learning rate from the paper's grid, and for SGD with the grid extended down to $10^{-7}$ (losses below $10^{-8}$ drawn at $10^{-8}$).", "name": "fig-06-dial"}}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.7))
axes[0].plot(cs, [dial[c].spectra.js0 for c in cs], "o-")
axes[0].set_ylim(0, 1)
axes[0].set_ylabel("JS⁰")
axes[1].semilogy(cs, top_all, "s-", label="largest eigenvalue")
axes[1].semilogy(cs, spread, "^-", label="max / min blockwise top eigenvalue")
axes[1].legend(fontsize=8)
for attr, label in (
    ("sgd", "SGD, paper grid"),
    ("sgd_low", "SGD, grid down to 1e-7"),
    ("adam", "Adam, paper grid"),
):
    axes[2].semilogy(
        cs, [max(getattr(dial[c], attr).final_loss, 1e-8) for c in cs], "o-", label=label
    )
axes[2].set_ylabel("training loss after the budget")
axes[2].legend(fontsize=8)
for ax in axes:
    ax.set_xlabel("c")
plt.tight_layout()
plt.show()

# %% [markdown]
# The loss gap appears as in the paper ({numref}`fig-06-dial`, right). After {glue:text}`ch06_dial_epochs` epochs, at $c = 1$
# SGD and Adam end at {glue:text}`ch06_dial_sgd_paper_lo:.1e` and
# {glue:text}`ch06_dial_adam_lo:.1e`; at $c =$ {glue:text}`ch06_dial_c_hi` SGD with the paper's
# learning rates is stuck at {glue:text}`ch06_dial_sgd_paper_hi:.2f` (test accuracy
# {glue:text}`ch06_dial_sgd_paper_acc_hi:.2f`) while Adam reaches
# {glue:text}`ch06_dial_adam_hi:.1e` (accuracy {glue:text}`ch06_dial_adam_acc_hi:.2f`).
#
# Our measurements do not support the paper's *reading* of $c$ as a degree of block
# heterogeneity, though. The bounded JS distance does not grow with $c$: $\mathrm{JS}^0$ is
# {glue:text}`ch06_dial_js0_lo:.3f` at $c = 1$ and {glue:text}`ch06_dial_js0_hi:.3f` at
# $c =$ {glue:text}`ch06_dial_c_hi`, never above {glue:text}`ch06_dial_js0_max:.3f`, and it is
# finite for every $c$. Nor does the spread of scales between the blocks: the ratio of the
# largest to the smallest blockwise top eigenvalue is {glue:text}`ch06_dial_spread_lo:.1f` at
# $c = 1$ and {glue:text}`ch06_dial_spread_hi:.1f` at $c =$ {glue:text}`ch06_dial_c_hi`. What
# grows is the scale that all blocks *share*: multiplying every layer's output by $c$ multiplies
# the network's output by $c^4$ and every block of the Gauss–Newton part of the Hessian by about
# $c^8$, until the softmax saturates; the largest eigenvalue grows
# {glue:text}`ch06_dial_top_growth:.1e`-fold over the range. A distance between densities on a
# common grid is blind to a scale that all blocks share (exercise 2), and a fixed grid of
# learning rates cannot follow it, while Adam's normalised steps can. Extending SGD's grid down
# to $10^{-7}$ closes the gap: SGD then reaches {glue:text}`ch06_dial_sgd_low_hi:.1e` at
# $c =$ {glue:text}`ch06_dial_c_hi` (learning rate {glue:text}`ch06_dial_sgd_low_lr_hi:.0e`,
# test accuracy {glue:text}`ch06_dial_sgd_low_acc_hi:.2f`), against Adam's
# {glue:text}`ch06_dial_adam_hi:.1e`. On this data the dial is a *curvature-scale* dial: it
# reproduces the gap between SGD and Adam on a fixed learning-rate grid, but neither the
# standard $\mathrm{JS}^0$ nor the spread between blocks tracks it, and a single, smaller
# learning rate removes it. The paper's unbounded JS values, and their NaNs once the softmax
# saturates, cannot separate heterogeneity from scale.
#
# ## 6 LLM-sized vocabularies
#
# The talk ends with the output layer of a language model, whose number of classes is the
# vocabulary size $C$, tens of thousands or more. For a linear output layer on features
# $a_n\in\mathbb R^d$ under CE (chapter 04, case 2), the class blocks of the Hessian are
# $H_{cc'} = \frac1N\sum_n S_n[c,c']\,a_na_n^\top$ with $S_n = \operatorname{diag}(p_n) -
# p_np_n^\top$. The full Hessian has $(Cd)^2$ entries — $10^{14}$ for $C = 32\,768$, $d = 256$ —
# but its block norms need none of them:
#
# $$\|H_{cc'}\|_F^2 = \frac{1}{N^2}\sum_{n,m} S_n[c,c']\,S_m[c,c']\,(a_n^\top a_m)^2
#   = \frac{s_{cc'}^\top (G\circ G)\, s_{cc'}}{N^2},\qquad G = AA^\top .$$
#
# Summed over all diagonal or all off-diagonal pairs, the class sums collapse into $N\times N$
# matrices built by GEMMs over the classes (`hl.lm_head_block_stats`, derivation in
# `hesslib/gram.py`): cost $O(N^2(C+d))$, memory $O(N^2)$. Replacing $G\circ G$ by its
# expectation for Gaussian features independent of $p$ gives, block by block, the second-moment
# formula $d(\gamma\,\mathbb E\lambda^2 + (\mathbb E\lambda)^2)$ of chapter 05. First a check
# against the dense Hessian of a small case:

# %%
small = hl.gaussian_data(64, 8, 6, seed=seed, device=device)
lin = hl.linear_net(8, 6, seed=seed + 1, device=device)
dense = hl.block_norms(hl.closed_form_hessian(lin, small.X, small.y, loss="ce"), lin.layout())
gram = hl.output_block_norms_gram(small.X, torch.softmax(small.X @ lin.V.detach().T, dim=1))
err = float((dense - gram).abs().max() / dense.max())
print(f"max relative difference, Gram vs dense block norms: {err:.1e}")
assert err < 1e-10

# %% [markdown]
# Then the sweep: Gaussian features, an LM head with LeCun initialisation, $N =$
# {glue:text}`ch06_gram_N` tokens of width $d =$ {glue:text}`ch06_gram_d`, and vocabularies
# $C = 2, 4, \dots, 2^{k}$. (The CE Hessian in the logits does not depend on the labels, so
# there are none.)

# %%
Cs = [2**k for k in range(1, cfg.vocab_max_log2 + 1)]
vocab, seconds = [], {}
for C in tqdm(Cs, desc="C"):
    t0 = time.perf_counter()
    vocab.append(hl.lm_head_block_stats(cfg.gram_N, cfg.gram_d, C, seed=seed, device=device))
    seconds[C] = time.perf_counter() - t0
ratio = torch.tensor([s.rms_ratio for s in vocab], dtype=torch.float64)
pred = torch.tensor([s.predicted_ratio for s in vocab], dtype=torch.float64)
big = torch.tensor(Cs) >= 16
slope = float(np.polyfit(np.log(Cs)[big.numpy()], np.log(ratio[big].numpy()), 1)[0])
rel = (ratio - pred).abs() / pred
print(
    f"slope {slope:.3f}; worst |measured - predicted| / predicted for C >= 16: {float(rel[big].max()):.3f}"
)
print(
    f"C = {Cs[-1]}: ratio {vocab[-1].rms_ratio:.3e}, diagonal mass {vocab[-1].diag_mass:.5f}, {seconds[Cs[-1]]:.1f} s"
)
assert abs(slope + 1) < 0.1 and float(rel[big].max()) < 0.1

# %%
glue("ch06_gram_N", cfg.gram_N, display=False)
glue("ch06_gram_d", cfg.gram_d, display=False)
glue("ch06_vocab_slope", slope, display=False)
glue("ch06_vocab_C_max", Cs[-1], display=False)
glue("ch06_vocab_ratio_max", vocab[-1].rms_ratio, display=False)
glue("ch06_vocab_pred_max", vocab[-1].predicted_ratio, display=False)
glue("ch06_vocab_intuition_max", vocab[-1].intuition_ratio, display=False)
glue("ch06_vocab_mass_max", vocab[-1].diag_mass, display=False)
glue("ch06_vocab_seconds_max", seconds[Cs[-1]], display=False)
glue("ch06_vocab_rel_err", float(rel[big].max()), display=False)
if 32768 in seconds:
    glue("ch06_vocab_seconds_32k", seconds[32768], display=False)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Off-diagonal / diagonal RMS block ratio of the LM-head Hessian under CE at initialisation, against the vocabulary size $C$: measured from Gram matrices (dots), the second-moment prediction of chapter 05 (line) and the talk's estimate $1/(C-1)$ for uniform probabilities (dashed).", "name": "fig-06-vocab"}}
fig, ax = plt.subplots(figsize=(5.8, 3.8))
hl.plot.ratio_vs_c(Cs, ratio.numpy(), ax=ax, label="measured (Gram matrices)")
ax.plot(Cs, pred.numpy(), "-", color="C1", label="second-moment prediction (ch. 05)")
ax.plot(Cs, [1 / (C - 1) for C in Cs], "k--", lw=1, label="1/(C − 1)")
ax.set_xscale("log", base=2)
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
glue("ch06_minutes", (time.perf_counter() - t_start) / 60, display=False)
glue("ch06_profile", cfg.profile, display=False)
print(f"chapter time: {(time.perf_counter() - t_start) / 60:.1f} min at profile {cfg.profile!r}")

# %% [markdown]
# The ratio falls like $C^{-1}$ ({numref}`fig-06-vocab`; fitted slope {glue:text}`ch06_vocab_slope:.3f` for
# $C \ge 16$), as chapter 04 found for the output layer, and the second-moment formula tracks it
# to within {glue:text}`ch06_vocab_rel_err:.1%`. At $C =$ {glue:text}`ch06_vocab_C_max` the
# ratio is {glue:text}`ch06_vocab_ratio_max:.2e` (prediction
# {glue:text}`ch06_vocab_pred_max:.2e`; $1/(C-1) =$ {glue:text}`ch06_vocab_intuition_max:.2e`
# underestimates it because the probabilities at initialisation are not uniform), and the
# diagonal blocks carry a fraction {glue:text}`ch06_vocab_mass_max:.5f` of the squared
# Frobenius norm. That point took {glue:text}`ch06_vocab_seconds_max:.1f` s. At LLM vocabulary
# sizes the LM head is, at initialisation, block-diagonal by class to within a few parts in
# $10^{5}$. Its diagonal blocks need not be alike, however: with the heavy-tailed token
# frequencies of real text, the trained probabilities — and with them the block norms — spread
# over orders of magnitude, which {cite}`kunstner2024heavy` connect to the gap between SGD and
# Adam on language models.
#
# ## Cost of this chapter
#
# This execution took {glue:text}`ch06_minutes:.1f` minutes (profile
# {glue:text}`ch06_profile`); at `default` the chapter takes a few minutes on two CPU cores.
# The `paper` profile scales up the SLQ models (a 4-layer GPT of width 128 on 256 windows of 64 tokens, about
# 0.8 million parameters; a 6-layer CNN on all 1797 digits at 16×16) and uses the paper's
# 100 Lanczos steps and 10 probes per block, the full $c = 1, \dots, 15$ grid and vocabularies up
# to $2^{17} = 131\,072$. Its cost is dominated by the GPT's SLQ: 100 batched HVPs of 270
# columns each over 16 384 tokens, of the order of $10^{15}$ floating-point operations — minutes
# on one GPU, many hours on a CPU. The blockwise spectra can also be computed apart, on one or
# many GPUs, with `python -m hesslib.cli slq` and passed in through the parameters
# `gpt_spectra_file` and `cnn_spectra_file` (see the page on scaling out).

# %% [markdown]
# ## Exercises
#
# 1. In case 3, blockwise GD contracts the loss by $\max_l((\kappa_l-1)/(\kappa_l+1))^2$ per step
#    (block $\{1,2,3\}$ has $\kappa_l = 3$). How many steps should it need to bring the loss gap
#    below $10^{-12}$? Compare with the run.
#
# :::{dropdown} Solution
# The slowest block contracts by $((3-1)/(3+1))^2 = 1/4$ per step, so about
# $\log(10^{-12})/\log(1/4) \approx 20$ steps. The other blocks are faster, and the initial
# error of the slow block is only part of the loss, so the run needs at most that many; the
# cell below counts them.
# :::

# %% tags=["hide-input"]
bgd3 = runs[3]["blockwise GD"].gaps
steps_needed = int((bgd3 < 1e-12).nonzero()[0])
bound = torch.log(torch.tensor(1e-12)) / torch.log(torch.tensor(0.25))
print(f"steps to 1e-12: {steps_needed}; bound from the slowest block: {float(bound):.1f}")
assert steps_needed <= bound + 1

# %% [markdown]
# 2. Show that the JS distance between two densities does not change when *both* eigenvalue
#    axes are multiplied by the same factor, and check it on the dial's spectra at $c = 1$.
#    Why does this make $\mathrm{JS}^0$ blind to the main effect of $c$?
#
# :::{dropdown} Solution
# Under $\lambda\mapsto s\lambda$ a density becomes $\tilde p(\lambda) = p(\lambda/s)/s$. The JS
# divergence is an integral of $\tilde p\log(\tilde p/\tilde m)$ and the same for $\tilde q$; the
# factors $1/s$ cancel inside the logarithms and the substitution $\lambda = s\mu$ turns the
# integral back into the original. Multiplying every layer by $c$ multiplies every block of the
# Gauss–Newton part by roughly the same power of $c$, which JS cannot see. Below, the SLQ
# quadratures are rescaled by 1000 (the blur scales with them) and the distances recomputed.
# :::

# %% tags=["hide-input"]
spec1 = dial[c_lo].spectra
scaled = [hl.slq_density((1000 * s.nodes, s.weights)) for s in spec1.spectra]
D_scaled = hl.pairwise_js(scaled, grid=hl.spectral.union_grid(scaled))
print(
    f"max change of the JS matrix under a common scaling: {float((D_scaled - spec1.js).abs().max()):.1e}"
)
assert torch.allclose(D_scaled, spec1.js, atol=2e-3)

# %% [markdown]
# 3. A single stable step size for GD must be below $2/\lambda_{\max}$ of the *sharpest* block.
#    Using the GPT's block spectra, by what factor is such a step too small for the block with
#    the *smallest* top eigenvalue, compared with that block's own $2/\lambda_{\max}$?
#
# :::{dropdown} Solution
# The factor is the ratio of the largest to the smallest blockwise top eigenvalue (the largest
# Gauss node of each block's SLQ quadrature). For the GPT at initialisation the query and key
# blocks are thousands of times flatter than the MLP blocks; for the CNN the factor is small.
# :::

# %% tags=["hide-input"]
for name, spec in (("GPT", gpt_spec), ("CNN", cnn_spec)):
    tops = torch.tensor([float(s.nodes.max()) for s in spec.spectra])
    flattest = spec.names[int(tops.argmin())]
    print(
        f"{name}: sharpest/flattest top eigenvalue = {float(tops.max() / tops.min()):.1f} (flattest block: {flattest})"
    )
    assert float(tops.max() / tops.min()) >= 1
