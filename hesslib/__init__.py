"""hesslib — exact Hessians, their block structure and spectra, for the companion book.

Import it as ``import hesslib as hl``. Each module defines its public names in ``__all__``;
they are re-exported here, grouped by module (see ``_MODULES``). ``hl.plot`` is the plotting
module; ``hl.lanczos`` is the Lanczos function (the module is ``hesslib.lanczos``).
"""

from . import (
    adam_speed,
    blocks,
    cifar,
    closed_form,
    cnn,
    data,
    decoupling,
    deep,
    device,
    dial,
    distributed,
    distributed_ops,
    dynamics,
    gram,
    graph_plots,
    graphs,
    hessian,
    heterogeneity,
    levels,
    losses,
    models,
    observations,
    optim,
    profiles,
    quadratics,
    rmt,
    rmt_sampling,
    snapshot_plots,
    spectra_io,
    spectrum,
    static,
    static_sweep,
    symbolic,
    train,
    transformer,
    zoo,
)
from . import lanczos as _lanczos_module
from . import plotting as plot
from .adam_speed import *  # noqa: F403
from .blocks import *  # noqa: F403
from .cifar import *  # noqa: F403
from .closed_form import *  # noqa: F403
from .cnn import *  # noqa: F403
from .data import *  # noqa: F403
from .decoupling import *  # noqa: F403
from .deep import *  # noqa: F403
from .device import *  # noqa: F403
from .dial import *  # noqa: F403
from .distributed import *  # noqa: F403
from .distributed_ops import *  # noqa: F403
from .dynamics import *  # noqa: F403
from .gram import *  # noqa: F403
from .graph_plots import *  # noqa: F403
from .graphs import *  # noqa: F403
from .hessian import *  # noqa: F403
from .heterogeneity import *  # noqa: F403
from .lanczos import *  # noqa: F403
from .levels import *  # noqa: F403
from .losses import *  # noqa: F403
from .models import *  # noqa: F403
from .observations import *  # noqa: F403
from .optim import *  # noqa: F403
from .profiles import *  # noqa: F403
from .quadratics import *  # noqa: F403
from .rmt import *  # noqa: F403
from .rmt_sampling import *  # noqa: F403
from .snapshot_plots import *  # noqa: F403
from .spectra_io import *  # noqa: F403
from .spectrum import *  # noqa: F403
from .static import *  # noqa: F403
from .static_sweep import *  # noqa: F403
from .symbolic import *  # noqa: F403
from .train import *  # noqa: F403
from .transformer import *  # noqa: F403
from .zoo import *  # noqa: F403

__version__ = "0.1.0"

_MODULES = [
    # foundation
    device, data, models, losses, hessian, closed_form, blocks, profiles,
    # chapters 01–02: real data, observations, graphs
    cifar, observations, graphs, symbolic, graph_plots,
    # chapter 03: training dynamics, deep nets
    train, adam_speed, dynamics, snapshot_plots, deep,
    # chapter 04: static force
    static, static_sweep, levels,
    # chapter 05: spectral toolkit and random matrices
    _lanczos_module, spectrum, rmt, rmt_sampling, decoupling,
    # chapter 06: transformers, CNN, optimisers, Gram block norms, heterogeneity
    transformer, cnn, quadratics, optim, gram, heterogeneity, dial, zoo,
    # scaling out
    distributed, distributed_ops, spectra_io,
]  # fmt: skip

__all__ = ["plot", "__version__"] + [name for module in _MODULES for name in module.__all__]
