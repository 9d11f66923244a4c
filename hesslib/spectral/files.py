"""The file of blockwise spectra that ``python -m hesslib.cli slq`` writes and chapter 06 reads.

A ``.pt`` file (``torch.save``) holding plain tensors, strings and numbers, so that
``torch.load(weights_only=True)`` reads it on any machine: for every parameter block its name,
size, Lanczos tridiagonals and Gauss nodes/weights per probe; and the settings of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .density import Spectrum, slq_density
from .krylov import LanczosResult

__all__ = [
    "BlockSpectra",
    "load_block_spectra",
    "save_block_spectra",
]

FORMAT = "hesslib.block_spectra/1"


@dataclass(frozen=True, eq=False)
class BlockSpectra:
    """Blockwise SLQ results read back from a file written by ``python -m hesslib.cli slq``.

    Attributes:
        names: block names (e.g. ``"L0.Q"``), in parameter order.
        sizes: block sizes ``d_b``.
        results: one :class:`~hesslib.spectral.LanczosResult` per block.
        settings: how the file was made (model, profile, steps, probes, seed, world size,
            backend, device, torch version, seconds).
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    results: list[LanczosResult] = field(repr=False)
    settings: dict

    def spectra(self, *, num_grid: int = 512, sigma_rel: float = 0.02) -> list[Spectrum]:
        """One :class:`~hesslib.Spectrum` per block (see :func:`hesslib.slq_density`)."""
        return [slq_density(r, num_grid=num_grid, sigma_rel=sigma_rel) for r in self.results]

    def check_settings(self, expected: dict) -> None:
        """Raise ``ValueError`` naming every setting of ``expected`` the file disagrees with.

        Values are compared as they are stored (numbers as numbers, anything else as text),
        so ``channels=(8, 8)`` matches a file written with ``--model cnn`` at those channels.
        """
        wrong = {
            k: (self.settings.get(k, "<missing>"), _plain(v))
            for k, v in expected.items()
            if self.settings.get(k, "<missing>") != _plain(v)
        }
        if wrong:
            lines = "; ".join(f"{k}: file has {a!r}, expected {b!r}" for k, (a, b) in wrong.items())
            raise ValueError(f"the spectra file was made with other settings — {lines}")

    def __getitem__(self, name: str) -> LanczosResult:
        if name not in self.names:
            raise KeyError(f"no block {name!r}; blocks: {list(self.names)}")
        return self.results[self.names.index(name)]


def _plain(value):
    """A setting as stored: ``None``/bool/int/float unchanged, anything else as ``str``
    (loadable with ``torch.load(weights_only=True)``)."""
    return value if value is None or type(value) in (bool, int, float) else str(value)


def save_block_spectra(path, names, sizes, results: list[LanczosResult], settings: dict) -> None:
    """Write blockwise Lanczos results (nodes, weights, tridiagonals) and their settings (.pt)."""
    if not (len(names) == len(sizes) == len(results)):
        raise ValueError("names, sizes and results must have one entry per block")
    blocks = [
        dict(
            name=n,
            size=int(s),
            alphas=r.alphas,
            betas=r.betas,
            lengths=r.lengths,
            nodes=r.nodes,
            weights=r.weights,
            dim=int(r.dim),
        )
        for n, s, r in zip(names, sizes, results, strict=True)
    ]
    plain = {str(k): _plain(v) for k, v in settings.items()}
    torch.save({"format": FORMAT, "settings": plain, "blocks": blocks}, path)


def load_block_spectra(path) -> BlockSpectra:
    """Read a file of :func:`save_block_spectra` (``python -m hesslib.cli slq --out …``).

    Raises:
        ValueError: the file is not a hesslib block-spectra file.
    """
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path} is not a hesslib block-spectra file ({FORMAT})")
    blocks = obj["blocks"]
    results = [
        LanczosResult(b["alphas"], b["betas"], b["lengths"], b["nodes"], b["weights"], b["dim"])
        for b in blocks
    ]
    return BlockSpectra(
        tuple(b["name"] for b in blocks), tuple(b["size"] for b in blocks), results, obj["settings"]
    )
