"""The rendezvous of ``torchrun``'s ranks, with a deadline in seconds and a clear report.

``init_process_group("env://")`` waits for missing ranks as long as the collective timeout
(30 minutes by default) and then fails without saying who is missing. Here every rank first
checks in at the same store (``MASTER_ADDR:MASTER_PORT``) and waits only ``timeout`` for the
others; a rank that never started is named, with the ranks that did arrive.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import torch.distributed as dist

__all__ = [
    "wait_for_ranks",
]


def wait_for_ranks(rank: int, world_size: int, timeout: timedelta) -> dist.Store:
    """Check in at the ``MASTER_ADDR:MASTER_PORT`` store and wait for every rank.

    The store is the one ``init_process_group("env://")`` would use: torchrun's agent hosts
    it when ``TORCHELASTIC_USE_AGENT_STORE`` is set, else rank 0 does. Each rank sets one key
    (per restart of torchrun's workers) and polls for the others' until ``timeout``.

    Args:
        rank: this process's rank.
        world_size: the number of ranks.
        timeout: how long to wait for the store and for every rank to check in.

    Returns:
        The store, for :func:`torch.distributed.init_process_group`.

    Raises:
        ConnectionError: the store cannot be reached in time (its host did not start).
        TimeoutError: some ranks did not check in in time; the message lists the ranks that
            arrived and those missing.
        ValueError: ``MASTER_PORT`` is not an integer.
    """
    addr = os.environ.get("MASTER_ADDR", "127.0.0.1")
    raw = os.environ.get("MASTER_PORT", "")
    if not raw.isdigit():
        raise ValueError(f"environment variable MASTER_PORT must be an integer, got {raw!r}")
    port = int(raw)
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    seconds = timeout.total_seconds()
    who = f"rank {rank} of {world_size}"
    try:
        store = dist.TCPStore(
            addr, port, world_size, is_master=rank == 0 and not agent, timeout=timeout,
            wait_for_workers=False, multi_tenant=True,
        )  # fmt: skip
    except (RuntimeError, OSError) as exc:  # DistNetworkError / DistStoreError
        host = "torchrun's agent" if agent else "rank 0"
        raise ConnectionError(
            f"{who}: could not reach the rendezvous at {addr}:{port} within {seconds:g} s "
            f"({host} hosts it: did it start?): {str(exc).strip()[:200]}"
        ) from exc
    prefix = f"hesslib/rendezvous/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"
    keys = [f"{prefix}{r}" for r in range(world_size)]
    store.set(keys[rank], "1")
    deadline = time.monotonic() + seconds
    while not store.check(keys):
        if time.monotonic() > deadline:
            arrived = [r for r, key in enumerate(keys) if store.check([key])]
            missing = sorted(set(range(world_size)) - set(arrived))
            raise TimeoutError(
                f"{who}: ranks {missing} did not start within {seconds:g} s (arrived: ranks "
                f"{arrived}); their own output names the cause. Raise the rendezvous timeout "
                "if they start slowly."
            )
        time.sleep(0.05)
    return store
