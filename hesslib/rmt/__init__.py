"""Random-matrix laws and checks: semicircle, Marchenko-Pastur and its generalisation, the
second-moment prediction, sampling helpers and the decoupling argument.
"""

from . import decoupling, laws, sampling
from .decoupling import (
    CoupledSpectra,
    DecouplingGap,
    InterpolationCurve,
    block_spectra,
    ce_diagonal_weights,
    decoupling_gap,
    diagonal_block,
    interpolate_inputs,
    rank_bound,
    stieltjes_along_t,
    swap_projection,
)
from .laws import (
    GMPDensity,
    gmp_density,
    gmp_stieltjes,
    marchenko_pastur_atom,
    marchenko_pastur_density,
    marchenko_pastur_stieltjes,
    second_moment_prediction,
    semicircle_density,
    stieltjes_empirical,
)
from .sampling import (
    ks_distance,
    lambda_quantiles,
    sample_covariance_eigenvalues,
    weighted_gram,
    wigner_eigenvalues,
)

#: Every public name of the subpackage: the union of its modules' ``__all__``.
__all__ = [*decoupling.__all__, *laws.__all__, *sampling.__all__]
