r"""Chapter 02: computation graphs of small linear networks and the Hessian patterns they predict.

The examples of the talk on arXiv 2505.02809 (Part II-1) are two-layer *linear* networks
``f(x) = V W x`` evaluated on the unit inputs ``x = e_1, …, e_d`` (``X = I``) with targets ``Y``
(zero in the talk) and the summed squared loss

.. math::
    \ell(W, V) = \tfrac12 \lVert V W - Y \rVert_F^2
               = \tfrac12 \sum_{c, j} R_{cj}^2, \qquad
    R_{cj} = \sum_i v_{ci} w_{ij} - Y_{cj}.

Each ``R_{cj}`` is a sum over the *paths* ``x_j → h_i → f_c`` of the product of the two weights
on the path. Hence the rule "check the links": for two parameters ``a``, ``b``,

.. math::
    \frac{\partial^2 \ell}{\partial a\,\partial b}
      = \sum_{c,j} \Big( \frac{\partial R_{cj}}{\partial a}\frac{\partial R_{cj}}{\partial b}
        + R_{cj}\,\frac{\partial^2 R_{cj}}{\partial a\,\partial b} \Big),

* **direct link** — ``a`` and ``b`` lie on one path (``a = w_{ij}``, ``b = v_{ci}``): both terms can
  be non-zero, and the second carries the residual ``R``;
* **indirect link** — they lie on different paths between the same input and output: only the
  first term, a cross term of the square, survives;
* **no link** — they never meet in the same ``R_{cj}``: the entry is identically zero.

Parameters are ordered as everywhere in the book: rows of ``W`` (``w_{ij}``, neuron blocks of
size d), then rows of ``V`` (``v_{ci}``, class blocks). A ``mask`` removes weights of ``V``
(Example 2-1 is not a fully connected net).

This module holds the examples, their graphs and the pattern the graph rule predicts, plus
the closed-form Hessian of the fully connected case (:func:`two_layer_hessian`). The exact
symbolic Hessians, their LaTeX and the check that the rule predicts their zero pattern live
in :mod:`hesslib.symbolic`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import networkx as nx
import numpy as np
import sympy as sp
import torch

from ..core.blocks import BlockLayout
from ..core.checks import (
    as_finite_float64,
    check_positive_int,
    check_real,
    check_shape,
    check_type,
)
from ..core.device import make_generator

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
]

LINK_NONE, LINK_INDIRECT, LINK_DIRECT = 0, 1, 2
TALK_EXAMPLES = ("1", "2-1", "2-2", "3")


@dataclass(frozen=True)
class LinearExample:
    """A two-layer linear network ``f(x) = V W x`` on ``X = I_d`` with targets ``Y``.

    Attributes:
        name: short title (e.g. ``"Example 3 (MIMO)"``).
        d: inputs; m: hidden units; C: outputs.
        mask: ``(C, m)`` booleans, which weights ``v_{ci}`` exist.
        Y: ``(C, d)`` targets (rational or float entries).
        symbols: the parameters, in the book's order (rows of W, then rows of V).
        labels: LaTeX label of each parameter (without dollars).
        loss: the sympy expression ``½ ||V W − Y||_F²``.
        layout: ``m`` neuron blocks of size ``d`` (group ``W``), ``C`` class blocks (group ``V``).
    """

    name: str
    d: int
    m: int
    C: int
    mask: np.ndarray
    Y: np.ndarray
    symbols: tuple
    labels: tuple[str, ...]
    loss: sp.Expr
    layout: BlockLayout

    @property
    def num_params(self) -> int:
        return len(self.symbols)

    def index(self, kind: str, a: int, b: int) -> int:
        """Position of ``w_{ab}`` (``kind="w"``) or ``v_{ab}`` (``kind="v"``), 0-based."""
        return self._index[(kind, a, b)]

    @property
    def _index(self) -> dict:
        out, k = {}, 0
        for i, j in itertools.product(range(self.m), range(self.d)):
            out[("w", i, j)] = k
            k += 1
        for c, i in itertools.product(range(self.C), range(self.m)):
            if self.mask[c, i]:
                out[("v", c, i)] = k
                k += 1
        return out

    def matrices(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """``(W, V)`` as float arrays from a flat parameter vector (masked weights are 0)."""
        theta = np.asarray(theta, dtype=float)
        W = theta[: self.m * self.d].reshape(self.m, self.d)
        V = np.zeros((self.C, self.m))
        V[self.mask] = theta[self.m * self.d :]
        return W, V


def _check_example(ex: object) -> LinearExample:
    """Raise ``TypeError`` unless ``ex`` is a :class:`LinearExample`."""
    return check_type("ex", ex, LinearExample, "a LinearExample (from linear_example)")


def _check_point(ex: LinearExample, theta: object) -> torch.Tensor:
    """``theta`` as a finite float64 CPU vector of ``ex.num_params`` entries, or an error."""
    theta = as_finite_float64("theta", theta)
    check_shape("theta", theta, (ex.num_params,), "(one entry per parameter of ex)")
    return theta


def _label(kind: str, a: int, b: int, short: bool) -> str:
    return f"{kind}_{{{a + 1}}}" if short else f"{kind}_{{{a + 1},{b + 1}}}"


def linear_example(
    d: int,
    m: int,
    C: int,
    *,
    mask=None,
    Y=None,
    name: str = "",
    short_w: bool | None = None,
    short_v: bool | None = None,
) -> LinearExample:
    """Build the symbolic loss ``½ ||V W − Y||_F²`` of a (masked) two-layer linear network.

    Args:
        d: number of inputs (the data are ``X = I_d``).
        m: hidden units.
        C: outputs.
        mask: ``(C, m)`` booleans; ``False`` removes ``v_{ci}`` (default: fully connected).
        Y: ``(C, d)`` targets (default zeros, as in the talk).
        name: title.
        short_w: label ``w_{ij}`` as ``w_i`` (default when ``d == 1``).
        short_v: label ``v_{ci}`` as ``v_c`` (default when every output has one weight).

    Returns:
        A :class:`LinearExample`.
    """
    for nm, val in (("d", d), ("m", m), ("C", C)):
        check_positive_int(nm, val)
    mask = np.ones((C, m), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != (C, m):
        raise ValueError(f"mask must have shape ({C}, {m}), got {mask.shape}")
    if not mask.any(axis=0).all() or not mask.any(axis=1).all():
        raise ValueError("mask must leave every hidden unit and every output at least one weight")
    Y = np.zeros((C, d)) if Y is None else np.asarray(Y)
    if Y.shape != (C, d):
        raise ValueError(f"Y must have shape ({C}, {d}), got {Y.shape}")
    short_w = d == 1 if short_w is None else short_w
    short_v = bool((mask.sum(axis=1) == 1).all()) if short_v is None else short_v
    labels, syms = [], []
    Wsym = sp.zeros(m, d)
    Vsym = sp.zeros(C, m)
    for i, j in itertools.product(range(m), range(d)):
        lab = _label("w", i, j, short_w)
        Wsym[i, j] = sp.Symbol(lab, real=True)
        labels.append(lab)
        syms.append(Wsym[i, j])
    for c, i in itertools.product(range(C), range(m)):
        if mask[c, i]:
            lab = _label("v", c, i, short_v)
            Vsym[c, i] = sp.Symbol(lab, real=True)
            labels.append(lab)
            syms.append(Vsym[c, i])
    R = Vsym * Wsym - sp.Matrix(Y.tolist()).applyfunc(sp.nsimplify)  # (C, d) residuals
    loss = sp.Rational(1, 2) * sum(r**2 for r in R)
    layout = _layout(d, m, mask)
    return LinearExample(name, d, m, C, mask, Y, tuple(syms), tuple(labels), loss, layout)


def _layout(d: int, m: int, mask: np.ndarray) -> BlockLayout:
    sizes = [d] * m + [int(k) for k in mask.sum(axis=1)]
    names = [f"W[{i}]" for i in range(m)] + [f"V[{c}]" for c in range(mask.shape[0])]
    return BlockLayout(tuple(sizes), tuple(names), (("W", 0, m), ("V", m, m + mask.shape[0])))


def talk_example(key: str) -> LinearExample:
    """The examples of the talk (Part II-1), all with ``X = I`` and ``Y = 0``.

    * ``"1"`` SISO: ``ℓ = ½ (w_1 v_1)²`` (d = m = C = 1).
    * ``"2-1"`` SIMO, two separate chains: ``ℓ = ½ (w_1 v_1)² + ½ (w_2 v_2)²``.
    * ``"2-2"`` SIMO, fully connected: one input, two hidden units ``w = (w_1, w_2)``, two
      outputs with weights ``v_c = (v_{c,1}, v_{c,2})``: ``ℓ = ½ Σ_c (v_cᵀ w)²``.
    * ``"3"`` MIMO: ``W, V ∈ R^{2×2}``, ``ℓ = ½ ||V W||_F²``.
    """
    if key == "1":
        return linear_example(1, 1, 1, name="Example 1 (SISO)", short_v=True)
    if key == "2-1":
        return linear_example(
            1, 2, 2, mask=np.eye(2, dtype=bool), name="Example 2-1 (SIMO, two chains)"
        )
    if key == "2-2":
        return linear_example(1, 2, 2, name="Example 2-2 (SIMO)")
    if key == "3":
        return linear_example(2, 2, 2, name="Example 3 (MIMO)")
    raise ValueError(f"key must be one of {TALK_EXAMPLES}, got {key!r}")


def hessian_at(ex: LinearExample, theta) -> torch.Tensor:
    """The symbolic Hessian evaluated at ``theta``: float64 tensor ``(P, P)``."""
    theta = _check_point(_check_example(ex), theta).numpy()
    H = sp.hessian(ex.loss, ex.symbols).applyfunc(sp.expand)  # = hl.symbolic_hessian(ex)
    fn = sp.lambdify(ex.symbols, H, modules="numpy")
    return torch.tensor(np.asarray(fn(*theta), dtype=float), dtype=torch.float64)


def torch_loss(ex: LinearExample):
    """The loss as a torch function of the flat parameters (for autograd Hessians)."""
    _check_example(ex)
    Y = torch.tensor(np.asarray(ex.Y, dtype=float), dtype=torch.float64)
    m, d, C = ex.m, ex.d, ex.C
    flat = np.flatnonzero(ex.mask.reshape(-1))  # positions of the existing v_ci in V.reshape(-1)
    S = torch.zeros(C * m, len(flat), dtype=torch.float64)  # (C m, #v) places the weights
    S[torch.as_tensor(flat), torch.arange(len(flat))] = 1.0

    def f(theta: torch.Tensor) -> torch.Tensor:
        W = theta[: m * d].reshape(m, d)  # (m, d)
        V = (S.to(theta) @ theta[m * d :]).reshape(C, m)  # (C, m), masked weights stay 0
        return 0.5 * (V @ W - Y.to(theta)).pow(2).sum()

    return f


def random_point(ex: LinearExample, *, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """Parameters drawn i.i.d. ``N(0, scale²)`` (float64, CPU)."""
    _check_example(ex)
    check_real("scale", scale)
    gen = make_generator(seed)
    return scale * torch.randn(ex.num_params, generator=gen, dtype=torch.float64)


def network_graph(ex: LinearExample) -> nx.DiGraph:
    """The computation graph: inputs ``x_j`` → hidden ``h_i`` → outputs ``f_c``.

    Nodes carry ``layer`` (0, 1, 2) and ``label``; each edge carries the parameter it
    multiplies by (``param``: its index, ``label``: its LaTeX name).
    """
    _check_example(ex)
    G = nx.DiGraph()
    for j in range(ex.d):
        G.add_node(("x", j), layer=0, label=f"x_{{{j + 1}}}")
    for i in range(ex.m):
        G.add_node(("h", i), layer=1, label=f"h_{{{i + 1}}}")
    for c in range(ex.C):
        G.add_node(("f", c), layer=2, label=f"f_{{{c + 1}}}")
    for i, j in itertools.product(range(ex.m), range(ex.d)):
        k = ex.index("w", i, j)
        G.add_edge(("x", j), ("h", i), param=k, label=ex.labels[k])
    for c, i in itertools.product(range(ex.C), range(ex.m)):
        if ex.mask[c, i]:
            k = ex.index("v", c, i)
            G.add_edge(("h", i), ("f", c), param=k, label=ex.labels[k])
    return G


def _paths(ex: LinearExample) -> dict:
    """``{(j, c): [set of parameter indices on each path x_j → f_c]}``."""
    G = network_graph(ex)
    out = {}
    for j, c in itertools.product(range(ex.d), range(ex.C)):
        paths = nx.all_simple_paths(G, ("x", j), ("f", c))
        out[(j, c)] = [{G.edges[u, v]["param"] for u, v in itertools.pairwise(p)} for p in paths]
    return out


def link_graph(ex: LinearExample) -> nx.Graph:
    """Parameters as nodes; an edge for every pair the computation graph links.

    Edge attribute ``kind``: ``"direct"`` (on a common input→output path: they multiply each
    other) or ``"indirect"`` (on different paths between the same input and output: they meet
    only in the cross term of the square). Pairs with no edge have an identically zero Hessian
    entry.
    """
    _check_example(ex)
    L = nx.Graph()
    for k, lab in enumerate(ex.labels):
        L.add_node(k, label=lab, group="W" if k < ex.m * ex.d else "V")
    for plist in _paths(ex).values():
        on_any = set().union(*plist) if plist else set()
        for a, b in itertools.combinations(sorted(on_any), 2):
            direct = any(a in p and b in p for p in plist)
            if direct:
                L.add_edge(a, b, kind="direct")
            elif not L.has_edge(a, b):
                L.add_edge(a, b, kind="indirect")
    return L


def predicted_pattern(ex: LinearExample) -> np.ndarray:
    """``(P, P)`` ints: 2 = direct link or diagonal, 1 = indirect link, 0 = no link."""
    _check_example(ex)
    P = ex.num_params
    out = np.zeros((P, P), dtype=int)
    on_path = set()
    for plist in _paths(ex).values():
        for p in plist:
            on_path |= p
    for k in on_path:
        out[k, k] = LINK_DIRECT
    for a, b, kind in link_graph(ex).edges(data="kind"):
        out[a, b] = out[b, a] = LINK_DIRECT if kind == "direct" else LINK_INDIRECT
    return out
