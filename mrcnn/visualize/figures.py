"""Figures and Axes: create, size, title, save, show.

Every plotting function of :mod:`mrcnn.visualize` gets its Axes from
:func:`open_axes` and ends with :func:`finish_figure`, which implements the
``ax`` / ``save_path`` conventions described in the :mod:`mrcnn.visualize`
package docstring. The sizing helpers (:func:`label_fontsize`,
:func:`outline_width`) scale text and lines with the Axes so that pictures
stay readable at any figure size. matplotlib is imported inside the
functions only.
"""

import math
import os

import numpy as np

#: Dots per inch of every figure :mod:`mrcnn.visualize` creates and saves.
DPI = 100

# matplotlib backends that cannot show a window: figures are returned instead.
_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def _new_axes(n, ncols, figsize, save_path):
    """A new figure with ``n`` panels on a grid of ``ncols`` columns.

    With ``save_path`` the figure is a bare ``matplotlib.figure.Figure`` (not
    registered with pyplot, so nothing to close and nothing shown); otherwise
    it comes from pyplot so that notebooks and desktop backends display it.

    Returns:
        ``(figure, list of n Axes)``; spare grid cells are removed.
    """
    nrows = max(1, math.ceil(n / ncols))
    if save_path is not None:
        from matplotlib.figure import Figure
        fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    else:
        import matplotlib.pyplot as plt
        fig = plt.figure(figsize=figsize, dpi=DPI, layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for spare in grid[n:]:
        spare.remove()
    return fig, list(grid[:n])


def _given_axes(ax, n, name):
    """Checks a caller's ``ax`` argument: one Axes (n == 1) or a sequence of n."""
    axes = [ax] if hasattr(ax, "figure") else list(np.asarray(ax, dtype=object).ravel())
    if len(axes) < n or not all(hasattr(a, "figure") for a in axes[:n]):
        raise ValueError(f"{name} draws {n} panel(s); ax must be "
                         f"{'an Axes' if n == 1 else f'a sequence of {n} Axes'}, "
                         f"got {ax!r}")
    return axes[0].figure, axes[:n]


def open_axes(ax, n, ncols, figsize, save_path, name):
    """The Axes a plotting function draws its ``n`` panels into.

    Args:
        ax: the caller's ``ax`` argument: None, one Axes (``n == 1``) or a
            sequence of at least ``n`` Axes.
        n: number of panels.
        ncols: grid columns of a new figure.
        figsize: ``(width, height)`` inches of a new figure.
        save_path: the caller's ``save_path`` (a new figure is then not
            registered with pyplot).
        name: the calling function's name, for error messages.

    Returns:
        ``(figure, list of n Axes, own)``; ``own`` is True when the figure
        is new (created here) and False when the Axes are the caller's.

    Raises:
        ValueError: ``ax`` is not an Axes or holds fewer than ``n`` of them.
    """
    if ax is not None:
        return (*_given_axes(ax, n, name), False)
    return (*_new_axes(n, ncols, figsize, save_path), True)


def finish_figure(fig, own, save_path):
    """Saves, shows or hands back a finished figure.

    With ``save_path`` the figure is written there (folders created, at
    :data:`DPI`) and the path is returned; a figure of our own is then
    cleared. Otherwise a caller's figure (``own`` False) gives None; our own
    figure is returned under a non-interactive backend (Agg, ...) and shown
    with ``plt.show()`` (returning None) under an interactive one.

    Returns:
        ``str`` path, the figure or None (see the :mod:`mrcnn.visualize`
        package docstring).
    """
    if save_path is not None:
        save_path = os.fspath(save_path)
        folder = os.path.dirname(save_path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(save_path, dpi="figure")
        if own:
            fig.clear()
        return save_path
    if not own:
        return None
    import matplotlib
    if matplotlib.get_backend().lower() in _NON_INTERACTIVE:
        return fig
    import matplotlib.pyplot as plt
    plt.show()
    return None


def axes_size_inches(ax):
    """``(width, height)`` of an Axes in inches, from its figure position."""
    pos = ax.get_position()
    w, h = ax.figure.get_size_inches()
    return pos.width * w, pos.height * h


def label_fontsize(ax):
    """Label font size (points) growing with the Axes: 8 (small) .. 14 (large).

    Big figures are usually shown scaled down (notebooks fit them to the page
    width), so their text must be larger to stay readable.
    """
    return float(np.clip(0.95 * min(axes_size_inches(ax)), 8.0, 14.0))


def outline_width(ax, image_shape, base):
    """Line width (points) for outlines: thinner when image pixels are tiny.

    Args:
        ax: the Axes showing the image.
        image_shape: ``(H, W, ...)`` of the image shown in ``ax``.
        base: width (points) when one image pixel is one point wide; the
            result is ``base`` times points per pixel, clipped to
            ``[0.6, 1.5 * base]``.
    """
    w_in, h_in = axes_size_inches(ax)
    px_pt = 72.0 * min(w_in / image_shape[1], h_in / image_shape[0])  # points per pixel
    return float(np.clip(base * px_pt, 0.6, base * 1.5))


def set_title(ax, title, notes, fontsize):
    """Title of ``ax``: ``title``, then the ``notes`` joined by " · " on a new line.

    Nothing is set when both are empty.
    """
    lines = [t for t in [title, " · ".join(notes)] if t]
    if lines:
        ax.set_title("\n".join(lines), fontsize=fontsize)
