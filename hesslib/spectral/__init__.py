"""Spectra of Hessians without forming them: Lanczos (float64, reorthogonalised, probes
batched), stochastic Lanczos quadrature, Jensen-Shannon distances, blockwise spectra and
their files.
"""

from .blockwise import BlockwiseSpectra, blockwise_spectra, blockwise_spectra_from_file, hvp_matvec
from .density import Spectrum, block_slq, slq, slq_density
from .files import BlockSpectra, load_block_spectra, save_block_spectra
from .js import js_distance, js_zero, pairwise_js, union_grid
from .krylov import LanczosResult, block_lanczos_all, lanczos

__all__ = [
    "blockwise_spectra",
    "blockwise_spectra_from_file",
    "BlockwiseSpectra",
    "hvp_matvec",
    "block_slq",
    "slq",
    "slq_density",
    "Spectrum",
    "BlockSpectra",
    "load_block_spectra",
    "save_block_spectra",
    "js_distance",
    "js_zero",
    "pairwise_js",
    "union_grid",
    "block_lanczos_all",
    "lanczos",
    "LanczosResult",
]
