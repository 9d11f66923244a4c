"""hesslib — exact Hessians, their block structure and spectra, for the companion book.

Import it as ``import hesslib as hl``.
"""

from .blocks import (
    BlockLayout,
    BlockStats,
    block_norms,
    block_ratio,
    block_stats,
    diag_mass_fraction,
    stats_from_norms,
)
from .closed_form import (
    HessianBlocks,
    closed_form_blocks,
    closed_form_hessian,
    hwv_decomposition,
    linear_hessian,
    one_hidden_hessian,
)
from .data import Dataset, gaussian_data
from .device import default_device, default_dtype, device_name, make_generator, seed_everything
from .hessian import (
    available_memory,
    check_memory,
    flat_loss,
    full_hessian,
    hessian_loop,
    hessian_reference,
    hvp,
    model_hessian,
)
from .losses import LOSSES, cross_entropy, loss_fn, mse
from .models import INITS, LinearNet, OneHiddenNet, linear_net, one_hidden_net
from .profiles import resolve_profile
from . import plotting as plot

__version__ = "0.1.0"

__all__ = [
    # device and seeding
    "default_device", "default_dtype", "device_name", "make_generator", "seed_everything",
    # data, models, losses
    "Dataset", "gaussian_data",
    "INITS", "LinearNet", "OneHiddenNet", "linear_net", "one_hidden_net",
    "LOSSES", "cross_entropy", "mse", "loss_fn",
    # Hessians
    "flat_loss", "hvp", "full_hessian", "hessian_reference", "hessian_loop", "model_hessian",
    "available_memory", "check_memory",
    "HessianBlocks", "closed_form_hessian", "closed_form_blocks", "hwv_decomposition",
    "linear_hessian", "one_hidden_hessian",
    # block structure
    "BlockLayout", "BlockStats", "block_norms", "block_ratio", "block_stats",
    "diag_mass_fraction", "stats_from_norms",
    # notebooks and figures
    "resolve_profile", "plot",
]
