"""Computation graphs and exact symbolic Hessians of chapter 02 (the only place sympy and
networkx are imported).
"""

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

__all__ = [
    "TALK_EXAMPLES",
    "hessian_at",
    "linear_example",
    "LinearExample",
    "link_graph",
    "network_graph",
    "predicted_pattern",
    "random_point",
    "talk_example",
    "torch_loss",
    "ExampleCheck",
    "hessian_latex",
    "symbolic_hessian",
    "symbolic_support",
    "verify_example",
]
