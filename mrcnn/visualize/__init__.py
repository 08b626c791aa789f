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
functions, never when this module is imported.
"""

import csv
import math
import os

import numpy as np

__all__ = [
    "DPI", "random_colors", "apply_mask", "display_images", "display_instances",
    "display_top_masks", "display_differences", "draw_boxes", "display_anchors",
    "plot_precision_recall", "plot_precision_recall_iou", "plot_history",
    "plot_lr_schedule", "plot_cache_stats",
]

#: Dots per inch of every figure this module creates and saves.
DPI = 100

_NON_INTERACTIVE = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}
_TP, _FP, _FN, _GT = (0.1, 0.85, 0.2), (1.0, 0.15, 0.1), (1.0, 0.8, 0.0), (1.0, 1.0, 1.0)


# ---------------------------------------------------------------------------
# Figures: create, save, show
# ---------------------------------------------------------------------------

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


def _axes(ax, n, ncols, figsize, save_path, name):
    """``(figure, axes, own)``: the caller's axes or a new figure (own=True)."""
    if ax is not None:
        return (*_given_axes(ax, n, name), False)
    return (*_new_axes(n, ncols, figsize, save_path), True)


def _finish(fig, own, save_path):
    """Save, show or hand back a finished figure (see the module docstring)."""
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


def _axes_size_inches(ax):
    """(width, height) of an Axes in inches, from its figure position."""
    pos = ax.get_position()
    w, h = ax.figure.get_size_inches()
    return pos.width * w, pos.height * h


def _label_fontsize(ax):
    """Label font size (points) growing with the Axes: 8 (small) .. 14 (large).

    Big figures are usually shown scaled down (notebooks fit them to the page
    width), so their text must be larger to stay readable.
    """
    return float(np.clip(0.95 * min(_axes_size_inches(ax)), 8.0, 14.0))


# ---------------------------------------------------------------------------
# Colours and pixels
# ---------------------------------------------------------------------------

def random_colors(N, bright=True, seed=0):
    """``N`` well-separated colours: evenly spaced hues in a shuffled order.

    Args:
        N: number of colours (>= 0).
        bright: full brightness if True, else 70 %.
        seed: seed of the shuffle; the same seed gives the same colours
            (Matterport shuffled at random on every call).

    Returns:
        list of ``N`` ``(r, g, b)`` tuples of floats in [0, 1].
    """
    if isinstance(N, bool) or int(N) != N or N < 0:
        raise ValueError(f"N must be a non-negative integer, got {N!r}")
    from matplotlib.colors import hsv_to_rgb
    n = int(N)
    hsv = np.stack([np.arange(n) / max(n, 1), np.ones(n),
                    np.full(n, 1.0 if bright else 0.7)], axis=1)
    rgb = hsv_to_rgb(hsv.reshape(1, n, 3)).reshape(n, 3)
    rgb = rgb[np.random.default_rng(seed).permutation(n)]
    return [tuple(float(v) for v in c) for c in rgb]


