"""Pictures of a wrong gradient: where it is wrong, beside what it should be. A renderer: a
Picture in, PNG bytes out, no grading logic.

The lecture looks at gradients as images (`plt.imshow(dlogits.detach(), cmap='gray')`); so do
these. Left: the truth. Right: your value minus the truth, on a colour scale centred on zero, so
a gradient wrong in a few rows (a lost duplicate index in dC) shows those rows and nothing else.
Tensors of more than two dimensions are drawn as (first dimension, everything else), as
`.view(n, -1)` would.
"""

from __future__ import annotations

import base64
import io

from grader.judging.results import Picture


def _grid(values: tuple[float, ...], shape: tuple[int, ...]) -> list[list[float]]:
    """Rows and columns to draw: a vector as one row, more than two dimensions as (dim 0, the rest)."""
    rows = shape[0] if len(shape) >= 2 else 1
    cols = len(values) // rows if rows else 0
    return [list(values[r * cols:(r + 1) * cols]) for r in range(rows)]


def picture_png(name: str, picture: Picture) -> bytes:
    """The truth and your value minus it, side by side, with the shape on the axes and a scale each."""
    import matplotlib  # noqa: PLC0415 - only a report with a wrong gradient draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    truth, difference = _grid(picture.truth, picture.shape), _grid(picture.difference, picture.shape)
    rows, cols = len(truth), len(truth[0]) if truth else 0
    wide = cols >= 2 * rows
    fig, axes = plt.subplots(2 if wide else 1, 1 if wide else 2, figsize=(7.5, 3.6) if wide else (7.5, 3.2))
    shape = " x ".join(str(d) for d in picture.shape)
    reach = max((abs(x) for x in picture.difference), default=0.0) or 1.0
    for ax, data, title, options in (
            (axes[0], truth, f"{name} true ({shape})", {"cmap": "gray"}),
            (axes[1], difference, "yours - true", {"cmap": "RdBu_r", "vmin": -reach, "vmax": reach})):
        image = ax.imshow(data, aspect="auto", interpolation="nearest", **options)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"{cols} columns" if len(picture.shape) <= 2 else f"{cols} (dims 1+, flattened)", fontsize=8)
        ax.set_ylabel(f"{rows} rows", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    fig.suptitle(f"{name} on {picture.case!r}", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def picture_img(name: str, picture: Picture) -> str:
    """An <img> holding the picture itself (a data URI): a page with it needs no side files."""
    data = base64.b64encode(picture_png(name, picture)).decode()
    return (f'<img alt="{name}: the truth, and your value minus it" style="max-width:100%" '
            f'src="data:image/png;base64,{data}">')
