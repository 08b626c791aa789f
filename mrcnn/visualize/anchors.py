"""Anchors over an image: the anchor sizes, or the RPN training targets.

:func:`display_anchors` shows one anchor of every size and ratio (to compare
the anchor scales with the objects), or, given ``rpn_match`` and
``rpn_bbox`` from :func:`mrcnn.data.rpn_targets.rpn_targets`, the positive
anchors, their refinements and a sample of negatives. Pixel boxes
``(y1, x1, y2, x2)``, y2/x2 exclusive; ``ax`` / ``save_path`` as in the
:mod:`mrcnn.visualize` package docstring.
"""

import numpy as np

from mrcnn.visualize.colors import display_rgb, random_colors
from mrcnn.visualize.drawing import as_boxes, draw_arrows, draw_rectangles, show_image
from mrcnn.visualize.figures import (finish_figure, label_fontsize, open_axes,
                                     outline_width, set_title)


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

    rgb = display_rgb(image)
    h, w = rgb.shape[:2]
    anchors = as_boxes(anchors, "anchors")
    fig, (a,), own = open_axes(ax, 1, 1, figsize, save_path, "display_anchors")
    show_image(a, rgb)
    lw = outline_width(a, rgb.shape, 1.5)
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
        draw_rectangles(a, anchors[pick], colors, "-", lw)
        drawn.append(anchors[pick])
        a.legend(handles=[Patch(facecolor="none", edgecolor=c, linewidth=2,
                                label=f"{s:g} px") for s, c in zip(levels, palette)],
                 loc="upper right", title="anchor scale", fontsize=label_fontsize(a))
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
        draw_rectangles(a, anchors[shown_neg], [(0.75, 0.75, 0.75)] * len(shown_neg),
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
            draw_rectangles(a, anchors[pos], colors, "--", lw)
            draw_rectangles(a, refined, colors, "-", lw)
            draw_arrows(a, anchors[pos], refined, colors)
            drawn.append(refined)
        else:
            draw_rectangles(a, anchors[pos], colors, "-", lw)
        notes = [f"{len(pos)} positive, {len(neg)} negative ({len(shown_neg)} shown), "
                 f"{int((match == 0).sum())} neutral of {match.size} anchors"]
    if gt_boxes is not None:
        gt = as_boxes(gt_boxes, "gt_boxes")
        draw_rectangles(a, gt, [(1.0, 1.0, 1.0)] * len(gt), "-", lw * 1.6, zorder=3)
        drawn.append(gt)
    every = np.concatenate(drawn)
    y0, x0 = every[:, :2].min(axis=0) - 0.5
    y1, x1 = every[:, 2:].max(axis=0) - 0.5
    a.set_xlim(x0 - 1, x1 + 1)
    a.set_ylim(y1 + 1, y0 - 1)
    a.set_axis_on()
    a.tick_params(labelsize=label_fontsize(a) * 0.8)
    set_title(a, title, notes, label_fontsize(a) + 2)
    return finish_figure(fig, own, save_path)
