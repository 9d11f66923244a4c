r"""Block heterogeneity: blockwise Hessian spectra of a network and their JS distances.

:func:`blockwise_spectra` is a thin adapter over :func:`hesslib.block_slq`: one product per
Lanczos step advances the probes of *every* block, since a probe supported on block ``b`` needs
only ``H_bb q`` in block ``b``'s rows; the product is
:func:`~hesslib.core.block_hvp.block_diagonal_hvp`, which sends each block's probes through only
the part of the graph that depends on the block (2–3× a full HVP of the same columns on
chapter 06's GPT). The JS distances are the standard bounded
ones (base 2, in ``[0, 1]``), computed on the union of the blocks' own grids so that a block
whose spectrum is orders of magnitude narrower than another's is still resolved.
:func:`block_entry_rms` and :func:`null_diag_mass` put block norms of different-sized blocks
on a common scale.

The heterogeneity dial of "Why Transformers Need Adam" (§2.4, Table 3), which uses these
spectra, is in :mod:`hesslib.chapters.llm_implications`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..core.block_hvp import block_diagonal_hvp
from ..core.blocks import BlockLayout
from ..core.checks import check_loss, check_positive_int, check_type
from ..core.flat import flat_loss
from ..core.hessian import hvp
from ..core.hvp_methods import in_passes
from .density import Spectrum, block_slq
from .js import js_zero, pairwise_js, union_grid

__all__ = [
    "blockwise_spectra",
    "blockwise_spectra_from_file",
    "BlockwiseSpectra",
    "hvp_matvec",
]


def hvp_matvec(f, theta: torch.Tensor, *, chunk: int | None = None, blocks=None):
    """A ``matvec`` for :mod:`hesslib.lanczos`: ``(P, K) ↦ H (P, K)`` by batched HVPs.

    Columns are cast to ``theta``'s dtype (e.g. float32 for speed) and the result back to
    float64; ``chunk`` columns at a time bound the memory (default: all at once). With
    ``blocks`` (a :class:`~hesslib.BlockLayout`), the product is with the diagonal blocks
    ``H_bb`` only, each through its own part of the graph
    (:func:`hesslib.core.block_hvp.block_diagonal_hvp`): all block Lanczos reads.
    """
    if chunk is not None:
        check_positive_int("chunk", chunk)
    mv = (lambda V: hvp(f, theta, V)) if blocks is None else block_diagonal_hvp(f, theta, blocks)

    def matvec(Z: torch.Tensor) -> torch.Tensor:
        return in_passes(lambda B: mv(B.to(theta.dtype)).to(Z.dtype), Z, chunk or Z.shape[1])

    return matvec


@dataclass(frozen=True, eq=False)
class BlockwiseSpectra:
    """Blockwise SLQ spectra of one model and their pairwise JS distances.

    Attributes:
        names: block names.
        spectra: one :class:`~hesslib.Spectrum` per block.
        js: ``(B, B)`` standard JS distances (base 2, in ``[0, 1]``).
        js0: mean off-diagonal JS distance.
        seconds: wall time of the Lanczos passes.
        num_matvecs: number of batched full-model HVPs (one per Lanczos step).
    """

    names: tuple[str, ...]
    spectra: tuple[Spectrum, ...]
    js: torch.Tensor
    js0: float
    seconds: float
    num_matvecs: int


def blockwise_spectra(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    layout: BlockLayout,
    *,
    num_steps: int = 30,
    num_probes: int = 2,
    seed: int = 0,
    loss: str = "ce",
    sigma_rel: float = 0.02,
    num_grid: int = 512,
    chunk: int | None = None,
) -> BlockwiseSpectra:
    """Spectra of all diagonal blocks ``H_bb`` of a model's loss Hessian by SLQ, together.

    Args:
        model: the network (its parameters' dtype is the HVP dtype).
        X, y: the data the loss averages over.
        layout: blocks of the flat parameter vector (``named_parameters`` order).
        num_steps: Lanczos steps (the paper used 100).
        num_probes: Rademacher probes per block (the paper used 10).
        seed: seed of the probes.
        loss: ``"ce"`` or ``"mse"``.
        sigma_rel: Gaussian blur relative to each block's spectral range.
        num_grid: grid points per block.
        chunk: HVP columns per vmapped call (memory bound).

    Returns:
        :class:`BlockwiseSpectra`.
    """
    check_type("layout", layout, BlockLayout, "a BlockLayout")
    f, theta = flat_loss(model, X, y, check_loss(loss))  # checks the batch (one forward)
    if layout.num_params != theta.numel():
        raise ValueError(
            f"layout covers {layout.num_params} parameters, the model has {theta.numel()}"
        )
    calls = [0]
    inner = hvp_matvec(f, theta, chunk=chunk, blocks=layout)

    def matvec(Z):
        calls[0] += 1
        return inner(Z)

    t0 = time.perf_counter()
    spectra = block_slq(
        matvec,
        layout,
        theta.numel(),
        num_steps=num_steps,
        num_probes=num_probes,
        seed=seed,
        device=theta.device,
        sigma_rel=sigma_rel,
        num_grid=num_grid,
    )
    seconds = time.perf_counter() - t0
    D = pairwise_js(spectra, grid=union_grid(spectra))
    return BlockwiseSpectra(tuple(layout.names), tuple(spectra), D, js_zero(D), seconds, calls[0])


def blockwise_spectra_from_file(
    path,
    *,
    expect: dict | None = None,
    names: Sequence[str] | None = None,
    sigma_rel: float = 0.02,
    num_grid: int = 512,
) -> BlockwiseSpectra:
    """:class:`BlockwiseSpectra` from a file of ``python -m hesslib.cli slq`` (for example a
    ``paper``-profile run on GPUs), read with :func:`hesslib.spectral.load_block_spectra`.

    Args:
        path: the ``.pt`` file.
        expect: settings the file must have been made with (e.g. the model's entries of
            :data:`hesslib.nets.SPECTRA_MODELS` and the seed); a mismatch raises ``ValueError``.
        names: the block names the file must hold, in order (e.g. the model's layout).
        sigma_rel, num_grid: as :func:`hesslib.slq_density`.
    """
    from .files import load_block_spectra

    check_type("path", path, (str, os.PathLike), "a path to a spectra file")
    if not os.path.isfile(path):
        raise ValueError(f"path must name an existing spectra file, got {os.fspath(path)!r}")
    saved = load_block_spectra(path)
    if expect:
        saved.check_settings(expect)
    if names is not None and tuple(names) != tuple(saved.names):
        raise ValueError(
            f"the spectra file holds blocks {list(saved.names)}, expected {list(names)}"
        )
    spectra = saved.spectra(num_grid=num_grid, sigma_rel=sigma_rel)
    D = pairwise_js(spectra, grid=union_grid(spectra))
    seconds = saved.settings.get("seconds")
    steps = saved.settings.get("steps")
    return BlockwiseSpectra(
        tuple(saved.names),
        tuple(spectra),
        D,
        js_zero(D),
        float(seconds) if seconds is not None else math.nan,
        int(steps) if steps is not None else 0,
    )
