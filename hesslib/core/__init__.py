"""The engine's core: device and data, models with theory init, losses, block layouts, the
HVP engine and full Hessians of any module, the closed forms of cases 1-4, Gram-identity block
norms, block ratios at initialisation, slope fits and profiles.
"""

from .block_ratios import (
    CASES,
    BlockRatios,
    block_ratios_at_init,
    case_model,
    predicted_block_ratios,
)
from .blocks import (
    BlockLayout,
    BlockStats,
    block_norms,
    block_ratio,
    block_stats,
    diag_mass_fraction,
    pool_abs,
    stats_from_norms,
)
from .closed_form import (
    HessianBlocks,
    closed_form_blocks,
    closed_form_hessian,
    hidden_layer_hessian,
    hwv_decomposition,
    linear_hessian,
    one_hidden_hessian,
    output_layer_hessian,
    two_layer_hessian,
)
from .data import Dataset, gaussian_data
from .device import (
    default_device,
    default_dtype,
    device_name,
    make_generator,
    portable_randn,
    seed_everything,
    single_thread,
)
from .fits import SlopeFit, fit_slope, loglog_fit
from .gram import (
    OutputBlockStats,
    lm_head_block_stats,
    output_block_norms_gram,
    output_block_stats_gram,
)
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
from .models import INITS, LinearNet, OneHiddenNet, init_matrix, linear_net, one_hidden_net
from .profiles import PROFILE_NAMES, resolve_profile

__all__ = [
    "CASES",
    "block_ratios_at_init",
    "BlockRatios",
    "case_model",
    "predicted_block_ratios",
    "block_norms",
    "block_ratio",
    "block_stats",
    "BlockLayout",
    "BlockStats",
    "diag_mass_fraction",
    "pool_abs",
    "stats_from_norms",
    "closed_form_blocks",
    "closed_form_hessian",
    "HessianBlocks",
    "hidden_layer_hessian",
    "hwv_decomposition",
    "linear_hessian",
    "one_hidden_hessian",
    "output_layer_hessian",
    "two_layer_hessian",
    "Dataset",
    "gaussian_data",
    "default_device",
    "default_dtype",
    "device_name",
    "make_generator",
    "portable_randn",
    "seed_everything",
    "single_thread",
    "fit_slope",
    "loglog_fit",
    "SlopeFit",
    "lm_head_block_stats",
    "output_block_norms_gram",
    "output_block_stats_gram",
    "OutputBlockStats",
    "available_memory",
    "check_memory",
    "flat_loss",
    "full_hessian",
    "hessian_loop",
    "hessian_reference",
    "hvp",
    "model_hessian",
    "LOSSES",
    "cross_entropy",
    "loss_fn",
    "mse",
    "INITS",
    "init_matrix",
    "linear_net",
    "LinearNet",
    "one_hidden_net",
    "OneHiddenNet",
    "PROFILE_NAMES",
    "resolve_profile",
]
