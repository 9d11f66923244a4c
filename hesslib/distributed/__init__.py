"""HVP, Lanczos and SLQ on ``torch.distributed`` (one process per device); the ``torchrun``
command line is :mod:`hesslib.distributed.cli`.
"""

from .comm import (
    DataParallelMatvec,
    DistributedError,
    all_reduce_sum,
    chunked_hvp,
    distributed_hvp,
    init_distributed,
    rank_and_world_size,
    shard_range,
    sharded_loss,
    shutdown_distributed,
)
from .ops import distributed_full_hessian, distributed_lanczos, distributed_slq

__all__ = [
    "all_reduce_sum",
    "chunked_hvp",
    "DataParallelMatvec",
    "distributed_hvp",
    "DistributedError",
    "init_distributed",
    "rank_and_world_size",
    "shard_range",
    "sharded_loss",
    "shutdown_distributed",
    "distributed_full_hessian",
    "distributed_lanczos",
    "distributed_slq",
]
