"""Every figure helper of the library (the only place matplotlib is imported), as ``hl.plot.*``."""

from .curves import ratio_vs_c, sweep
from .graphs import link_matrix, links, network, pattern
from .heatmaps import block_norm_map, coupling_map, heatmap, hessian_summary
from .snapshots import deep_snapshot, gif_html, snapshot, snapshot_gif
from .spectra import block_spectra, js_heatmap, spectrum_histogram

__all__ = [
    "ratio_vs_c",
    "sweep",
    "link_matrix",
    "links",
    "network",
    "pattern",
    "block_norm_map",
    "coupling_map",
    "heatmap",
    "hessian_summary",
    "deep_snapshot",
    "gif_html",
    "snapshot",
    "snapshot_gif",
    "block_spectra",
    "js_heatmap",
    "spectrum_histogram",
]
