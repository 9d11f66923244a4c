"""hesslib — exact Hessians, their block structure and spectra, for the companion book.

Import it as ``import hesslib as hl``. The names below are the ones the chapters call most;
everything else lives one level down, in a subpackage named after its concept:

==================  ===========================================================================
``hl.core``         device, data, models, losses, blocks, the HVP engine, closed forms, Gram norms
``hl.spectral``     Lanczos, stochastic Lanczos quadrature, JS distances, blockwise spectra
``hl.rmt``          semicircle, Marchenko–Pastur, generalised MP, second moments, decoupling
``hl.nets``         deep MLP, small CNN, tiny GPT, the model zoo, CIFAR-100
``hl.train``        full-batch Adam, optimisers on quadratics, quadratic test problems
``hl.distributed``  HVP / Lanczos / SLQ on ``torch.distributed`` and the ``torchrun`` CLI
``hl.symbolic``     computation graphs and sympy checks (imports sympy and networkx)
``hl.plot``         every figure helper (imports matplotlib)
``hl.chapters``     the experiment drivers, one module per chapter
==================  ===========================================================================

``hl.plot``, ``hl.symbolic``, ``hl.chapters`` and ``hl.distributed`` are imported on first use,
so ``import hesslib`` (and ``python -m hesslib.cli``) import neither matplotlib, sympy nor
networkx, and a chapter depends only on the modules it reaches.
"""

import importlib as _importlib

from . import core, nets, rmt, spectral, train

# the HVP engine's block-diagonal products (block spectra)
from .core.block_hvp import block_diagonal_hvp

# the model and its data
from .core.block_ratios import BlockRatios, block_ratios_at_init, case_model, predicted_block_ratios

# blocks and their norms
from .core.blocks import (
    BlockLayout,
    BlockStats,
    block_norms,
    block_ratio,
    block_stats,
    diag_mass_fraction,
)

# closed forms (cases 1-4, H_wv, the two-layer net)
from .core.closed_form import (
    HessianBlocks,
    closed_form_blocks,
    closed_form_hessian,
    hidden_layer_hessian,
    hwv_decomposition,
    output_layer_hessian,
    two_layer_hessian,
)
from .core.data import Dataset, gaussian_data
from .core.device import default_device, device_name, make_generator, seed_everything
from .core.fits import SlopeFit, fit_slope

# the HVP engine: any model, no formulas
from .core.flat import flat_loss
from .core.gram import lm_head_block_stats, output_block_norms_gram
from .core.hessian import full_hessian, hessian_reference, hvp, model_hessian
from .core.losses import loss_fn
from .core.models import LinearNet, OneHiddenNet, linear_net, one_hidden_net
from .core.profiles import resolve_profile

# random matrices
from .rmt.laws import (
    gmp_density,
    marchenko_pastur_density,
    second_moment_prediction,
    semicircle_density,
    stieltjes_empirical,
)

# spectra
from .spectral.blockwise import BlockwiseSpectra, blockwise_spectra
from .spectral.density import Spectrum, block_slq, slq, slq_density
from .spectral.js import js_distance, js_zero, pairwise_js
from .spectral.krylov import lanczos
from .spectral.topk import Eigenpairs, top_eigenpairs

# training
from .train.adam import train_adam

__version__ = "0.1.0"

#: Subpackages imported on first attribute access: the figure and symbolic ones pull in
#: matplotlib, sympy and networkx; ``distributed`` and the chapters only matter to their users.
_LAZY = ("plot", "symbolic", "chapters", "distributed")

#: The curated names, grouped as the API page shows them.
API_GROUPS: dict[str, list[str]] = {
    "Device, data and models": [
        "default_device", "device_name", "make_generator", "seed_everything", "resolve_profile",
        "Dataset", "gaussian_data", "LinearNet", "OneHiddenNet", "linear_net", "one_hidden_net",
        "case_model", "loss_fn",
    ],
    "Hessians of any model (the HVP engine)": [
        "flat_loss", "hvp", "block_diagonal_hvp", "full_hessian", "model_hessian",
        "hessian_reference",
    ],
    "Closed forms": [
        "HessianBlocks", "closed_form_hessian", "closed_form_blocks", "hidden_layer_hessian",
        "output_layer_hessian", "hwv_decomposition", "two_layer_hessian",
    ],
    "Blocks, ratios and fits": [
        "BlockLayout", "BlockStats", "block_norms", "block_stats", "block_ratio",
        "diag_mass_fraction", "BlockRatios", "block_ratios_at_init", "predicted_block_ratios",
        "output_block_norms_gram", "lm_head_block_stats", "SlopeFit", "fit_slope",
    ],
    "Spectra": [
        "lanczos", "Spectrum", "slq", "slq_density", "block_slq", "js_distance", "pairwise_js",
        "js_zero", "BlockwiseSpectra", "blockwise_spectra", "Eigenpairs", "top_eigenpairs",
    ],
    "Random matrices": [
        "semicircle_density", "marchenko_pastur_density", "gmp_density",
        "second_moment_prediction", "stieltjes_empirical",
    ],
    "Training": ["train_adam"],
}  # fmt: skip

__all__ = [
    "__version__",
    "core",
    "spectral",
    "rmt",
    "nets",
    "train",
    *_LAZY,
    *(name for names in API_GROUPS.values() for name in names),
]


def __getattr__(name: str):
    """Import ``hl.plot``, ``hl.symbolic`` and ``hl.chapters`` on first use."""
    if name in _LAZY:
        module = _importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'hesslib' has no attribute {name!r}")
