"""Spectra of Hessians without forming them: Lanczos (float64, reorthogonalised, probes
batched), stochastic Lanczos quadrature, Jensen-Shannon distances, blockwise spectra and
their files.
"""

from . import blockwise, density, files, js, krylov
from .blockwise import BlockwiseSpectra, blockwise_spectra, blockwise_spectra_from_file, hvp_matvec
from .density import Spectrum, block_slq, slq, slq_density
from .files import BlockSpectra, load_block_spectra, save_block_spectra
from .js import js_distance, js_zero, pairwise_js, union_grid
from .krylov import LanczosResult, block_lanczos_all, lanczos

#: Every public name of the subpackage: the union of its modules' ``__all__``.
__all__ = [*blockwise.__all__, *density.__all__, *files.__all__, *js.__all__, *krylov.__all__]
