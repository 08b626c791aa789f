"""Pictures of images, instances, anchors, training curves and scores.

Matterport's ``mrcnn.visualize`` names and defaults are kept
(:func:`display_instances`, :func:`display_images`, :func:`display_top_masks`,
:func:`display_differences`, :func:`draw_boxes`, :func:`random_colors`,
:func:`apply_mask`, :func:`plot_precision_recall`); new are
:func:`display_anchors`, :func:`plot_history`, :func:`plot_lr_schedule`,
:func:`plot_cache_stats` and :func:`plot_precision_recall_iou`.

Conventions shared by every plotting function:

* Boxes are pixel boxes ``[N, (y1, x1, y2, x2)]`` with ``y2``/``x2``
  exclusive; masks are bool ``[H, W, N]`` (instances last).
* ``save_path=None``: when given, the picture is written there (PNG or any
  format matplotlib knows, chosen by the extension, at :data:`DPI` dots per
  inch, so a ``figsize=(w, h)`` figure is ``w * DPI`` by ``h * DPI`` pixels),
  no window is opened, the figure is released and the path is returned.
* ``ax=None``: draw into an existing matplotlib Axes instead of a new figure
  (functions with several panels take a sequence of Axes, one per panel);
  the caller then owns the figure and the function returns None (or the
  path when ``save_path`` is also given; then ``ax.figure`` is saved).
* With neither, a new figure is shown when the matplotlib backend can show
  one (a notebook, a desktop window) and None is returned; under a
  non-interactive backend such as Agg (headless servers, CI) the figure is
  returned instead, so it can be saved (close it with ``plt.close(fig)``),
  and ``plt.show()`` is never called.

Images may be RGB or grayscale (``[H, W]``, ``[H, W, 1]``), uint8, 16-bit or
float: values already in 0..255 (or floats in 0..1) are shown as they are,
anything else (16-bit microscopy, arbitrary floats) is contrast-stretched
between its 0.5th and 99.5th percentiles. matplotlib is imported inside the
functions, never when this package is imported.

Modules (each function lives in one; this package re-exports the public
names, so ``from mrcnn import visualize; visualize.display_instances(...)``
works as in Matterport):

* :mod:`~mrcnn.visualize.instances`: :func:`display_images`,
  :func:`display_instances`, :func:`display_top_masks`,
  :func:`display_differences`, :func:`draw_boxes`;
* :mod:`~mrcnn.visualize.anchors`: :func:`display_anchors`;
* :mod:`~mrcnn.visualize.scores`: :func:`plot_precision_recall`,
  :func:`plot_precision_recall_iou`;
* :mod:`~mrcnn.visualize.training`: :func:`plot_history`,
  :func:`plot_lr_schedule`, :func:`plot_cache_stats`;
* :mod:`~mrcnn.visualize.colors`: :func:`random_colors`, :func:`apply_mask`
  and the pixel work shared by the pictures;
* :mod:`~mrcnn.visualize.figures`: :data:`DPI`, creating, saving and
  showing figures (the ``ax`` / ``save_path`` conventions above);
* :mod:`~mrcnn.visualize.drawing`: outlines, boxes, arrows and labels shared
  by the instance, box and anchor pictures.
"""

from mrcnn.visualize.anchors import display_anchors
from mrcnn.visualize.colors import apply_mask, random_colors
from mrcnn.visualize.figures import DPI
from mrcnn.visualize.instances import (display_differences, display_images, display_instances,
                                       display_top_masks, draw_boxes)
from mrcnn.visualize.scores import plot_precision_recall, plot_precision_recall_iou
from mrcnn.visualize.training import plot_cache_stats, plot_history, plot_lr_schedule

__all__ = [
    "DPI", "random_colors", "apply_mask", "display_images", "display_instances",
    "display_top_masks", "display_differences", "draw_boxes", "display_anchors",
    "plot_precision_recall", "plot_precision_recall_iou", "plot_history",
    "plot_lr_schedule", "plot_cache_stats",
]
