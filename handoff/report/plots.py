"""The report's two plots as small PNGs, drawn by matplotlib's Agg renderer.

Figures are made with :class:`matplotlib.figure.Figure` and drawn on an Agg canvas,
never through ``pyplot``: no global figure state, nothing for a worker process to
leak, and no display needed (matplotlib's "Embedding in a web application server"
example). Every colour has words beside it (a legend, a text label), so a reader who
cannot tell the colours apart reads the same plot.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from handoff.report.assets import Envelope
    from handoff.report.model import SyncView

__all__ = ["sync_figure", "sync_png", "waveform_png"]

_SIZE_IN = (4.8, 1.6)
_DPI = 100
TAKE_COLOUR = "#1f4e9c"  # dark blue
NARRATION_COLOUR = "#e08a00"  # orange: apart from the blue for every common colour blindness
BAND_COLOUR = "#3a9a3a"
ERROR_COLOUR = "#c0392b"
RECUT_COLOUR = "#555555"


# Fixed margins, in inches, rather than matplotlib's constrained layout: the plots are
# all alike, and the layout solver was half the time of drawing one (measured: 0.1 s of
# 0.2 s a plot); the left margin holds the longest tick label ("narration").
_MARGINS_IN = {"left": 0.66, "right": 0.12, "bottom": 0.36, "top": 0.24}
_COLOURS = 64
"""Palette size of the PNGs: the plots are a few flat colours and their anti-aliased edges;
a palette PNG is a third of the size of the RGBA one (issue 15: a light page)."""


def _figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = _SIZE_IN
    figure = Figure(figsize=_SIZE_IN, dpi=_DPI)
    figure.subplots_adjust(
        left=_MARGINS_IN["left"] / width,
        right=1.0 - _MARGINS_IN["right"] / width,
        bottom=_MARGINS_IN["bottom"] / height,
        top=1.0 - _MARGINS_IN["top"] / height,
    )
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return figure, ax


def _png(figure: Any) -> bytes:
    """The figure drawn by Agg, as a palette PNG made by Pillow (no dithering: the plots'
    flat colours stay flat)."""
    import numpy as np
    from PIL import Image

    figure.canvas.draw()
    rgb = np.asarray(figure.canvas.buffer_rgba())[..., :3]
    image = Image.fromarray(np.ascontiguousarray(rgb)).quantize(
        colors=_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def waveform_png(take: Envelope | None, narration: Envelope | None) -> bytes:
    """The take's sound over its segment's narration, on one time axis."""
    import numpy as np

    figure, ax = _figure()
    # Two lanes on one time axis, the take above the narration, so a sound that starts
    # late or runs long shows as an edge out of line with the one below it.
    lanes = ((1.0, take, TAKE_COLOUR, "take's sound"), (-1.0, narration, NARRATION_COLOUR,
             "narration"))  # fmt: skip
    for centre, env, colour, label in lanes:
        if env is None or not env.low.size:
            ax.text(0.02, 0.5 + centre / 4, f"no {label}", transform=ax.transAxes, fontsize=7,
                    va="center")  # fmt: skip
            continue
        t = np.linspace(0.0, env.duration_s, env.low.size)
        ax.fill_between(t, centre + 0.95 * env.low, centre + 0.95 * env.high, color=colour,
                        linewidth=0, label=label)  # fmt: skip
    ax.set_ylim(-2.0, 2.0)
    ax.set_yticks([1.0, -1.0], ["take", "narration"])
    ax.set_xlabel("seconds", fontsize=7)
    ax.set_xlim(left=0.0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=6.5, frameon=False, ncols=2,
                  bbox_to_anchor=(1.0, 1.12))  # fmt: skip
    return _png(figure)


def sync_png(sync: SyncView | None) -> bytes | None:
    """:func:`sync_figure` as a PNG; None when nothing was measured."""
    drawn = sync_figure(sync)
    return None if drawn is None else _png(drawn[0])


def sync_figure(sync: SyncView | None) -> tuple[Any, Any] | None:
    """The picture's error against the narration over the take's time, the tolerance
    band shaded, and the re-cut (or out-of-tolerance) point marked and labelled, as a
    (figure, axes) pair. None when nothing was measured.

    A take too short for a series of measurements has one offset: drawn flat across
    the take and labelled so, that a flat line is not read as "no drift".
    """
    if sync is None:
        return None
    if sync.series:
        times = [t for t, _ in sync.series]
        errors = [ms for _, ms in sync.series]
        label = "picture error"
    elif sync.picture_offset_ms is not None and sync.duration_s:
        times, errors = [0.0, sync.duration_s], [sync.picture_offset_ms] * 2
        label = "one offset (drift not measured)"
    else:
        return None
    figure, ax = _figure()
    tolerance = sync.tolerance_ms
    if tolerance is not None:
        ax.axhspan(-tolerance, tolerance, color=BAND_COLOUR, alpha=0.18, linewidth=0,
                   label=f"in sync: within ±{tolerance:.0f} ms")  # fmt: skip
    ax.plot(times, errors, color=TAKE_COLOUR, linewidth=1.4, label=label)
    ax.axhline(0.0, color="#888888", linewidth=0.6)
    # Where the picture leaves the band (red, dashed) and, before it, the pause in the
    # narration to regenerate from (grey, dotted); each labelled in words.
    marks = ((sync.exceeds_at_s, "out of tolerance from", ERROR_COLOUR, "--", 0.02),
             (sync.recut_at_s, "re-cut at", RECUT_COLOUR, ":", 0.14))  # fmt: skip
    for at, said, colour, style, height in marks:
        if at is None:
            continue
        ax.axvline(at, color=colour, linewidth=1.2, linestyle=style)
        ax.annotate(f"{said} {at:.2f} s", (at, height), xycoords=("data", "axes fraction"),
                    xytext=(3, 0), textcoords="offset points", fontsize=7,
                    color=colour)  # fmt: skip
    span = max(abs(e) for e in errors)
    limit = max(span, tolerance or 0.0) * 1.25 or 1.0
    ax.set_ylim(-limit, limit)
    ax.set_xlim(0.0, max(times[-1], sync.duration_s or 0.0) or 1.0)
    ax.set_xlabel("seconds into the take", fontsize=7)
    ax.set_ylabel("ms late", fontsize=7)
    ax.legend(loc="upper right", fontsize=6.5, frameon=False, ncols=2, bbox_to_anchor=(1.0, 1.12))
    return figure, ax
