"""Spectra of Hessians without forming them: Lanczos (float64, reorthogonalised, probes
batched), stochastic Lanczos quadrature, top-k eigenpairs with residuals, Jensen-Shannon
distances, blockwise spectra and their files.
"""

from . import blockwise, density, files, heterogeneity, js, krylov, topk
from .blockwise import BlockwiseSpectra, blockwise_spectra, blockwise_spectra_from_file, hvp_matvec
from .density import Spectrum, block_slq, slq, slq_density
from .files import BlockSpectra, load_block_spectra, save_block_spectra
from .heterogeneity import (
    JSEstimate,
    full_spectrum,
    js_estimate,
    js_noise_floor,
    pooled_spectrum,
    scaled_spectrum,
    spectrum_distance,
    split_probes,
    tail_masses,
)
from .js import js_distance, js_zero, pairwise_js, union_grid
from .krylov import LanczosResult, block_lanczos_all, lanczos
from .topk import Eigenpairs, top_eigenpairs

#: Every public name of the subpackage: the union of its modules' ``__all__``.
__all__ = [
    *blockwise.__all__,
    *density.__all__,
    *files.__all__,
    *js.__all__,
    *krylov.__all__,
    *heterogeneity.__all__,
    *topk.__all__,
]
