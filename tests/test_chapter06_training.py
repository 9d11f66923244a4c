"""SGD against Adam with tuned learning rates (hl.train.sgd_vs_adam) and chapter 06's tasks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hesslib as hl

ch = hl.chapters.llm_implications


@pytest.fixture(scope="module")
def blobs():
    """Two Gaussian blobs in 4 dimensions, float32."""
    gen = hl.make_generator(0)
    y = torch.randint(0, 2, (64,), generator=gen)
    X = torch.randn(64, 4, generator=gen) + 2.0 * y[:, None].float()
    return hl.Dataset(X.float(), y, 2, "blobs")


def _linear(seed):
    torch.manual_seed(seed)
    return nn.Linear(4, 2).float()


def test_train_run_is_seeded_and_learns(blobs):
    kw = dict(optimizer="sgd", lr=0.1, steps=30, batch_size=8, eval_every=10)
    a = hl.train.train_run(_linear, blobs, blobs, seed=1, **kw)
    b = hl.train.train_run(_linear, blobs, blobs, seed=1, **kw)
    c = hl.train.train_run(_linear, blobs, blobs, seed=2, **kw)
    assert a.losses == b.losses and a.losses != c.losses  # the seed fixes init and batches
    assert a.steps == (0, 10, 20, 30) and a.final < a.losses[0]
    assert 0.5 < a.accuracy <= 1 and isinstance(a.model, nn.Linear)
    assert hl.train.steps_to_reach(a, a.final) <= 30
    assert math.isinf(hl.train.steps_to_reach(a, -1.0))


def test_same_batches_for_every_optimiser(blobs):
    gen_a, gen_b = hl.make_generator(3), hl.make_generator(3)
    for _ in range(3):
        Xa, ya = hl.train.sample_batch(blobs, 5, gen_a)
        Xb, yb = hl.train.sample_batch(blobs, 5, gen_b)
        assert torch.equal(Xa, Xb) and torch.equal(ya, yb)
    tokens = torch.arange(40) % 7
    windows = hl.nets.token_windows(tokens, 4, vocab_size=7, device="cpu")
    X, y = hl.train.sample_batch(windows, 3, hl.make_generator(0))
    assert X.shape == (3, 4) and y.shape == (12,)
    assert torch.equal(y.reshape(3, 4)[:, :-1], X[:, 1:])  # targets stay with their window


def test_divergence_is_inf_not_nan(blobs):
    run = hl.train.train_run(
        _linear, blobs, blobs, optimizer="sgd", lr=1e38, steps=20, batch_size=8, eval_every=5
    )
    assert math.isinf(run.final) and run.accuracy == 0.0 and len(run.losses) == 5
    assert not any(math.isnan(x) for x in run.losses)
    with pytest.raises(ValueError, match="optimizer"):
        hl.train.train_run(_linear, blobs, blobs, optimizer="lbfgs", lr=1.0, steps=1, batch_size=4)
    with pytest.raises(ValueError, match="lr"):
        hl.train.train_run(_linear, blobs, blobs, optimizer="sgd", lr=-1.0, steps=1, batch_size=4)


def test_grid_search_tunes_on_the_first_seeds(blobs):
    grid = hl.train.lr_grid_search(
        _linear, blobs, blobs, grids={"sgd": (1e-4, 0.1, 1e38), "adam": (1e-3, 0.03)},
        seeds=(0, 1, 2), tune_seeds=1, steps=20, batch_size=8,
    )  # fmt: skip
    assert grid.grid("sgd") == [1e-4, 0.1, 1e38] and grid.best_lr("sgd") == 0.1
    assert [r.seed for r in grid.best("sgd")] == [0, 1, 2]  # the other seeds at the best lr
    assert len(grid.runs_at("sgd", 1e-4)) == 1  # ... and only there
    assert math.isinf(grid.tuning_score("sgd", 1e38))
    assert len(grid.finals("adam")) == 3 and len(grid.accuracies("adam")) == 3
    with pytest.raises(ValueError, match="select"):
        hl.train.lr_grid_search(_linear, blobs, blobs, grids={"sgd": (0.1,)}, seeds=(0,),
                                select="speed", steps=1, batch_size=4)  # fmt: skip


def test_spread_and_verdict():
    s = hl.train.seed_spread([3.0, 1.0, 2.0])
    assert (s.median, s.lo, s.hi) == (2.0, 1.0, 3.0) and s.rel_spread == 1.0
    assert hl.train.verdict([1, 2], [3, 4], names=("A", "B")) == "A better"
    assert hl.train.verdict([3, 4], [1, 2], names=("A", "B")) == "B better"
    assert hl.train.verdict([1, 3], [2, 4]) == "no gap beyond the seed spread"
    acc = hl.train.verdict([0.9, 0.95], [0.5, 0.6], names=("A", "B"), higher_is_better=True)
    assert acc == "A better"
    with pytest.raises(ValueError, match="NaN"):
        hl.train.seed_spread([1.0, float("nan")])


def test_compare_and_speedup(blobs):
    grid = hl.train.lr_grid_search(
        _linear, blobs, blobs, grids={"sgd": (1e-3, 0.03, 1.0), "adam": (1e-4, 1e-2, 1.0)},
        seeds=(0, 1), steps=20, batch_size=8, eval_every=2,
    )  # fmt: skip
    c = ch.compare(grid)
    assert set(c.lr) == {"sgd", "adam"} and len(c.ratio.values) == 2
    ratios = [s / a for s, a in zip(grid.finals("sgd"), grid.finals("adam"), strict=True)]
    assert c.ratio.values == pytest.approx(tuple(ratios))
    assert all(x > 0 for x in c.speedup.values)
    adam, sgd = grid.best("adam")[0], grid.best("sgd")[0]
    expect = (
        20 / max(hl.train.steps_to_reach(adam, sgd.final), 2)
        if adam.final <= sgd.final
        else max(hl.train.steps_to_reach(sgd, adam.final), 2) / 20
    )
    assert ch.adam_speedup(grid)[0] == pytest.approx(expect)


def test_chapter_tasks_are_the_zoo_models():
    cfg = hl.nets.spectra_settings("gpt", "quick")
    task = ch.gpt_task(cfg, eval_windows=16, device="cpu")
    zoo = hl.nets.spectra_problem(cfg, seed=2, device="cpu").net
    for (n, p), (m, q) in zip(task.make_model(2).named_parameters(), zoo.named_parameters()):
        assert n == m and torch.equal(p, q)
    assert task.train.num_classes == zoo.lm_head.shape[0] and task.clip == 1.0
    assert task.train.X.shape[1] == cfg.context and task.evaluate.N == 16
    assert len(ch.reference_text()) > 100_000  # far more than a paragraph
    cnn_cfg = hl.nets.spectra_settings("cnn", "quick")
    cnn = ch.cnn_task(cnn_cfg, device="cpu")
    assert cnn.train.N == 1500 and cnn.test.N == 297 and cnn.clip is None
    assert cnn.train.X.dtype == torch.float32
