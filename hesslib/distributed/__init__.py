"""HVP, Lanczos and SLQ on ``torch.distributed`` (one process per device); the ``torchrun``
command line is :mod:`hesslib.distributed.cli`.
"""

from . import comm, ops
from .comm import (
    DataParallelMatvec,
    DistributedError,
    all_reduce_sum,
    chunked_hvp,
    distributed_hvp,
    init_distributed,
    rank_and_world_size,
    rank_matvec,
    shard_range,
    sharded_loss,
    shutdown_distributed,
)
from .ops import distributed_full_hessian, distributed_lanczos, distributed_slq

#: Every public name of the subpackage: the union of its modules' ``__all__``.
__all__ = [*comm.__all__, *ops.__all__]
