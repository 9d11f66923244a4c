"""Computation graphs and exact symbolic Hessians of chapter 02 (the only place sympy and
networkx are imported).
"""

from . import graphs, verify
from .graphs import (
    TALK_EXAMPLES,
    LinearExample,
    hessian_at,
    linear_example,
    link_graph,
    network_graph,
    predicted_pattern,
    random_point,
    talk_example,
    torch_loss,
)
from .verify import ExampleCheck, hessian_latex, symbolic_hessian, symbolic_support, verify_example

#: Every public name of the subpackage: the union of its modules' ``__all__``.
__all__ = [*graphs.__all__, *verify.__all__]
