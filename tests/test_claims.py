"""Claims of the papers that the notebooks assert only at the ``default`` profile, checked here
through the library at the smallest size where each one holds.

* Chapter 05 (``notebooks/05_random_matrices.py``, the N sweep): the decoupling gap
  ``|E s_H − E s_H̃|`` decays like ``N^{-1}`` while one draw's difference decays like
  ``N^{-1/2}``.
* Chapter 06 (``notebooks/06_llm_implications.py``, section 2): the blockwise spectra of the
  CNN are less heterogeneous than the GPT's, ``JS⁰(CNN) < JS⁰(GPT)``, over all blocks and over
  the hidden blocks.
* Chapter 06, section 5 (the heterogeneity dial): at ``c = 15`` SGD on the paper's
  learning-rate grid falls far behind Adam, smaller SGD steps close the gap, and over the
  whole dial ``JS⁰ < 0.8`` with blockwise top-eigenvalue spreads within a factor 10.

The sizes were found by trying smaller ones (see the docstrings); the assertions are the
notebooks' own.
"""

from __future__ import annotations

import pytest
import torch

import hesslib as hl
from hesslib.chapters import llm_implications as ch


@pytest.fixture(autouse=True)
def _float32_one_thread():
    """The chapters run in the default float32 (conftest switches tests to float64); one
    intra-op thread, as the library's own loops: on a busy 2-core machine a second thread made
    the quick SLQ runs 10× slower (29 s instead of 2.3 s of CPU)."""
    torch.set_default_dtype(torch.float32)
    with hl.core.single_thread():
        yield


# ------------------------------------------------------------------- chapter 05: the N sweep
#: Five values of N (the notebook's quick profile has three, which leaves one degree of
#: freedom for the fit and a 95 % interval of ±8 on the slope). With N = 100 … 1600 the claim
#: held for each of the seeds 0-9 tried; with N = 100 … 566 (six points) or N = 200 … 1600
#: (four) it failed for some seeds (interval not below −0.5, or the RMS slope out of range).
GAP_NS = [100, 200, 400, 800, 1600]
GAP_SAMPLES = [384, 192, 96, 48, 24]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, 1])  # 5: the notebook's (seed + 5)
def test_decoupling_gap_decays_like_one_over_n(seed):
    gap = hl.rmt.decoupling_gap(
        GAP_NS, gamma=0.25, C=10, zeta=[1 + 1j], num_samples=GAP_SAMPLES, seed=seed
    )
    assert float(gap.bound_ratio.max()) <= 1.0  # rank bound of exercise 3, draw by draw
    delta, delta_se = (v[:, 0] for v in gap.gap("swap"))
    rms, rms_se = (v[:, 0] for v in gap.pathwise_rms())
    fit_gap = hl.core.loglog_fit(gap.Ns, delta, delta_se)
    fit_rms = hl.core.loglog_fit(gap.Ns, rms, rms_se)
    msg = f"gap slope {fit_gap.slope:.3f} [{fit_gap.low:.3f}, {fit_gap.high:.3f}], "
    msg += f"rms slope {fit_rms.slope:.3f}"
    assert fit_gap.high < -0.5 and -1.4 < fit_gap.slope < -0.7, msg
    assert -0.7 < fit_rms.slope < -0.35, msg


# --------------------------------------------------------- chapter 06: JS⁰ of the GPT and the CNN
OUTER = {"gpt": ("wte", "wpe", "lm_head"), "cnn": ("conv1", "fc")}


