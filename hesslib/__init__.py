"""hesslib — exact Hessians, their block structure and spectra, for the companion book.

Import it as ``import hesslib as hl``. Each module defines its public names in ``__all__``;
they are re-exported here, grouped by module (see ``_MODULES``).
"""

from . import (  # noqa: E402  # noqa: E402
    blocks,
    cifar,  # noqa: E402
    closed_form,
    data,
    deep,
    device,
    distributed,
    distributed_ops,
    dynamics,
    graph_plots,  # noqa: E402
    graphs,  # noqa: E402
    hessian,
    levels,
    losses,
    models,
    observations,  # noqa: E402
    profiles,
    spectra_io,
    static,
    static_sweep,
    train,
)
from . import plotting as plot
from .blocks import *  # noqa: F403
from .cifar import *  # noqa: F403, E402
from .closed_form import *  # noqa: F403
from .data import *  # noqa: F403
from .decoupling import *  # noqa: F403, E402
from .deep import *  # noqa: F403, E402
from .device import *  # noqa: F403
from .distributed import *  # noqa: F403, E402
from .distributed_ops import *  # noqa: F403, E402
from .dynamics import *  # noqa: F403, E402
from .graph_plots import *  # noqa: F403, E402
from .graphs import *  # noqa: F403, E402
from .hessian import *  # noqa: F403
from .levels import *  # noqa: F403
from .losses import *  # noqa: F403
from .models import *  # noqa: F403
from .observations import *  # noqa: F403, E402
from .profiles import *  # noqa: F403
from .rmt_sampling import *  # noqa: F403, E402
from .spectra_io import *  # noqa: F403, E402

# chapter modules: one "from .name import *" line each, and the module in _EXTRA below
from .static import *  # noqa: F403
from .static_sweep import *  # noqa: F403
from .train import *  # noqa: F403, E402

# (end of chapter modules)

__version__ = "0.1.0"

_MODULES = [device, data, models, losses, hessian, closed_form, blocks, profiles]
_EXTRA: list = []  # chapter modules appended here, e.g. [rmt, spectrum]
_EXTRA.append(static)
_EXTRA.append(static_sweep)
_EXTRA.append(levels)
_EXTRA.append(cifar)
_EXTRA.append(observations)
_EXTRA.append(graphs)
_EXTRA.append(graph_plots)
_EXTRA += [distributed, distributed_ops, spectra_io]
_EXTRA += [deep, dynamics, train]
from . import decoupling, rmt_sampling  # noqa: E402

_EXTRA += [decoupling, rmt_sampling]

# spectral toolkit (chapters 05, 06)
from . import lanczos as _lanczos_module  # noqa: E402  (hl.lanczos is the function)
from . import rmt, spectrum  # noqa: E402
from .lanczos import *  # noqa: E402, F403
from .rmt import *  # noqa: E402, F403
from .spectrum import *  # noqa: E402, F403

_EXTRA += [_lanczos_module, rmt, spectrum]

# chapter 06: transformers, CNN, optimisers, Gram-matrix block norms, heterogeneity
from . import cnn, gram, heterogeneity, optim, transformer  # noqa: E402
from .cnn import *  # noqa: E402, F403
from .gram import *  # noqa: E402, F403
from .heterogeneity import *  # noqa: E402, F403
from .optim import *  # noqa: E402, F403
from .transformer import *  # noqa: E402, F403

_EXTRA += [transformer, cnn, optim, gram, heterogeneity]

__all__ = ["plot", "__version__"] + [
    name for module in _MODULES + _EXTRA for name in module.__all__
]
