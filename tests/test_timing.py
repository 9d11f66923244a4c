"""The fair-timing helper: repeats interleaved, threads fixed and restored, clear labels."""

import time

import pytest
import torch

import hesslib as hl


def test_compare_timings_orders_contenders_and_restores_threads():
    before = torch.get_num_threads()
    calls = {"fast": lambda: time.sleep(0.001), "slow": lambda: time.sleep(0.02)}
    out = hl.core.compare_timings(calls, repeats=3, threads=1)
    assert set(out) == {"fast", "slow"}
    assert all(len(t.seconds) == 3 and t.threads == 1 for t in out.values())
    assert out["slow"].min > out["fast"].median  # 20 ms sleeps never beat 1 ms ones
    assert out["slow"].min >= 0.02 and out["slow"].spread >= 1.0
    assert torch.get_num_threads() == before
    assert "1 thread(s), median of 3" in out["fast"].label


def test_time_call_counts_the_warmup_apart():
    calls = []
    t = hl.core.time_call(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and len(t.seconds) == 4


@pytest.mark.parametrize(
    "kwargs, word",
    [({"repeats": 0}, "repeats"), ({"threads": -1}, "threads"), ({"warmup": -1}, "warmup")],
)
def test_bad_arguments_are_named(kwargs, word):
    with pytest.raises(ValueError, match=word):
        hl.core.compare_timings({"a": lambda: None}, **kwargs)
    with pytest.raises(ValueError, match="contender"):
        hl.core.compare_timings({})
