"""hesslib — exact Hessians, their block structure and spectra, for the companion book.

Import it as ``import hesslib as hl``. Each module defines its public names in ``__all__``;
they are re-exported here, grouped by module (see ``_MODULES``).
"""

from . import blocks, closed_form, data, device, hessian, losses, models, profiles
from . import plotting as plot
from .blocks import *  # noqa: F403
from .closed_form import *  # noqa: F403
from .data import *  # noqa: F403
from .device import *  # noqa: F403
from .hessian import *  # noqa: F403
from .losses import *  # noqa: F403
from .models import *  # noqa: F403
from .profiles import *  # noqa: F403

# chapter modules: one "from .name import *" line each, and the module in _EXTRA below
# (end of chapter modules)

__version__ = "0.1.0"

_MODULES = [device, data, models, losses, hessian, closed_form, blocks, profiles]
_EXTRA: list = []  # chapter modules appended here, e.g. [rmt, spectrum]

__all__ = ["plot", "__version__"] + [
    name for module in _MODULES + _EXTRA for name in module.__all__
]
