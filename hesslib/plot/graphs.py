"""Drawings for chapter 02: computation graphs, link graphs and labelled Hessian patterns.

The graphs come from :mod:`hesslib.symbolic.graphs` (:func:`~hesslib.symbolic.network_graph`,
:func:`~hesslib.symbolic.link_graph`, :func:`~hesslib.symbolic.predicted_pattern`); each
function draws on a given ``ax`` (or a new one) and returns it.
"""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import torch

from ..core.checks import as_finite_float64, check_shape, check_type
from ..symbolic.graphs import LinearExample, link_graph, network_graph, predicted_pattern

__all__ = [
    "link_matrix",
    "links",
    "network",
    "pattern",
]


_KIND_STYLE = {
    "direct": dict(style="solid", width=2.2, edge_color="tab:red"),
    "indirect": dict(style="dashed", width=1.2, edge_color="tab:gray"),
}


def network(ex: LinearExample, *, ax: plt.Axes | None = None, highlight=()) -> plt.Axes:
    """Draw the computation graph left to right, each edge labelled with its parameter.

    Args:
        ex: the example.
        ax: axes.
        highlight: parameter indices whose edges are drawn in red.
    """
    check_type("ex", ex, LinearExample, "a LinearExample")
    ax = ax or plt.subplots(figsize=(4, 3))[1]
    G = network_graph(ex)
    sizes = {0: ex.d, 1: ex.m, 2: ex.C}
    pos = {
        n: (float(G.nodes[n]["layer"]), (sizes[G.nodes[n]["layer"]] - 1) / 2 - n[1])
        for n in G.nodes
    }  # layers left to right, index 1 on top
    colours = {0: "#d9d9d9", 1: "#9ecae1", 2: "#fdae6b"}
    nx.draw_networkx_nodes(
        G, pos, ax=ax, node_size=700, node_color=[colours[G.nodes[n]["layer"]] for n in G.nodes]
    )
    nx.draw_networkx_labels(
        G, pos, ax=ax, labels={n: f"${G.nodes[n]['label']}$" for n in G.nodes}, font_size=10
    )
    hl = set(highlight)
    ecol = ["tab:red" if G.edges[e]["param"] in hl else "black" for e in G.edges]
    nx.draw_networkx_edges(G, pos, ax=ax, edge_color=ecol, arrows=True, node_size=700, width=1.4)
    nx.draw_networkx_edge_labels(
        G,
        pos,
        ax=ax,
        font_size=9,
        label_pos=0.7,
        edge_labels={e: f"${G.edges[e]['label']}$" for e in G.edges},
    )
    ax.set_axis_off()
    ax.margins(0.15)
    return ax


def links(ex: LinearExample, *, ax: plt.Axes | None = None) -> plt.Axes:
    """Draw the link graph: W parameters on top, V parameters below; solid = direct links,
    dashed = indirect links; a missing edge means an exactly zero Hessian entry."""
    check_type("ex", ex, LinearExample, "a LinearExample")
    ax = ax or plt.subplots(figsize=(4, 3))[1]
    L = link_graph(ex)
    nw = ex.m * ex.d
    nv = ex.num_params - nw
    pos = {k: ((k + 0.5) / nw, 1.0) if k < nw else ((k - nw + 0.5) / nv, 0.0) for k in L.nodes}
    nx.draw_networkx_nodes(
        L,
        pos,
        ax=ax,
        node_size=650,
        node_color=["#9ecae1" if k < nw else "#fdae6b" for k in L.nodes],
    )
    nx.draw_networkx_labels(
        L, pos, ax=ax, labels={k: f"${ex.labels[k]}$" for k in L.nodes}, font_size=9
    )
    for kind, style in _KIND_STYLE.items():
        edges = [(a, b) for a, b, k in L.edges(data="kind") if k == kind]
        if edges:
            nx.draw_networkx_edges(
                L,
                pos,
                ax=ax,
                edgelist=edges,
                connectionstyle="arc3,rad=0.25",
                arrows=True,
                arrowstyle="-",
                node_size=650,
                **style,
            )
    ax.plot([], [], color="tab:red", lw=2.2, label="direct link")
    ax.plot([], [], color="tab:gray", lw=1.2, ls="--", label="indirect link")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.25), ncol=2, fontsize=8, frameon=False)
    ax.set_axis_off()
    ax.margins(0.12, 0.3)
    return ax


def pattern(
    ex: LinearExample,
    values: torch.Tensor | np.ndarray,
    *,
    ax: plt.Axes | None = None,
    annotate: bool | None = None,
    title: str | None = None,
    cmap="viridis",
    colorbar: bool = True,
) -> plt.Axes:
    """``|values|`` as a heatmap with parameter names on the axes and block lines.

    Args:
        ex: the example (labels and layout).
        values: a ``(P, P)`` matrix, e.g. a numeric Hessian or :func:`predicted_pattern`.
        ax: axes.
        annotate: write the values in the cells (default when ``P <= 8``).
        title: axes title.
        cmap: colormap.
        colorbar: add a colour bar.
    """
    check_type("ex", ex, LinearExample, "a LinearExample")
    P = ex.num_params
    A = as_finite_float64("values", values)
    check_shape("values", A, (P, P), "to match ex")
    M = A.abs().numpy()
    ax = ax or plt.subplots(figsize=(4, 3.6))[1]
    im = ax.imshow(M, cmap=cmap, vmin=0, interpolation="nearest")
    off = ex.layout.offsets
    if P <= 16:  # one tick per parameter
        ticks = [f"${lab}$" for lab in ex.labels]
        fs = 9 if P <= 8 else 7
        ax.set_xticks(range(P), ticks, rotation=90, fontsize=fs)
        ax.set_yticks(range(P), ticks, fontsize=fs)
    else:  # one tick per group
        centres = [(off[a] + off[b]) / 2 - 0.5 for _, a, b in ex.layout.groups]
        names = [f"${g}$" for g, _, _ in ex.layout.groups]
        ax.set_xticks(centres, names, fontsize=9)
        ax.set_yticks(centres, names, fontsize=9)
    group_edge = off[ex.layout.group("V")[0]]
    for pos in off[1:-1]:
        thick = pos == group_edge
        for line in (ax.axhline, ax.axvline):
            line(pos - 0.5, color="white", lw=2.0 if thick else 0.8, alpha=0.9 if thick else 0.6)
    if annotate if annotate is not None else P <= 8:
        vmax = M.max() or 1.0
        for r, c in itertools.product(range(P), range(P)):
            ax.text(
                c,
                r,
                f"{M[r, c]:.2g}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if M[r, c] > 0.6 * vmax else "white",
            )
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def link_matrix(ex: LinearExample, *, ax: plt.Axes | None = None, title: str | None = None):
    """The graph's prediction as a matrix: no link (white), indirect (grey), direct (red)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    check_type("ex", ex, LinearExample, "a LinearExample")
    colours = ["white", "#bdbdbd", "#d62728"]
    ax = pattern(
        ex,
        predicted_pattern(ex),
        ax=ax,
        annotate=False,
        title=title,
        cmap=ListedColormap(colours),
        colorbar=False,
    )
    ax.images[-1].set_clim(-0.5, 2.5)
    for line in ax.lines:
        line.set_color("black")
    handles = [
        Patch(facecolor=c, edgecolor="black", label=lab)
        for c, lab in zip(colours, ("no link (exactly 0)", "indirect", "direct"))
    ]
    below = -0.22 if ex.num_params <= 16 else -0.08
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, below),
        ncol=3,
        fontsize=7,
        frameon=False,
    )
    return ax
