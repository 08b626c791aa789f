"""Drawing pieces shared by the instance, box and anchor pictures.

Argument checks (:func:`as_boxes`, :func:`as_masks`), the image shown
pixel-exactly (:func:`show_image`), mask outlines (:func:`draw_contours`),
box outlines (:func:`draw_rectangles`), refinement arrows
(:func:`draw_arrows`), non-overlapping labels (:func:`place_labels`) and
all of them together (:func:`render_instances`).

Boxes are pixel boxes ``(y1, x1, y2, x2)`` with ``y2``/``x2`` exclusive;
pixel ``(r, c)`` is the unit square centred on data coordinates ``(x=c,
y=r)`` (matplotlib's ``imshow`` convention), so a box's outline runs from
``x1 - 0.5`` to ``x2 - 0.5``. matplotlib and scikit-image are imported
inside the functions only.
"""

import numpy as np

from mrcnn.data import iou
from mrcnn.visualize.colors import blend_instances
from mrcnn.visualize.figures import axes_size_inches, label_fontsize, outline_width


def as_masks(masks, shape, n, name="masks"):
    """``masks`` as bool ``[H, W, N]``, checked against the image and the count.

    Args:
        masks: array-like ``[H, W, N]`` (bool or 0/1).
        shape: ``(H, W)`` of the image.
        n: expected number of instances ``N``.
        name: the argument's name, for the error message.

    Raises:
        ValueError: the shape is not ``[H, W, N]``.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[:2] != tuple(shape) or masks.shape[2] != n:
        raise ValueError(f"{name} must be bool [H, W, N] = [{shape[0]}, {shape[1]}, {n}], "
                         f"got shape {masks.shape}")
    return masks.astype(bool, copy=False)


def as_boxes(boxes, name="boxes"):
    """``boxes`` as float64 ``[N, (y1, x1, y2, x2)]`` (`mrcnn.data.iou.as_boxes`)."""
    return iou.as_boxes(boxes, name, np.float64)


def show_image(ax, rgb):
    """Shows an RGB uint8 ``[H, W, 3]`` image pixel-exactly (nearest neighbour), axes off."""
    h, w = rgb.shape[:2]
    ax.imshow(rgb, interpolation="nearest", resample=False)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()


def draw_contours(ax, masks, colors, keep, linewidth):
    """Outlines of ``masks[..., keep]`` as one LineCollection.

    Each instance is traced on its own bounding-box crop (padded by one
    pixel, so masks touching the border close), in pixel-centre coordinates.

    Args:
        ax: Axes showing the image.
        masks: bool ``[H, W, N]``.
        colors: float ``[N, 3]`` in [0, 1].
        keep: bool ``[N]``: the instances to outline.
        linewidth: points.
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


def draw_rectangles(ax, boxes, colors, linestyle, linewidth, zorder=4):
    """Box outlines as one PatchCollection.

    Args:
        ax: Axes in image coordinates.
        boxes: ``[N, (y1, x1, y2, x2)]`` pixel boxes, y2/x2 exclusive.
        colors: ``N`` edge colours.
        linestyle, linewidth, zorder: passed to matplotlib.
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle
    if len(boxes) == 0:
        return
    rects = [Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1) for y1, x1, y2, x2 in boxes]
    ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor=list(colors),
                                      linestyle=linestyle, linewidth=linewidth,
                                      zorder=zorder))


def draw_arrows(ax, boxes, refined, colors):
    """One arrow per box, from its centre to the centre of its refined box.

    Args:
        ax: Axes in image coordinates.
        boxes: ``[N, (y1, x1, y2, x2)]`` pixel boxes before refinement.
        refined: ``[N, 4]`` the same boxes after refinement.
        colors: ``N`` arrow colours.
    """
    c0 = (boxes[:, :2] + boxes[:, 2:]) / 2 - 0.5
    c1 = (refined[:, :2] + refined[:, 2:]) / 2 - 0.5
    ax.quiver(c0[:, 1], c0[:, 0], c1[:, 1] - c0[:, 1], c1[:, 0] - c0[:, 0],
              color=colors, angles="xy", scale_units="xy", scale=1, width=0.003,
              headwidth=4, headlength=5, zorder=5)


def place_labels(ax, boxes, texts, colors, order, image_shape, max_labels):
    """Writes ``texts`` at their boxes, skipping labels that would overlap.

    Labels go just above a box's top-left corner, else inside it, else below
    it; a label that fits nowhere without covering an earlier one (in
    ``order``) or leaving the image is dropped. Boxes entirely off the image
    get no label and are not counted. Nothing is drawn when more
    than ``max_labels`` texts are given.

    Args:
        ax: Axes showing the image.
        boxes: ``[N, (y1, x1, y2, x2)]`` pixel boxes.
        texts: ``N`` strings ("" or None: no label).
        colors: ``N`` label frame colours.
        order: indices into ``texts``, highest priority first.
        image_shape: ``(H, W, ...)``.
        max_labels: most labels drawn, or None for no limit.

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
    fontsize = label_fontsize(ax)
    w_in, h_in = axes_size_inches(ax)
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


def render_instances(ax, rgb, boxes, masks, colors, captions, order, fill_alpha,
                     show_mask, show_bbox, box_keep, max_labels, outline_keep=None):
    """Image + filled/outlined masks + dashed boxes + labels on one Axes.

    Args:
        ax: the Axes to draw into.
        rgb: uint8 ``[H, W, 3]`` image.
        boxes: ``[N, (y1, x1, y2, x2)]`` pixel boxes (labels sit at them).
        masks: bool ``[H, W, N]`` or None.
        colors: ``N`` RGB(A) colours in [0, 1].
        captions: ``N`` label strings ("" for none).
        order: label priority (indices, first placed first).
        fill_alpha: float ``[N]`` fill opacity per instance.
        show_mask, show_bbox: draw masks (fill and outline) / dashed boxes.
        box_keep: bool ``[N]``: the boxes drawn.
        max_labels: see :func:`place_labels`.
        outline_keep: bool ``[N]``: the mask outlines drawn (default all).

    Returns:
        list of title notes about hidden labels (possibly empty).
    """
    n = len(colors)
    colors = (np.asarray(colors, dtype=np.float64).reshape(n, -1)[:, :3] if n
              else np.zeros((0, 3)))
    if show_mask and masks is not None and n:
        rgb = blend_instances(rgb, masks, colors, np.asarray(fill_alpha, np.float64))
    show_image(ax, rgb)
    lw = outline_width(ax, rgb.shape, 1.2)
    if show_mask and masks is not None and n:
        keep = np.ones(n, bool) if outline_keep is None else np.asarray(outline_keep, bool)
        draw_contours(ax, masks, colors, keep, lw)
    if show_bbox and n:
        keep = np.asarray(box_keep, bool)
        draw_rectangles(ax, boxes[keep], colors[keep], "--", lw)
    drawn, hidden, over_limit = place_labels(ax, boxes, captions, colors, order, rgb.shape,
                                             max_labels)
    notes = []
    if over_limit:
        notes.append(f"{hidden} labels hidden (more than max_labels={max_labels})")
    elif hidden:
        notes.append(f"{hidden} of {drawn + hidden} labels hidden to avoid overlap")
    return notes