def _js_estimates(model: str, profile: str, seed: int) -> dict:
    """``JS⁰`` over all and over the hidden blocks, from two independent probe sets (the
    second run with seed + 1, as the notebook does when a run has fewer than four probes)."""
    cfg = hl.nets.spectra_settings(model, profile)
    pb = hl.nets.spectra_problem(cfg, seed=seed, device="cpu")

    def run(s: int) -> hl.BlockwiseSpectra:
        return hl.blockwise_spectra(
            pb.net,
            pb.data.X,
            pb.data.y,
            pb.layout,
            num_steps=cfg.steps,
            num_probes=cfg.probes,
            seed=s,
            chunk=cfg.chunk_size,
        )

    first = run(seed)
    second = None if cfg.probes >= 4 else run(seed + 1)
    for spec in (first, second or first):
        assert bool(torch.isfinite(spec.js).all())
        assert 0 <= float(spec.js.min()) and float(spec.js.max()) <= 1
    assert hl.js_zero(first.js) == pytest.approx(first.js0)
    return {
        part: hl.spectral.js_estimate(first, second, drop=drop)
        for part, drop in (("all", ()), ("hidden", OUTER[model]))
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cnn_spectra_are_less_heterogeneous_than_the_gpts(seed):
    """Holds already at the quick profile (GPT P = 5248, CNN P = 628, 8 Lanczos steps, one
    probe), on each of two independent probe sets: for seeds 0-4, JS⁰ 0.77-0.79 (GPT)
    against 0.43-0.58 (CNN), hidden blocks 0.69-0.73 against 0.29-0.54.

    At this size the difference is about one noise floor (gap / floor 0.8-1.7 over all
    blocks, 0.7-2.3 over the hidden ones), so only the ordering is checked, not a margin.
    """
    gpt, cnn = _js_estimates("gpt", "quick", seed), _js_estimates("cnn", "quick", seed)
    for part in ("all", "hidden"):
        g, c = gpt[part], cnn[part]
        msg = f"{part}: GPT {g.js0:.3f} / {g.js0_other:.3f}, CNN {c.js0:.3f} / {c.js0_other:.3f}"
        assert c.js0 < g.js0 and c.js0_other < g.js0_other, msg
        assert 0 < c.floor_mean < 1 and 0 < g.floor_mean < 1, msg


# ------------------------------------------------------------ chapter 06: the heterogeneity dial
DIAL_C = (1, 2, 3, 4, 6, 9, 12, 15)  # the notebook's default dial


def _digits(seed: int = 0) -> tuple[hl.Dataset, hl.Dataset]:
    """The notebook's split: 1500 training images, 297 held out, in float32."""
    dig = hl.nets.digits_data(image=False, seed=seed, device="cpu", dtype=torch.float32)
    perm = torch.randperm(dig.N, generator=hl.make_generator(seed))
    train = hl.Dataset(dig.X[perm[:1500]], dig.y[perm[:1500]], 10, "digits train")
    test = hl.Dataset(dig.X[perm[1500:]], dig.y[perm[1500:]], 10, "digits test")
    return train, test


#: The learning rates below the paper's grid with which SGD closes the gap (the notebook's).
SMALL_LRS = (1e-7, 1e-6, 1e-5)


@pytest.mark.slow
def test_dial_sgd_adam_gap_at_the_top_of_the_dial():
    """At c = 15 SGD on the paper's grid does not learn, Adam does, small SGD steps do too.

    Measured in test accuracy, the metric by which ``heterogeneity_dial`` picks each
    optimiser's learning rate. 120 steps of batch 128 (seed 0): SGD on the paper's grid 0.09
    (chance; its larger rates diverge), Adam 0.96, SGD down to 1e-7 0.92; seeds 1-3 and 60
    steps give the same picture (SGD ≤ 0.12, Adam ≥ 0.94, small-step SGD ≥ 0.90).

    The notebook used to state the gap in final training losses (SGD > 10× Adam, small-step
    SGD < 10× Adam). At the accuracy-selected rates those losses are too noisy for that: at
    469 steps Adam ends at 0.476 (seed 0), 0.019 (seed 1), 2.24 (seed 2) against SGD's 2.30
    (or a divergence), and Adam's loss at another rate is exactly 0 in float32 — so the loss
    form is not tested.
    """
    train, test = _digits()
    pt = ch.heterogeneity_dial(
        15,
        train,
        test,
        steps=120,
        grids={"sgd": SMALL_LRS + ch.PAPER_LRS, "adam": ch.PAPER_LRS},
        spectra_samples=16,
        num_steps=2,
        num_probes=1,
        seed=0,
    )
    grid = pt.grid
    sgd_paper = max(r.accuracy for lr in ch.PAPER_LRS for r in grid.runs_at("sgd", lr))
    (sgd_small,), (adam,) = grid.best("sgd"), grid.best("adam")
    msg = f"accuracy: SGD (paper grid) {sgd_paper:.3f}, SGD (down to 1e-7) "
    msg += f"{sgd_small.accuracy:.3f} at lr {sgd_small.lr:g}, Adam {adam.accuracy:.3f}"
    assert sgd_paper < 0.2 and adam.accuracy > 0.9, msg  # the paper's gap ...
    assert sgd_small.lr < min(ch.PAPER_LRS), msg
    assert sgd_small.accuracy > adam.accuracy - 0.1, msg  # ... closed by small steps


@pytest.mark.slow
def test_dial_spectra_stay_moderately_heterogeneous():
    """Over the notebook's dial c = 1 … 15: JS⁰ < 0.8 and blockwise top eigenvalues whose
    spread (max / min over the four layers) varies by less than a factor 10.

    The paper's widths (64-300-128-64-10) are needed: with the quick profile's 64-32-16-16-10
    JS⁰ reaches 0.87 at c = 15 for seed 1. With the paper's widths 64 images, 8 Lanczos steps
    and one probe suffice: spreads 6.4-8.4 and JS⁰ 0.46-0.49 (seed 0), 4.4-10.1 and ≤ 0.50
    (seeds 1, 2). Training is not what this checks: one step at one rate.
    """
    train, test = _digits()
    dial = {
        c: ch.heterogeneity_dial(
            c,
            train,
            test,
            steps=1,
            grids={"sgd": (1e-3,), "adam": (1e-3,)},
            spectra_samples=64,
            num_steps=8,
            num_probes=1,
            seed=0,
        )
        for c in DIAL_C
    }
    js0 = {c: pt.spectra.js0 for c, pt in dial.items()}
    top = {c: pt.top_eigenvalues.to(torch.float64) for c, pt in dial.items()}
    spread = {c: float(t.max() / t.min()) for c, t in top.items()}
    assert all(0 <= v <= 1 for v in js0.values()), js0
    assert max(spread.values()) < 10 * min(spread.values()), spread
    assert max(js0.values()) < 0.8, js0
