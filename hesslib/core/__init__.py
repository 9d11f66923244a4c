"""The engine's core: device and data, models with theory init, losses, block layouts, the
HVP engine and full Hessians of any module (with the memory workspace that plans its chunks and
the Gram route for linear heads), the closed forms of cases 1-4, Gram-identity block
norms and the second-moment formula, block ratios at initialisation, slope fits, profiles and
the seeded sweep over class counts.
"""

from . import (
    block_hvp,
    block_ratios,
    blocks,
    closed_form,
    data,
    device,
    fits,
    flat,
    gram,
    head_hessian,
    hessian,
    hvp_methods,
    linear_head,
    losses,
    models,
    profiles,
    sweep,
    timing,
    workspace,
)
from .block_hvp import block_diagonal_hvp
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
from .fits import SlopeFit, fit_slope, log_correlation, loglog_fit
from .flat import FlatLoss, flat_loss
from .gram import (
    OutputBlockStats,
    class_pair_grams,
    gram_block_sum,
    gram_moments,
    lm_head_block_stats,
    output_block_norms_gram,
    output_block_stats_gram,
    sample_second_moment,
    second_moment,
    squared_gram,
)
from .head_hessian import HeadTerms, head_terms
from .hessian import (
    available_memory,
    check_memory,
    full_hessian,
    hessian_loop,
    hessian_reference,
    hvp,
    model_hessian,
)
from .linear_head import HeadSplit, LinearHead, find_linear_head
from .losses import LOSSES, cross_entropy, loss_fn, mse
from .models import INITS, LinearNet, OneHiddenNet, init_matrix, linear_net, one_hidden_net
from .profiles import PROFILE_NAMES, resolve_profile
from .sweep import point_seed, sweep_classes
from .timing import Timing, compare_timings, time_call
from .workspace import HVP_BYTES_PER_FORWARD, forward_bytes, memory_budget, plan_chunk

#: Every public name of the subpackage: the union of its modules' ``__all__``.
__all__ = [
    *block_ratios.__all__,
    *blocks.__all__,
    *closed_form.__all__,
    *data.__all__,
    *device.__all__,
    *fits.__all__,
    *flat.__all__,
    *gram.__all__,
    *block_hvp.__all__,
    *head_hessian.__all__,
    *hessian.__all__,
    *linear_head.__all__,
    *losses.__all__,
    *models.__all__,
    *profiles.__all__,
    *sweep.__all__,
    *timing.__all__,
    *workspace.__all__,
]
