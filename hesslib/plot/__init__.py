"""Every figure helper of the library (the only place matplotlib is imported), as ``hl.plot.*``."""

from . import curves, graphs, heatmaps, snapshots, spectra
from .curves import ratio_vs_c, sweep
from .graphs import link_matrix, links, network, pattern
from .heatmaps import block_norm_map, coupling_map, heatmap, hessian_summary
from .snapshots import deep_snapshot, gif_html, snapshot, snapshot_gif
from .spectra import block_spectra, js_heatmap, spectrum_histogram

#: Every public name of the subpackage: the union of its modules' ``__all__``.
__all__ = [
    *curves.__all__,
    *graphs.__all__,
    *heatmaps.__all__,
    *snapshots.__all__,
    *spectra.__all__,
]