def apply_mask(image, mask, color, alpha=0.5):
    """Blends ``color`` into ``image`` where ``mask`` is set, in place.

    Each masked pixel becomes ``(1 - alpha) * pixel + alpha * 255 * color``
    (rounded to the nearest integer for integer images), as in Matterport.

    Args:
        image: ``[H, W, C]`` array with values on a 0..255 scale; modified in
            place.
        mask: bool (or 0/1) ``[H, W]``.
        color: ``C`` (or more; extra entries such as alpha are ignored) floats
            in [0, 1].
        alpha: opacity of the colour, in [0, 1].

    Returns:
        ``image`` (the same array).
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(f"image must be a numpy array [H, W, C], got "
                         f"{getattr(image, 'shape', type(image))}")
    mask = np.asarray(mask).astype(bool, copy=False)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be [H, W] = {image.shape[:2]}, got {mask.shape}")
    color = np.asarray(color, dtype=np.float64).reshape(-1)
    if color.size < image.shape[2]:
        raise ValueError(f"color needs {image.shape[2]} channels, got {color.size}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    blended = (1.0 - alpha) * image[mask] + alpha * 255.0 * color[:image.shape[2]]
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        blended = np.clip(np.rint(blended), info.min, info.max)
    image[mask] = blended
    return image


def _display_rgb(image):
    """Any supported image -> uint8 ``[H, W, 3]`` for display.

    Values in 0..255 (or floats in 0..1, or bool) keep their brightness;
    other ranges are stretched between the 0.5th and 99.5th percentiles.
    Gray (``[H, W]``, ``[H, W, 1]``, gray+alpha) is repeated to RGB; RGBA
    drops alpha.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (1, 2):
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be [H, W] or [H, W, C] with C in 1..4, "
                         f"got shape {image.shape}")
    if image.dtype == np.uint8:
        out = image
    elif image.dtype == bool:
        out = image.astype(np.uint8) * np.uint8(255)
    elif np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating):
        values = image.astype(np.float64)
        finite = values[np.isfinite(values)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        if np.issubdtype(image.dtype, np.floating) and lo >= 0 and hi <= 1:
            values = values * 255.0
        elif not (lo >= 0 and hi <= 255):
            lo, hi = np.percentile(finite, [0.5, 99.5])
            values = (values - lo) * (255.0 / max(hi - lo, 1e-12))
        out = np.rint(np.clip(np.nan_to_num(values), 0, 255)).astype(np.uint8)
    else:
        raise TypeError(f"unsupported image dtype {image.dtype}; expected bool, an "
                        f"integer or a float type")
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


def _top_instance(masks):
    """int ``[H, W]``: index of the last instance covering each pixel, -1 if none."""
    n = masks.shape[2]
    if n == 0:
        return np.full(masks.shape[:2], -1, dtype=np.int64)
    last = n - 1 - np.argmax(masks[:, :, ::-1], axis=2)
    return np.where(masks.any(axis=2), last, -1)


def _class_colors(n):
    """``n`` distinct line colours: matplotlib's tab10, then evenly spaced hues."""
    from matplotlib import colormaps
    if n <= 10:
        return [colormaps["tab10"](i)[:3] for i in range(n)]
    return random_colors(n, bright=False)


def _blend_instances(rgb, masks, colors, alphas):
    """Fills every instance with its colour (later instances on top).

    Args:
        rgb: uint8 ``[H, W, 3]``.
        masks: bool ``[H, W, N]``.
        colors: float ``[N, 3]`` in [0, 1].
        alphas: float ``[N]`` fill opacities (0 = no fill).

    Returns:
        new uint8 ``[H, W, 3]``: ``round((1 - a) * pixel + a * 255 * colour)``
        under each instance, the input elsewhere.
    """
    top = _top_instance(masks)
    out = rgb.copy()
    sel = top >= 0
    k = top[sel]
    a = alphas[k][:, None]
    out[sel] = np.rint((1.0 - a) * rgb[sel] + a * 255.0 * colors[k]).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------
# Drawing pieces shared by the instance pictures
# ---------------------------------------------------------------------------

def _as_masks(masks, shape, n, name="masks"):
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[:2] != tuple(shape) or masks.shape[2] != n:
        raise ValueError(f"{name} must be bool [H, W, N] = [{shape[0]}, {shape[1]}, {n}], "
                         f"got shape {masks.shape}")
    return masks.astype(bool, copy=False)


def _as_boxes(boxes, name="boxes"):
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must be [N, (y1, x1, y2, x2)], got shape {boxes.shape}")
    return boxes


def _show_image(ax, rgb):
    """Shows an RGB uint8 image pixel-exactly (nearest neighbour), axes off."""
    h, w = rgb.shape[:2]
    ax.imshow(rgb, interpolation="nearest", resample=False)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()


def _linewidth(ax, image_shape, base):
    """Line width (points) for outlines: thinner when image pixels are tiny."""
    w_in, h_in = _axes_size_inches(ax)
    px_pt = 72.0 * min(w_in / image_shape[1], h_in / image_shape[0])  # points per pixel
    return float(np.clip(base * px_pt, 0.6, base * 1.5))


def _draw_contours(ax, masks, colors, keep, linewidth):
    """Outlines of ``masks[..., keep]`` as one LineCollection.

    Each instance is traced on its own bounding-box crop (padded by one
    pixel, so masks touching the border close), in pixel-centre coordinates.
    """
    from matplotlib.collections import LineCollection
    from skimage.measure import find_contours
    from mrcnn.data.boxes import extract_bboxes

    h, w = masks.shape[:2]
    idx = np.flatnonzero(keep & masks.any(axis=(0, 1)))
    bboxes = extract_bboxes(masks[:, :, idx]) if idx.size else np.zeros((0, 4), int)
    segments, seg_colors = [], []
    for i, (y1, x1, y2, x2) in zip(idx, bboxes):
        y0, x0 = max(y1 - 1, 0), max(x1 - 1, 0)
        crop = np.pad(masks[y0:min(y2 + 1, h), x0:min(x2 + 1, w), i], 1)
        for c in find_contours(crop.astype(np.uint8), 0.5):
            segments.append(c[:, ::-1] + (x0 - 1, y0 - 1))
            seg_colors.append(colors[i])
    if segments:
        from matplotlib.patheffects import withStroke
        lines = LineCollection(segments, colors=seg_colors, linewidths=linewidth, zorder=3)
        # A dark rim under each outline keeps it visible on any background.
        lines.set_path_effects([withStroke(linewidth=linewidth * 2.0,
                                           foreground=(0, 0, 0, 0.6))])
        ax.add_collection(lines)


def _draw_rectangles(ax, boxes, colors, linestyle, linewidth, zorder=4):
    """Box outlines (pixel boxes, y2/x2 exclusive) as one PatchCollection."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle
    if len(boxes) == 0:
        return
    rects = [Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1) for y1, x1, y2, x2 in boxes]
    ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor=list(colors),
                                      linestyle=linestyle, linewidth=linewidth,
                                      zorder=zorder))


def _place_labels(ax, boxes, texts, colors, order, image_shape, max_labels):
    """Writes ``texts`` at their boxes, skipping labels that would overlap.

    Labels go just above a box's top-left corner, else inside it, else below
    it; a label that fits nowhere without covering an earlier one (in
    ``order``) or leaving the image is dropped. Boxes entirely off the image
    get no label and are not counted. Nothing is drawn when more
    than ``max_labels`` texts are given.

    Returns:
        ``(drawn, hidden, over_limit)``: label counts, and whether all were
        hidden for exceeding ``max_labels``.
    """
    h, w = image_shape[:2]
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    visible = (b[:, 2] > 0) & (b[:, 3] > 0) & (b[:, 0] < h) & (b[:, 1] < w)
    wanted = [i for i in order if texts[i] and visible[i]]   # boxes off the image: no label
    if not wanted:
        return 0, 0, False
    if max_labels is not None and len(wanted) > max_labels:
        return 0, len(wanted), True
    fontsize = _label_fontsize(ax)
    w_in, h_in = _axes_size_inches(ax)
    pt_to_data = 1.0 / (72.0 * min(w_in / w, h_in / h))  # data units per point
    char_w, line_h, pad = 0.62 * fontsize, 1.25 * fontsize, 3.0
    placed = np.zeros((0, 4))
    drawn = 0
    for i in wanted:
        y1, x1, y2, x2 = b[i]
        tw = (char_w * len(texts[i]) + 2 * pad) * pt_to_data
        th = (line_h + 2 * pad) * pt_to_data
        x0 = min(max(x1 - 0.5, -0.5), w - 0.5 - tw)
        # (anchor y, label grows up?) above the box, inside its top, below it.
        for y, up in ((y1 - 0.5, True), (y1 - 0.5, False), (y2 - 0.5, False)):
            top = y - th if up else y
            rect = np.array([x0, top, x0 + tw, top + th])
            inside = rect[1] >= -0.5 and rect[3] <= h - 0.5 and rect[0] >= -0.5
            clash = ((placed[:, 0] < rect[2]) & (rect[0] < placed[:, 2])
                     & (placed[:, 1] < rect[3]) & (rect[1] < placed[:, 3])).any()
            if inside and not clash:
                placed = np.vstack([placed, rect])
                # Offsets in points keep the label flush with the box at any size.
                ax.annotate(texts[i], (x0, y), xytext=(pad, pad if up else -pad),
                            textcoords="offset points", color="white", fontsize=fontsize,
                            va="bottom" if up else "top", ha="left", zorder=6,
                            annotation_clip=True, clip_on=True,
                            bbox=dict(facecolor="black", alpha=0.6, pad=pad * 0.6,
                                      edgecolor=colors[i], linewidth=1.2))
                drawn += 1
                break
    return drawn, len(wanted) - drawn, False


def _render_instances(ax, rgb, boxes, masks, colors, captions, order, fill_alpha,
                      show_mask, show_bbox, box_keep, max_labels, outline_keep=None):
    """Image + filled/outlined masks + dashed boxes + labels on one Axes.

    ``fill_alpha`` [N] is the fill opacity per instance, ``box_keep`` /
    ``outline_keep`` (default all) [N] bool select the boxes / mask outlines
    drawn, ``order`` the label priority.

    Returns:
        list of title notes about hidden labels (possibly empty).
    """
    n = len(colors)
    colors = (np.asarray(colors, dtype=np.float64).reshape(n, -1)[:, :3] if n
              else np.zeros((0, 3)))
    if show_mask and masks is not None and n:
        rgb = _blend_instances(rgb, masks, colors, np.asarray(fill_alpha, np.float64))
    _show_image(ax, rgb)
    lw = _linewidth(ax, rgb.shape, 1.2)
    if show_mask and masks is not None and n:
        keep = np.ones(n, bool) if outline_keep is None else np.asarray(outline_keep, bool)
        _draw_contours(ax, masks, colors, keep, lw)
    if show_bbox and n:
        keep = np.asarray(box_keep, bool)
        _draw_rectangles(ax, boxes[keep], colors[keep], "--", lw)
    drawn, hidden, over_limit = _place_labels(ax, boxes, captions, colors, order, rgb.shape,
                                              max_labels)
    notes = []
    if over_limit:
        notes.append(f"{hidden} labels hidden (more than max_labels={max_labels})")
    elif hidden:
        notes.append(f"{hidden} of {drawn + hidden} labels hidden to avoid overlap")
    return notes


def _count(n, noun="instance"):
    """``"1 instance"``, ``"3 instances"``."""
    return f"{int(n)} {noun}{'' if int(n) == 1 else 's'}"


def _set_title(ax, title, notes, fontsize):
    lines = [t for t in [title, " · ".join(notes)] if t]
    if lines:
        ax.set_title("\n".join(lines), fontsize=fontsize)


# ---------------------------------------------------------------------------
# Images and instances
# ---------------------------------------------------------------------------

def display_images(images, titles=None, cols=4, cmap=None, norm=None,
                   interpolation=None, figsize=None, ax=None, save_path=None):
    """Shows images side by side on a grid.

    Args:
        images: sequence of images (``[H, W]`` shown with ``cmap``, default
            gray, scaled to their own range; ``[H, W, 1|3|4]`` as in the module
            docstring).
        titles: optional one title per image.
        cols: grid columns.
        cmap, norm, interpolation: passed to ``imshow`` for 2-D images.
        figsize: inches; default 14 wide, rows sized to the first image.
        ax: optional sequence of ``len(images)`` Axes.
        save_path: optional file to write (see module docstring).

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    images = list(images)
    if not images:
        raise ValueError("display_images needs at least one image, got none")
    titles = list(titles) if titles is not None else [""] * len(images)
    if len(titles) != len(images):
        raise ValueError(f"titles has {len(titles)} entries for {len(images)} images")
    cols = max(1, min(int(cols), len(images)))
    rows = math.ceil(len(images) / cols)
    if figsize is None:
        first = np.asarray(images[0])
        aspect = first.shape[0] / max(first.shape[1], 1)
        figsize = (14, min(14 / cols * aspect * rows + 0.4 * rows, 40))
    fig, axes, own = _axes(ax, len(images), cols, figsize, save_path, "display_images")
    for a, image, title in zip(axes, images, titles):
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2:
            a.imshow(image.astype(np.float32) if image.dtype == bool else image,
                     cmap=cmap or "gray", norm=norm, interpolation=interpolation)
        else:
            a.imshow(_display_rgb(image), interpolation=interpolation)
        a.set_title(title, fontsize=10)
        a.set_axis_off()
    return _finish(fig, own, save_path)


def _instance_captions(class_ids, class_names, scores, n):
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    if class_ids.size != n:
        raise ValueError(f"class_ids has {class_ids.size} entries for {n} instances")
    bad = (class_ids < 0) | (class_ids >= len(class_names))
    if bad.any():
        raise ValueError(f"class id {class_ids[bad][0]} has no entry in class_names "
                         f"({len(class_names)} names)")
    names = [str(class_names[c]) for c in class_ids]
    if scores is None:
        return names
    return [f"{name} {s:.2f}" for name, s in zip(names, scores)]


def display_instances(image, boxes, masks, class_ids, class_names, scores=None,
                      title="", figsize=(16, 16), ax=None, show_mask=True,
                      show_bbox=True, colors=None, captions=None, save_path=None,
                      alpha=0.5, max_labels=60):
    """Draws instances over an image: filled, outlined masks, dashed boxes, labels.

    Every instance gets a colour (``colors`` or :func:`random_colors`). Its
    mask pixels are blended ``round((1 - alpha) * pixel + alpha * 255 *
    colour)`` (the topmost, i.e. last, instance wins where masks overlap) and
    outlined in the same colour; its box is dashed. Labels (``captions``, by
    default ``"class score"``) sit on a dark, semi-transparent box at the
    box's top-left corner, placed by decreasing score; a label that would
    cover another is dropped, and with more than ``max_labels`` instances no
    labels are drawn. The title says how many labels were hidden.

    Args:
        image: ``[H, W]`` or ``[H, W, C]`` image (see module docstring).
        boxes: ``[N, (y1, x1, y2, x2)]`` pixel boxes, or None to take the
            masks' bounding boxes.
        masks: bool ``[H, W, N]`` (or None when ``show_mask`` is False).
        class_ids: int ``[N]``.
        class_names: names indexed by class id (``Dataset.class_names``).
        scores: optional float ``[N]``.
        title: figure title.
        figsize: inches, for a new figure.
        ax: optional Axes to draw into.
        show_mask: fill and outline the masks.
        show_bbox: draw the boxes.
        colors: optional ``N`` RGB(A) colours in [0, 1].
        captions: optional ``N`` strings replacing the default labels ("" or
            None for no label).
        save_path: optional file to write.
        alpha: mask fill opacity in [0, 1].
        max_labels: draw no labels above this many instances (None: no limit).

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    rgb = _display_rgb(image)
    if boxes is None:
        if masks is None:
            raise ValueError("display_instances needs boxes or masks, got neither")
        from mrcnn.data.boxes import extract_bboxes
        boxes = extract_bboxes(np.asarray(masks))
    boxes = _as_boxes(boxes)
    n = boxes.shape[0]
    if masks is not None:
        masks = _as_masks(masks, rgb.shape[:2], n)
    elif show_mask:
        raise ValueError("masks is None; pass masks or show_mask=False")
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.size != n:
            raise ValueError(f"scores has {scores.size} entries for {n} instances")
    if captions is None:
        captions = _instance_captions(class_ids, class_names, scores, n)
    elif len(captions) != n:
        raise ValueError(f"captions has {len(captions)} entries for {n} instances")
    colors = random_colors(n) if colors is None else list(colors)
    if len(colors) != n:
        raise ValueError(f"colors has {len(colors)} entries for {n} instances")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")

    fig, (a,), own = _axes(ax, 1, 1, figsize, save_path, "display_instances")
    order = np.argsort(-scores, kind="stable") if scores is not None else np.arange(n)
    notes = _render_instances(a, rgb, boxes, masks, colors, list(captions), order,
                              np.full(n, alpha), show_mask, show_bbox, np.ones(n, bool),
                              max_labels)
    if n == 0:
        notes.insert(0, "no instances")
    elif max_labels is not None and n > max_labels:
        notes = [f"{_count(n)}, labels hidden (more than max_labels={max_labels})"]
    _set_title(a, title, notes, _label_fontsize(a) + 2)
    return _finish(fig, own, save_path)


def display_top_masks(image, mask, class_ids, class_names, limit=4, figsize=None,
                      ax=None, save_path=None):
    """The image, then the instances of its ``limit`` largest classes.

    Each class panel shows that class's instances in distinct colours on
    black (touching instances stay distinguishable); classes are ranked by
    total mask area. The title gives the instance count and area share.

    Args:
        image: ``[H, W]`` or ``[H, W, C]`` image.
        mask: bool ``[H, W, N]``.
        class_ids: int ``[N]``.
        class_names: names indexed by class id.
        limit: most class panels to show.
        figsize, ax (sequence of ``1 + panels`` Axes), save_path: see
            :func:`display_images`.

    Returns:
        as :func:`display_images`.
    """
    rgb = _display_rgb(image)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    mask = _as_masks(mask, rgb.shape[:2], class_ids.size, "mask")
    _instance_captions(class_ids, class_names, None, class_ids.size)  # validates ids
    area = mask.sum(axis=(0, 1)).astype(np.float64)
    uniq = np.unique(class_ids)
    class_area = np.array([area[class_ids == c].sum() for c in uniq])
    top = uniq[np.argsort(-class_area, kind="stable")][:max(int(limit), 0)]
    panels, titles = [rgb], [f"{rgb.shape[0]} x {rgb.shape[1]}, {_count(class_ids.size)}"]
    black = np.zeros_like(rgb)
    for c in top:
        sel = class_ids == c
        colors = np.asarray(random_colors(int(sel.sum())))
        panels.append(_blend_instances(black, mask[:, :, sel], colors,
                                       np.ones(int(sel.sum()))))
        share = 100.0 * area[sel].sum() / max(rgb.shape[0] * rgb.shape[1], 1)
        titles.append(f"{class_names[c]}: {_count(sel.sum())}, {share:.1f}% of pixels")
    return display_images(panels, titles=titles, cols=len(panels), figsize=figsize,
                          interpolation="nearest", ax=ax, save_path=save_path)


def _trim_padding(boxes, *others):
    """Drops all-zero box rows (padding) with the matching entries of ``others``."""
    keep = ~np.all(boxes == 0, axis=1)
    out = [boxes[keep]]
    for o in others:
        o = np.asarray(o)
        out.append(o[..., keep] if o.ndim == 3 else o[keep])
    return out


def display_differences(image, gt_box, gt_class_id, gt_mask, pred_box, pred_class_id,
                        pred_score, pred_mask, class_names, title="", ax=None,
                        show_mask=True, show_box=True, iou_threshold=0.5,
                        score_threshold=0.5, figsize=(16, 16), save_path=None,
                        max_labels=60):
    """Ground truth and predictions on one image, coloured by match.

    Matching is :func:`mrcnn.evaluation.metrics.compute_matches` (greedy by score, same
    class, mask IoU >= ``iou_threshold``; ``score_threshold`` is passed on as
    in Matterport, where it is a second minimum IoU, not a minimum score).
    Colours: green = matched prediction (true positive, caption ``score /
    IoU``), red = unmatched prediction (false positive, caption ``score /
    best IoU``), yellow = missed ground truth (false negative); the ground
    truth of a match is outlined in white, unfilled. All-zero box rows are
    padding and ignored.

    Args:
        image: ``[H, W]`` or ``[H, W, C]``.
        gt_box, gt_class_id, gt_mask: ``[G, 4]`` pixel boxes, int ``[G]``,
            bool ``[H, W, G]``.
        pred_box, pred_class_id, pred_score, pred_mask: ``[P, 4]``, int
            ``[P]``, float ``[P]``, bool ``[H, W, P]``.
        class_names: names indexed by class id (validated, not drawn).
        title, ax, figsize, save_path, max_labels: as in
            :func:`display_instances`.
        show_mask, show_box: draw masks / boxes.
        iou_threshold, score_threshold: see above.

    Returns:
        as :func:`display_instances`.
    """
    from matplotlib.patches import Patch
    from mrcnn.evaluation.metrics import compute_matches

    gt_box, gt_class_id, gt_mask = _trim_padding(_as_boxes(gt_box, "gt_box"),
                                                 gt_class_id, gt_mask)
    pred_box, pred_class_id, pred_score, pred_mask = _trim_padding(
        _as_boxes(pred_box, "pred_box"), pred_class_id, pred_score, pred_mask)
    _instance_captions(gt_class_id, class_names, None, gt_box.shape[0])
    _instance_captions(pred_class_id, class_names, None, pred_box.shape[0])
    gt_match, pred_match, overlaps = compute_matches(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold)
    order = np.argsort(-np.asarray(pred_score, np.float64), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    match = pred_match[rank]                       # gt index per prediction, input order
    iou = np.zeros(order.size)
    if overlaps.size:
        ov = overlaps[rank]                        # [P, G] IoUs, input order
        iou = np.where(match >= 0, ov[np.arange(order.size), np.maximum(match, 0)],
                       ov.max(axis=1))
    g, p = gt_box.shape[0], pred_box.shape[0]
    gt_hit = gt_match >= 0
    colors = [(_GT if hit else _FN) for hit in gt_hit] + \
             [(_TP if m >= 0 else _FP) for m in match]
    captions = ["" if hit else "missed" for hit in gt_hit] + \
               [f"{s:.2f} / {v:.2f}" for s, v in zip(pred_score, iou)]
    rgb = _display_rgb(image)
    masks = np.concatenate([_as_masks(gt_mask, rgb.shape[:2], g, "gt_mask"),
                            _as_masks(pred_mask, rgb.shape[:2], p, "pred_mask")], axis=2)
    fill = np.concatenate([np.where(gt_hit, 0.0, 0.45), np.full(p, 0.45)])
    box_keep = np.concatenate([~gt_hit, np.ones(p, bool)])
    # Labels: false positives and misses first, then matches by score.
    label_order = np.concatenate([g + order[match[order] < 0], np.flatnonzero(~gt_hit),
                                  g + order[match[order] >= 0]]).astype(int)

    fig, (a,), own = _axes(ax, 1, 1, figsize, save_path, "display_differences")
    notes = _render_instances(a, rgb, np.concatenate([gt_box, pred_box]), masks, colors,
                              captions, label_order, fill, show_mask, show_box, box_keep,
                              max_labels)
    tp = int((match >= 0).sum())
    summary = (f"{tp} matched, {p - tp} false positive, {int((~gt_hit).sum())} missed "
               f"(IoU >= {iou_threshold:g}); captions: score / IoU")
    _set_title(a, title or "Ground truth and detections", [summary] + notes,
               _label_fontsize(a) + 2)
    handles = [Patch(facecolor=_TP, label="matched prediction"),
               Patch(facecolor=_FP, label="false positive"),
               Patch(facecolor=_FN, label="missed ground truth"),
               Patch(facecolor="white", edgecolor="black",
                     label="ground truth of a match (outline)")]
    a.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4,
             frameon=False, fontsize=_label_fontsize(a))
    return _finish(fig, own, save_path)


def draw_boxes(image, boxes=None, refined_boxes=None, masks=None, captions=None,
               visibilities=None, title="", ax=None, figsize=(12, 12), save_path=None,
               max_labels=60):
    """Boxes, optionally with their refinements, masks and captions.

    ``boxes`` are drawn dashed; ``refined_boxes`` solid, with an arrow from
    each box's centre to its refined box's centre (the refinement the network
    or the targets apply).

    Args:
        image: ``[H, W]`` or ``[H, W, C]``.
        boxes: ``[N, (y1, x1, y2, x2)]`` pixel boxes (e.g. anchors, proposals).
        refined_boxes: ``[N, 4]``, the same boxes after refinement.
        masks: optional bool ``[H, W, N]``, filled in the box colours.
        captions: optional ``N`` strings written at the (refined) boxes.
        visibilities: optional int ``[N]``: 0 hidden, 1 faint (gray, dotted),
            2 prominent (coloured; the default).
        title, ax, figsize, save_path, max_labels: as in
            :func:`display_instances`.

    Returns:
        as :func:`display_instances`.
    """
    if boxes is None and refined_boxes is None:
        raise ValueError("draw_boxes needs boxes or refined_boxes, got neither")
    boxes = _as_boxes(boxes) if boxes is not None else None
    refined = _as_boxes(refined_boxes, "refined_boxes") if refined_boxes is not None else None
    n = (boxes if boxes is not None else refined).shape[0]
    if boxes is not None and refined is not None and refined.shape[0] != n:
        raise ValueError(f"boxes has {n} rows but refined_boxes has {refined.shape[0]}")
    vis = np.full(n, 2) if visibilities is None else np.asarray(visibilities).reshape(-1)
    if vis.size != n or not np.isin(vis, (0, 1, 2)).all():
        raise ValueError(f"visibilities must be {n} values in (0, 1, 2), got {vis!r}")
    if captions is not None and len(captions) != n:
        raise ValueError(f"captions has {len(captions)} entries for {n} boxes")
    rgb = _display_rgb(image)
    masks = _as_masks(masks, rgb.shape[:2], n) if masks is not None else None
    colors = np.asarray(random_colors(n)).reshape(n, 3)
    colors[vis == 1] = 0.6
    label_boxes = refined if refined is not None else boxes

    fig, (a,), own = _axes(ax, 1, 1, figsize, save_path, "draw_boxes")
    shown = vis > 0
    texts = [c if (captions is not None and shown[i]) else "" for i, c in
             enumerate(captions if captions is not None else [""] * n)]
    notes = _render_instances(a, rgb, label_boxes, masks, colors, texts,
                              np.flatnonzero(vis == 2).tolist()
                              + np.flatnonzero(vis == 1).tolist(),
                              np.where(shown, 0.4, 0.0), masks is not None, False,
                              shown, max_labels, outline_keep=shown)
    lw = _linewidth(a, rgb.shape, 1.5)
    for level, style, width in ((1, ":", lw * 0.7), (2, None, lw)):
        sel = vis == level
        if boxes is not None:
            _draw_rectangles(a, boxes[sel], colors[sel],
                             "--" if refined is not None else (style or "-"), width)
        if refined is not None:
            _draw_rectangles(a, refined[sel], colors[sel], style or "-", width)
    if boxes is not None and refined is not None and shown.any():
        c0 = (boxes[shown, :2] + boxes[shown, 2:]) / 2 - 0.5
        c1 = (refined[shown, :2] + refined[shown, 2:]) / 2 - 0.5
        a.quiver(c0[:, 1], c0[:, 0], c1[:, 1] - c0[:, 1], c1[:, 0] - c0[:, 0],
                 color=colors[shown], angles="xy", scale_units="xy", scale=1,
                 width=0.003, headwidth=4, headlength=5, zorder=5)
    _set_title(a, title, notes, _label_fontsize(a) + 2)
    return _finish(fig, own, save_path)


def display_anchors(image, anchors, rpn_match=None, rpn_bbox=None,
                    bbox_std_dev=(0.1, 0.1, 0.2, 0.2), gt_boxes=None, max_negatives=30,
                    title="", figsize=(12, 12), ax=None, save_path=None, seed=0):
    """Anchors over an image: their sizes, or the RPN training targets.

    Without ``rpn_match``: one anchor of every distinct (size, ratio), the
    one centred nearest the image centre, coloured by size, so the anchor
    scales can be compared with the objects (e.g. cell diameters).

    With ``rpn_match`` (from :func:`mrcnn.data.rpn_targets.rpn_targets`):
    positive anchors in colour and, when ``rpn_bbox`` is given, their refined
    boxes and refinement arrows (as :func:`draw_boxes`); up to
    ``max_negatives`` randomly chosen negative anchors as faint dotted boxes;
    ``gt_boxes`` in white. The title counts positives, negatives, neutrals.

    The view grows beyond the image when anchors stick out of it.

    Args:
        image: ``[H, W]`` or ``[H, W, C]``.
        anchors: ``[A, (y1, x1, y2, x2)]`` pixel anchors.
        rpn_match: optional int ``[A]``: 1 positive, -1 negative, 0 neutral.
        rpn_bbox: optional ``[>= P, (dy, dx, log(dh), log(dw))]`` deltas of the
            ``P`` positives in order, divided by ``bbox_std_dev``.
        bbox_std_dev: Config.RPN_BBOX_STD_DEV.
        gt_boxes: optional ``[G, 4]`` pixel ground-truth boxes.
        max_negatives: most negative anchors drawn.
        title, figsize, ax, save_path: as in :func:`display_instances`.
        seed: seed of the negative sample.

    Returns:
        as :func:`display_instances`.
    """
    from matplotlib.patches import Patch
    from mrcnn.data.boxes import apply_box_deltas

    rgb = _display_rgb(image)
    h, w = rgb.shape[:2]
    anchors = _as_boxes(anchors, "anchors")
    fig, (a,), own = _axes(ax, 1, 1, figsize, save_path, "display_anchors")
    _show_image(a, rgb)
    lw = _linewidth(a, rgb.shape, 1.5)
    drawn = [np.array([[0, 0, h, w]], np.float64)]
    if rpn_match is None:
        sizes = np.round(anchors[:, 2:] - anchors[:, :2], 1)
        uniq, inverse = np.unique(sizes, axis=0, return_inverse=True)
        centre = (anchors[:, :2] + anchors[:, 2:]) / 2
        dist = np.hypot(centre[:, 0] - h / 2, centre[:, 1] - w / 2)
        pick = np.array([np.flatnonzero(inverse == k)[np.argmin(dist[inverse == k])]
                         for k in range(len(uniq))], dtype=int)
        scale = np.round(np.sqrt(uniq[:, 0] * uniq[:, 1]))
        levels = np.unique(scale)
        palette = np.asarray(random_colors(len(levels)))
        colors = palette[np.searchsorted(levels, scale)]
        _draw_rectangles(a, anchors[pick], colors, "-", lw)
        drawn.append(anchors[pick])
        a.legend(handles=[Patch(facecolor="none", edgecolor=c, linewidth=2,
                                label=f"{s:g} px") for s, c in zip(levels, palette)],
                 loc="upper right", title="anchor scale", fontsize=_label_fontsize(a))
        notes = [f"{len(anchors)} anchors; one of each size and ratio shown, at the centre"]
    else:
        match = np.asarray(rpn_match).reshape(-1)
        if match.size != anchors.shape[0]:
            raise ValueError(f"rpn_match has {match.size} entries for "
                             f"{anchors.shape[0]} anchors")
        pos, neg = np.flatnonzero(match == 1), np.flatnonzero(match == -1)
        rng = np.random.default_rng(seed)
        shown_neg = rng.choice(neg, size=min(len(neg), max(int(max_negatives), 0)),
                               replace=False) if len(neg) else neg
        _draw_rectangles(a, anchors[shown_neg], [(0.75, 0.75, 0.75)] * len(shown_neg),
                         ":", lw * 0.6)
        colors = np.asarray(random_colors(len(pos))).reshape(-1, 3)
        drawn += [anchors[shown_neg], anchors[pos]]
        if rpn_bbox is not None and len(pos):
            deltas = np.asarray(rpn_bbox, np.float64).reshape(-1, 4)
            if deltas.shape[0] < len(pos):
                raise ValueError(f"rpn_bbox has {deltas.shape[0]} rows for "
                                 f"{len(pos)} positive anchors")
            refined = apply_box_deltas(anchors[pos], deltas[:len(pos)]
                                       * np.asarray(bbox_std_dev, np.float64))
            _draw_rectangles(a, anchors[pos], colors, "--", lw)
            _draw_rectangles(a, refined, colors, "-", lw)
            c0 = (anchors[pos, :2] + anchors[pos, 2:]) / 2 - 0.5
            c1 = (refined[:, :2] + refined[:, 2:]) / 2 - 0.5
            a.quiver(c0[:, 1], c0[:, 0], c1[:, 1] - c0[:, 1], c1[:, 0] - c0[:, 0],
                     color=colors, angles="xy", scale_units="xy", scale=1, width=0.003,
                     headwidth=4, headlength=5, zorder=5)
            drawn.append(refined)
        else:
            _draw_rectangles(a, anchors[pos], colors, "-", lw)
        notes = [f"{len(pos)} positive, {len(neg)} negative ({len(shown_neg)} shown), "
                 f"{int((match == 0).sum())} neutral of {match.size} anchors"]
    if gt_boxes is not None:
        gt = _as_boxes(gt_boxes, "gt_boxes")
        _draw_rectangles(a, gt, [(1.0, 1.0, 1.0)] * len(gt), "-", lw * 1.6, zorder=3)
        drawn.append(gt)
    every = np.concatenate(drawn)
    y0, x0 = every[:, :2].min(axis=0) - 0.5
    y1, x1 = every[:, 2:].max(axis=0) - 0.5
    a.set_xlim(x0 - 1, x1 + 1)
    a.set_ylim(y1 + 1, y0 - 1)
    a.set_axis_on()
    a.tick_params(labelsize=_label_fontsize(a) * 0.8)
    _set_title(a, title, notes, _label_fontsize(a) + 2)
    return _finish(fig, own, save_path)


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------

def plot_precision_recall(AP, precisions, recalls, figsize=(6, 6), ax=None,
                          save_path=None):
    """Precision-recall curve of :func:`mrcnn.evaluation.metrics.compute_ap` (Matterport).

    Args:
        AP: the average precision (shown in the title).
        precisions, recalls: the ``[Npred + 2]`` arrays from ``compute_ap``.
        figsize, ax, save_path: see the module docstring.

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    p = np.asarray(precisions, np.float64).reshape(-1)
    r = np.asarray(recalls, np.float64).reshape(-1)
    if p.shape != r.shape:
        raise ValueError(f"precisions and recalls differ in length: {p.size} vs {r.size}")
    fig, (a,), own = _axes(ax, 1, 1, figsize, save_path, "plot_precision_recall")
    # Precision p[i] holds on the recall interval (r[i-1], r[i]]: the area
    # under this step line is the AP.
    a.step(r, p, where="pre", color="tab:blue", linewidth=2)
    a.fill_between(r, p, step="pre", color="tab:blue", alpha=0.15)
    a.set(xlim=(0, 1.05), ylim=(0, 1.05), xlabel="recall", ylabel="precision")
    a.set_title(f"Precision-recall curve, AP@50 = {float(AP):.3f}")
    a.grid(alpha=0.3)
    return _finish(fig, own, save_path)


def _instance_stack(masks):
    """bool ``[H, W, N]`` from masks or an integer label image (increasing label)."""
    masks = np.asarray(masks)
    if masks.ndim == 2:
        labels = np.unique(masks[masks > 0])
        return masks[:, :, None] == labels[None, None, :]
    if masks.ndim != 3:
        raise ValueError(f"masks must be [H, W, N] or a label image [H, W], got "
                         f"shape {masks.shape}")
    return masks.astype(bool, copy=False)


def plot_precision_recall_iou(gt_masks, gt_class_ids, pred_masks, pred_class_ids,
                              class_names=None, thresholds=None, title="",
                              figsize=(15, 4.5), ax=None, save_path=None):
    """Per-class precision, recall and competition score over IoU thresholds.

    For each class, true positives, false positives and false negatives are
    counted with :func:`mrcnn.evaluation.metrics.precision_recall_per_threshold` on
    that class's instances of every image and summed over images; then
    ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)`` and ``score =
    tp / (tp + fp + fn)`` are plotted against the IoU threshold, one line per
    class, plus a black dashed line for all instances regardless of class
    (the DSB / Sartorius matching). The legend of the score panel gives each
    line's mean over thresholds (pooled over images, so not exactly the
    per-image mean of :func:`mrcnn.evaluation.metrics.map_iou`).

    Args:
        gt_masks: bool ``[H, W, G]`` or label image ``[H, W]``; or a list of
            them, one per image (then the three other arguments are lists
            too, one entry per image).
        gt_class_ids: int ``[G]`` (or a list, one per image).
        pred_masks: bool ``[H, W, P]`` or label image (or a list).
        pred_class_ids: int ``[P]`` (or a list).
        class_names: optional names indexed by class id.
        thresholds: IoU thresholds; default 0.50, 0.55, ..., 0.95.
        title: figure title.
        figsize, save_path: see the module docstring.
        ax: optional sequence of 3 Axes (precision, recall, score).

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    from mrcnn.evaluation.metrics import DEFAULT_IOU_THRESHOLDS, precision_recall_per_threshold

    # A list of masks means one entry per image; the other arguments follow.
    if isinstance(gt_masks, (list, tuple)):
        gts, gids, preds, pids = (list(x) for x in (gt_masks, gt_class_ids, pred_masks,
                                                     pred_class_ids))
    else:
        gts, gids, preds, pids = [gt_masks], [gt_class_ids], [pred_masks], [pred_class_ids]
    if not len(gts) == len(gids) == len(preds) == len(pids):
        raise ValueError(f"per-image lists differ in length: gt_masks {len(gts)}, "
                         f"gt_class_ids {len(gids)}, pred_masks {len(preds)}, "
                         f"pred_class_ids {len(pids)}")
    thresholds = (DEFAULT_IOU_THRESHOLDS if thresholds is None
                  else np.asarray(thresholds, np.float64).reshape(-1))
    totals = {}                                   # class id (or "all") -> [3, T] counts
    for i, (gm, gi, pm, pi) in enumerate(zip(gts, gids, preds, pids)):
        gm, pm = _instance_stack(gm), _instance_stack(pm)
        gi, pi = np.asarray(gi).reshape(-1), np.asarray(pi).reshape(-1)
        if gi.size != gm.shape[2] or pi.size != pm.shape[2]:
            raise ValueError(f"image {i}: {gi.size} gt class ids for {gm.shape[2]} gt "
                             f"masks, {pi.size} predicted ids for {pm.shape[2]} masks")
        for key in ["all"] + [int(c) for c in np.union1d(gi, pi)]:
            gsel = np.ones(gi.size, bool) if key == "all" else gi == key
            psel = np.ones(pi.size, bool) if key == "all" else pi == key
            c = precision_recall_per_threshold(gm[:, :, gsel], pm[:, :, psel], thresholds)
            totals[key] = totals.get(key, 0) + np.stack([c["tp"], c["fp"], c["fn"]])

    fig, axes, own = _axes(ax, 3, 3, figsize, save_path, "plot_precision_recall_iou")
    classes = sorted(k for k in totals if k != "all")
    palette = dict(zip(classes, _class_colors(len(classes))))
    for key in classes + ["all"]:
        tp, fp, fn = totals[key].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = [tp / (tp + fp), tp / (tp + fn),
                      np.where(tp + fp + fn > 0, tp / (tp + fp + fn), 1.0)]
        name = "all (class-agnostic)" if key == "all" else (
            str(class_names[key]) if class_names is not None else f"class {key}")
        style = dict(color="black", linestyle="--", linewidth=2) if key == "all" else \
            dict(color=palette[key], linewidth=1.8)
        for a, v in zip(axes, values):
            label = f"{name}: mean {np.nanmean(v):.3f}" if a is axes[2] else name
            a.plot(thresholds, v, marker="o", markersize=4, label=label, **style)
    for a, name in zip(axes, ["precision  tp / (tp + fp)", "recall  tp / (tp + fn)",
                              "score  tp / (tp + fp + fn)"]):
        a.set(xlabel="IoU threshold", ylim=(-0.04, 1.04), title=name)
        a.grid(alpha=0.3)
    if own:   # below the panels, where it covers no line
        fig.legend(*axes[2].get_legend_handles_labels(), loc="outside lower center",
                   ncol=min(len(classes) + 1, 4), fontsize=10)
    else:
        axes[2].legend(fontsize=9, loc="best")
    if title and own:
        fig.suptitle(title)
    return _finish(fig, own, save_path)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def _history_columns(history):
    """``(epochs 1-based [E], {name: float [E]})`` from History, dict or CSV."""
    if hasattr(history, "history") and isinstance(history.history, dict):
        logs = dict(history.history)
        epochs = getattr(history, "epoch", None)
        logs["epoch"] = epochs if epochs else list(range(len(next(iter(logs.values()), []))))
    elif isinstance(history, dict):
        logs = dict(history)
    elif isinstance(history, (str, os.PathLike)):
        path = os.fspath(history)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"history file {path!r} not found (training writes "
                                    f"<log_dir>/history.csv)")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise ValueError(f"history file {path!r} holds no epochs")
        logs = {k: [r[k] for r in rows] for k in rows[0]}
    else:
        raise TypeError(f"history must be a keras History, a dict of lists or the path "
                        f"of a history.csv, got {type(history).__name__}")

    def column(name, values):
        try:
            return np.array([float(v) if v not in ("", None) else np.nan for v in values])
        except (TypeError, ValueError):
            raise ValueError(f"history column {name!r} is not numeric: {values!r}") from None

    cols = {k: column(k, v) for k, v in logs.items() if k != "epoch"}
    lengths = {k: v.size for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history columns differ in length: {lengths}")
    n = next(iter(lengths.values()), 0)
    epochs = column("epoch", logs["epoch"]) + 1 if "epoch" in logs else np.arange(1, n + 1.0)
    if epochs.size != n:
        raise ValueError(f"history has {epochs.size} epochs but {n} values per column")
    # A resumed run may log an epoch twice (CSV append); keep the last row of each.
    _, last = np.unique(epochs[::-1], return_index=True)
    keep = np.sort(n - 1 - last)
    return epochs[keep], {k: v[keep] for k, v in cols.items()}


def plot_history(history, metric=None, logy=False, figsize=None, ax=None, save_path=None):
    """Training curves, one panel per loss, train solid and validation dashed.

    Each panel marks its best epoch (lowest validation value, or lowest
    training value without validation) with a star, a vertical line and its
    value. Epochs are numbered from 1, as Keras prints them and as the
    checkpoints are named (``mask_rcnn_<name>_0007.h5`` is epoch 7).

    Args:
        history: the ``keras.callbacks.History`` returned by
            ``MaskRCNN.train``, a dict ``{name: [per-epoch values]}`` (with an
            optional 0-based ``"epoch"`` list), or the path of the
            ``history.csv`` training writes (columns ``epoch, loss, val_loss,
            rpn_class_loss, ...``).
        metric: a name or list of names to plot (``"loss"``,
            ``"mrcnn_mask_loss"``, ...; ``val_`` counterparts are added);
            default every column whose name contains ``"loss"``.
        logy: logarithmic y axes.
        figsize: inches; default 5 x 3.6 per panel, 3 panels a row.
        ax: optional sequence of Axes, one per panel.
        save_path: see the module docstring.

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    epochs, cols = _history_columns(history)
    if metric is None:
        names = [k for k in cols if "loss" in k and not k.startswith("val_")]
        names += [k[4:] for k in cols if k.startswith("val_") and "loss" in k
                  and k[4:] not in cols]
    else:
        names = [metric] if isinstance(metric, str) else list(metric)
        missing = [m for m in names if m not in cols and f"val_{m}" not in cols]
        if missing:
            raise ValueError(f"history has no {missing}; it holds {sorted(cols)}")
    if not names:
        raise ValueError(f"history has no loss columns; it holds {sorted(cols)}")
    ncols = min(3, len(names))
    if figsize is None:
        figsize = (5 * ncols, 3.6 * math.ceil(len(names) / ncols))
    fig, axes, own = _axes(ax, len(names), ncols, figsize, save_path, "plot_history")
    for a, name in zip(axes, names):
        train, val = cols.get(name), cols.get(f"val_{name}")
        if train is not None:
            a.plot(epochs, train, "-o", color="tab:blue", markersize=3, label="train")
        if val is not None:
            a.plot(epochs, val, "--o", color="tab:orange", markersize=3, label="validation")
        ref = val if val is not None and np.isfinite(val).any() else train
        if ref is not None and np.isfinite(ref).any():
            b = int(np.nanargmin(np.where(np.isfinite(ref), ref, np.nan)))
            a.axvline(epochs[b], color="gray", linewidth=1, linestyle=":")
            a.plot(epochs[b], ref[b], "*", color="tab:red", markersize=13, zorder=5,
                   label=f"best: epoch {epochs[b]:g}, {ref[b]:.4g}")
        a.set_title(name, fontsize=11)
        a.set_xlabel("epoch")
        if logy:
            a.set_yscale("log")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        if epochs.size <= 20:
            a.set_xticks(epochs)
    return _finish(fig, own, save_path)


def plot_lr_schedule(config, epochs, steps=None, learning_rate=None, title="",
                     figsize=(9, 4), ax=None, save_path=None):
    """The learning rate a training run will use, step by step.

    Evaluates :func:`mrcnn.training.schedule.schedule_from_config` (Config.
    N_WARMUP_STEPS, Config.LR_SCHEDULE) over ``epochs * steps`` optimizer
    steps, exactly as ``MaskRCNN.train`` builds it; the warm-up is shaded and
    the peak and final rates are written on the plot.

    Args:
        config: a Config.
        epochs: epochs of the run (``train(epochs=...)``).
        steps: steps per epoch; default Config.STEPS_PER_EPOCH.
        learning_rate: peak rate; default Config.LEARNING_RATE.
        title, figsize, ax, save_path: see the module docstring.

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    from keras import ops
    from mrcnn.training.schedule import schedule_from_config

    steps = int(config.STEPS_PER_EPOCH if steps is None else steps)
    if int(epochs) < 1 or steps < 1:
        raise ValueError(f"epochs and steps must be >= 1, got epochs={epochs!r}, "
                         f"steps={steps!r}")
    total = int(epochs) * steps
    lr0 = float(config.LEARNING_RATE if learning_rate is None else learning_rate)
    schedule = schedule_from_config(config, lr0, total)
    step = np.arange(total, dtype=np.float32)
    lr = np.broadcast_to(np.asarray(ops.convert_to_numpy(schedule(step)), np.float64),
                         step.shape)
    x = (step + 1) / steps                      # epoch progress after each step
    fig, (a,), own = _axes(ax, 1, 1, figsize, save_path, "plot_lr_schedule")
    a.plot(x, lr, color="tab:blue", linewidth=2)
    warm = min(int(schedule.warmup_steps), total)
    if warm:
        a.axvspan(0, warm / steps, color="tab:orange", alpha=0.15,
                  label=f"warm-up: {warm} steps")
    peak = int(np.argmax(lr))
    a.annotate(f"peak {lr[peak]:.3g} (step {peak + 1})", (x[peak], lr[peak]),
               xytext=(8, -14), textcoords="offset points", fontsize=9)
    a.annotate(f"final {lr[-1]:.3g}", (x[-1], lr[-1]), xytext=(-8, 8),
               textcoords="offset points", ha="right", fontsize=9)
    decay = {None: "constant", False: "constant", True: "cosine"}.get(
        config.LR_SCHEDULE, config.LR_SCHEDULE)
    a.set(xlabel=f"epoch ({steps} steps each)", ylabel="learning rate", xlim=(0, epochs),
          ylim=(0, lr.max() * 1.12))
    a.set_title(title or f"Learning rate: {decay} after {warm} warm-up steps, "
                         f"{total} steps in all", fontsize=11)
    a.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    a.grid(alpha=0.3)
    if warm:
        a.legend(loc="upper right", fontsize=9)
    return _finish(fig, own, save_path)


_CACHE_ALIASES = {"bytes": "bytes_stored", "size_bytes": "bytes_stored",
                  "ratio": "compression_ratio"}


def _cache_row(i, item):
    """One epoch of cache statistics as a dict with the canonical keys."""
    if isinstance(item, dict):
        row = {_CACHE_ALIASES.get(k, k): v for k, v in item.items()}
    elif hasattr(item, "hits") and hasattr(item, "misses"):     # mrcnn.data.cache.store.CacheStats
        row = {"hits": item.hits, "misses": item.misses}
        for attr in ("size_bytes", "ratio"):
            if hasattr(item, attr):
                row[_CACHE_ALIASES[attr]] = getattr(item, attr)
    else:
        raise TypeError(f"stats[{i}] must be a dict or a CacheStats, got "
                        f"{type(item).__name__}")
    missing = [k for k in ("hits", "misses") if k not in row]
    if missing:
        raise ValueError(f"stats[{i}] lacks {missing}; expected keys hits, misses "
                         f"[, bytes_stored, compression_ratio], got {sorted(row)}")
    return row


def _cache_columns(stats, cumulative):
    """``(epochs 1-based, {hits, misses, bytes_stored, compression_ratio} arrays)``."""
    is_history = isinstance(stats, (str, os.PathLike, dict)) or hasattr(stats, "history")
    if is_history:
        epochs, cols = _history_columns(stats)
        missing = [k for k in ("cache_hits", "cache_misses") if k not in cols]
        if missing:
            raise ValueError(f"history has no {missing} (CacheStatsLogger writes them); "
                             f"it holds {sorted(cols)}")
        nan = np.full(epochs.size, np.nan)
        return epochs, {"hits": cols["cache_hits"], "misses": cols["cache_misses"],
                        "bytes_stored": cols.get("cache_mb", nan) * 2.0 ** 20,
                        "compression_ratio": cols.get("cache_ratio", nan)}
    rows = [_cache_row(i, item) for i, item in enumerate(stats)]
    if not rows:
        raise ValueError("plot_cache_stats needs at least one epoch of stats, got none")
    cols = {k: np.array([float(r.get(k, np.nan)) for r in rows])
            for k in ("hits", "misses", "bytes_stored", "compression_ratio")}
    if cumulative:
        cols["hits"] = np.diff(cols["hits"], prepend=0.0)
        cols["misses"] = np.diff(cols["misses"], prepend=0.0)
    return np.arange(1, len(rows) + 1), cols


def plot_cache_stats(stats, cumulative=False, title="", figsize=(15, 4), ax=None,
                     save_path=None):
    """Per-epoch cache statistics: hits and misses, bytes held, compression ratio.

    Args:
        stats: either the training history (the ``keras.callbacks.History``
            of ``MaskRCNN.train``, its ``history.csv`` path, or a dict of
            per-epoch lists) holding the ``cache_hits``, ``cache_misses``,
            ``cache_mb`` and ``cache_ratio`` columns that
            :class:`mrcnn.training.callbacks.CacheStatsLogger` logs (a dict
            is always read as such a history); or a
            list with one entry per epoch, each a dict or a
            :class:`mrcnn.data.cache.store.CacheStats`, with keys (attributes)
            ``hits`` and ``misses`` (lookups served from the cache / loaded
            and prepared again), optionally ``bytes_stored`` (bytes the cache
            holds; aliases ``bytes``, ``size_bytes``; in a difference of two
            CacheStats snapshots it is the growth during the epoch) and
            ``compression_ratio`` (uncompressed / stored bytes; alias
            ``ratio``). Ratios <= 0 mean "nothing measured"; a panel whose
            value no epoch reports says so.
        cumulative: for a list only: True when the entries are running
            totals (e.g. ``cache.stats()`` taken after every epoch); hits and
            misses are then differenced to per-epoch counts.
        title: figure title.
        figsize, save_path: see the module docstring.
        ax: optional sequence of 3 Axes.

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    epoch, cols = _cache_columns(stats, cumulative)
    hits, misses = cols["hits"], cols["misses"]
    fig, axes, own = _axes(ax, 3, 3, figsize, save_path, "plot_cache_stats")
    a = axes[0]
    a.bar(epoch, hits, color="tab:green", label="hits")
    a.bar(epoch, misses, bottom=hits, color="tab:gray", label="misses")
    total = hits + misses
    rate = np.divide(hits, total, out=np.zeros_like(hits), where=total > 0)
    for e, t, r in zip(epoch, total, rate):
        a.text(e, t, f"{100 * r:.0f}%", ha="center", va="bottom", fontsize=9)
    a.set(title="lookups (hit rate on top)", xlabel="epoch", ylim=(0, total.max() * 1.4 or 1))
    a.legend(fontsize=9, loc="upper center", ncol=2)
    for a, key, label, scale in ((axes[1], "bytes_stored", "stored (MiB)", 2.0 ** -20),
                                 (axes[2], "compression_ratio", "compression ratio", 1.0)):
        v = cols[key] * scale
        if key == "compression_ratio":
            v[v <= 0] = np.nan
        if np.isfinite(v).any():
            a.plot(epoch, v, "-o", color="tab:blue")
            a.set_ylim(0, np.nanmax(v) * 1.15 or 1)
        else:
            a.text(0.5, 0.5, f"{key} not reported", transform=a.transAxes,
                   ha="center", va="center", color="gray")
        a.set(title=label, xlabel="epoch")
    for a in axes:
        a.grid(alpha=0.3)
        if len(epoch) <= 20:
            a.set_xticks(epoch)
    if title and own:
        fig.suptitle(title)
    return _finish(fig, own, save_path)
