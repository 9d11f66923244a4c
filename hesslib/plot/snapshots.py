"""Pictures of a training run's Hessian: ``|H|`` snapshots as panels and as an animated GIF.

Chapter 03 keeps, at each checkpoint, a max-pooled ``|H|`` image in a
:class:`~hesslib.chapters.dynamic_force.HessianSnapshot` (computed by
:func:`~hesslib.chapters.dynamic_force.hessian_snapshot`). Here those images are drawn: one
panel per snapshot (:func:`snapshot`), or all of them as frames of a GIF (:func:`snapshot_gif`) that
:func:`gif_html` inlines in the page, so the static book shows how the block pattern of the
Hessian changes along training (the talk's video, arXiv 2505.02809 Part II-2).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..core.checks import check_record, check_type

if TYPE_CHECKING:  # only read for annotations: a figure needs no chapter code
    from ..chapters.dynamic_force import DeepSnapshot, HessianSnapshot


__all__ = [
    "deep_snapshot",
    "gif_html",
    "snapshot",
    "snapshot_gif",
]

_SNAPSHOT = ("image", "factor", "step", "loss")  # what a drawing reads of a HessianSnapshot


def snapshot_gif(
    snaps: Iterable[HessianSnapshot],
    *,
    boundary: int | None = None,
    clip: float = 1 / 100,
    total_steps: int | None = None,
    size: float = 4.0,
    dpi: int = 80,
    seconds_per_frame: float = 0.8,
    cmap: str = "viridis",
    colors: int = 64,
) -> bytes:
    """An animated GIF of the pooled ``|H|`` images of a list of snapshots.

    Each frame is scaled to its own maximum and saturates at ``clip`` of it (as the static
    heatmaps), so the frames show how the *pattern* changes while the overall scale grows.

    Args:
        snaps: the snapshots, in order.
        boundary: parameter index where ``V`` starts (``m d``): a white line separates the
            layers.
        clip: saturation fraction of each frame's maximum.
        total_steps: length of the run (shown as a percentage in the frame titles).
        size: figure side in inches; ``dpi``: resolution (``size · dpi`` pixels).
        seconds_per_frame: display time of a frame.
        cmap: colormap.
        colors: palette size of the GIF (fewer colours, smaller file).

    Returns:
        The GIF file's bytes (write them, or embed them with :func:`gif_html`).
    """
    import io
    import os
    import tempfile

    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    from PIL import Image, ImageSequence

    if isinstance(snaps, str | bytes) or not isinstance(snaps, Iterable):
        raise TypeError(f"snaps must be an iterable of snapshots, got {type(snaps).__name__}")
    snaps = list(snaps)
    if not snaps:
        raise ValueError("snaps is empty")
    for i, s in enumerate(snaps):
        check_record(f"snaps[{i}]", s, _SNAPSHOT, "a HessianSnapshot")
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(snaps[0].image, cmap=cmap, interpolation="nearest")
    if boundary is not None:
        pos = boundary / snaps[0].factor - 0.5
        ax.axhline(pos, color="white", lw=1.0)
        ax.axvline(pos, color="white", lw=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    title = ax.set_title("|H| at step 0 (100.0 %), loss 0.000", fontsize=9)  # room for titles
    fig.tight_layout()

    def draw(i):
        s = snaps[i]
        im.set_data(s.image)
        im.set_clim(0, float(s.image.max()) * clip)
        pct = f" ({100 * s.step / total_steps:.1f} %)" if total_steps else ""
        title.set_text(f"|H| at step {s.step}{pct}, loss {s.loss:.3f}")
        return im, title

    anim = FuncAnimation(fig, draw, frames=len(snaps), blit=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "anim.gif")
        anim.save(path, writer=PillowWriter(fps=1.0 / seconds_per_frame), dpi=dpi)
        plt.close(fig)
        with Image.open(path) as gif:  # a smaller palette: noisy Hessian pixels compress badly
            frames = [f.convert("RGB").quantize(colors=colors) for f in ImageSequence.Iterator(gif)]
    buf = io.BytesIO()
    frames[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        loop=0,
        duration=int(1000 * seconds_per_frame),
        optimize=True,
    )
    return buf.getvalue()


def gif_html(gif: bytes, *, alt: str = "animation", width: int | None = None):
    """An ``IPython.display.HTML`` ``<img>`` with the GIF inlined as a data URI.

    The page then carries the animation itself: it plays in a static, offline HTML build
    (Jupyter Book) without a server, JavaScript or a file next to the notebook.
    """
    import base64

    from IPython.display import HTML

    check_type("gif", gif, bytes | bytearray, "the bytes of a GIF (from snapshot_gif)")
    b64 = base64.b64encode(gif).decode("ascii")
    w = f' width="{width}"' if width else ""
    return HTML(f'<img src="data:image/gif;base64,{b64}" alt="{alt}"{w} />')


def snapshot(
    snap: HessianSnapshot,
    *,
    ax=None,
    boundary: int | None = None,
    clip: float = 1 / 100,
    title: str | None = None,
    colorbar: bool = False,
):
    """Draw the pooled ``|H|`` of a snapshot, saturating at ``clip`` of its maximum.

    Args:
        snap: the snapshot.
        ax: matplotlib axes (new figure if ``None``).
        boundary: parameter index where ``V`` starts (``m d``), drawn as white lines.
        clip: saturation fraction.
        title: axes title (default: step and loss).
        colorbar: add a colour bar.
    """
    import matplotlib.pyplot as plt

    check_record("snap", snap, _SNAPSHOT, "a HessianSnapshot")
    ax = ax or plt.subplots(figsize=(3.6, 3.4))[1]
    im = ax.imshow(
        snap.image,
        cmap="viridis",
        vmin=0,
        vmax=float(snap.image.max()) * clip,
        interpolation="nearest",
    )
    if boundary is not None:
        pos = boundary / snap.factor - 0.5
        ax.axhline(pos, color="white", lw=1.0)
        ax.axvline(pos, color="white", lw=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        title if title is not None else f"step {snap.step}, loss {snap.loss:.3f}", fontsize=9
    )
    if colorbar:
        plt.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def deep_snapshot(snap: DeepSnapshot, *, ax=None, clip: float = 1 / 10, title: str | None = None):
    """Draw the pooled ``|H|`` of a :class:`DeepSnapshot` with white lines between layers."""
    import matplotlib.pyplot as plt

    check_record("snap", snap, (*_SNAPSHOT, "layer_sizes"), "a DeepSnapshot")
    ax = ax or plt.subplots(figsize=(3.6, 3.4))[1]
    ax.imshow(
        snap.image,
        cmap="viridis",
        vmin=0,
        vmax=float(snap.image.max()) * clip,
        interpolation="nearest",
    )
    edge = 0
    for size in snap.layer_sizes[:-1]:
        edge += size
        ax.axhline(edge / snap.factor - 0.5, color="white", lw=0.8)
        ax.axvline(edge / snap.factor - 0.5, color="white", lw=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        title if title is not None else f"step {snap.step}, loss {snap.loss:.3g}", fontsize=9
    )
    return ax
