"""Images and instances: Matterport's pictures of images, masks and boxes.

:func:`display_images` (a grid of images), :func:`display_instances`
(instances over an image), :func:`display_top_masks` (the largest classes'
masks), :func:`display_differences` (ground truth against predictions,
coloured by match) and :func:`draw_boxes` (boxes and their refinements).
Arguments and return values follow the conventions of the
:mod:`mrcnn.visualize` package docstring: pixel boxes ``[N, (y1, x1, y2,
x2)]`` with ``y2``/``x2`` exclusive, bool masks ``[H, W, N]``, optional
``ax`` and ``save_path``. matplotlib is imported inside the functions only.
"""

import math

import numpy as np

from mrcnn.visualize.colors import blend_instances, display_rgb, random_colors
from mrcnn.visualize.drawing import (as_boxes, as_masks, draw_arrows, draw_rectangles,
                                     render_instances)
from mrcnn.visualize.figures import (finish_figure, label_fontsize, open_axes,
                                     outline_width, set_title)

# display_differences: matched prediction, false positive, missed ground truth,
# ground truth of a match.
_TP, _FP, _FN, _GT = (0.1, 0.85, 0.2), (1.0, 0.15, 0.1), (1.0, 0.8, 0.0), (1.0, 1.0, 1.0)


def _count(n, noun="instance"):
    """``"1 instance"``, ``"3 instances"``."""
    return f"{int(n)} {noun}{'' if int(n) == 1 else 's'}"


def display_images(images, titles=None, cols=4, cmap=None, norm=None,
                   interpolation=None, figsize=None, ax=None, save_path=None):
    """Shows images side by side on a grid.

    Args:
        images: sequence of images (``[H, W]`` shown with ``cmap``, default
            gray, scaled to their own range; ``[H, W, 1|3|4]`` as in the
            :mod:`mrcnn.visualize` docstring).
        titles: optional one title per image.
        cols: grid columns.
        cmap, norm, interpolation: passed to ``imshow`` for 2-D images.
        figsize: inches; default 14 wide, rows sized to the first image.
        ax: optional sequence of ``len(images)`` Axes.
        save_path: optional file to write (see the :mod:`mrcnn.visualize` docstring).

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
    fig, axes, own = open_axes(ax, len(images), cols, figsize, save_path, "display_images")
    for a, image, title in zip(axes, images, titles):
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2:
            a.imshow(image.astype(np.float32) if image.dtype == bool else image,
                     cmap=cmap or "gray", norm=norm, interpolation=interpolation)
        else:
            a.imshow(display_rgb(image), interpolation=interpolation)
        a.set_title(title, fontsize=10)
        a.set_axis_off()
    return finish_figure(fig, own, save_path)


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
        image: ``[H, W]`` or ``[H, W, C]`` image (see the :mod:`mrcnn.visualize` docstring).
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
    rgb = display_rgb(image)
    if boxes is None:
        if masks is None:
            raise ValueError("display_instances needs boxes or masks, got neither")
        from mrcnn.data.boxes import extract_bboxes
        boxes = extract_bboxes(np.asarray(masks))
    boxes = as_boxes(boxes)
    n = boxes.shape[0]
    if masks is not None:
        masks = as_masks(masks, rgb.shape[:2], n)
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

    fig, (a,), own = open_axes(ax, 1, 1, figsize, save_path, "display_instances")
    order = np.argsort(-scores, kind="stable") if scores is not None else np.arange(n)
    notes = render_instances(a, rgb, boxes, masks, colors, list(captions), order,
                             np.full(n, alpha), show_mask, show_bbox, np.ones(n, bool),
                             max_labels)
    if n == 0:
        notes.insert(0, "no instances")
    elif max_labels is not None and n > max_labels:
        notes = [f"{_count(n)}, labels hidden (more than max_labels={max_labels})"]
    set_title(a, title, notes, label_fontsize(a) + 2)
    return finish_figure(fig, own, save_path)


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
    rgb = display_rgb(image)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    mask = as_masks(mask, rgb.shape[:2], class_ids.size, "mask")
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
        panels.append(blend_instances(black, mask[:, :, sel], colors,
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

    Matching is :func:`mrcnn.evaluation.compute_matches` (greedy by score, same
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
    from mrcnn.evaluation import compute_matches

    gt_box, gt_class_id, gt_mask = _trim_padding(as_boxes(gt_box, "gt_box"),
                                                 gt_class_id, gt_mask)
    pred_box, pred_class_id, pred_score, pred_mask = _trim_padding(
        as_boxes(pred_box, "pred_box"), pred_class_id, pred_score, pred_mask)
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
    rgb = display_rgb(image)
    masks = np.concatenate([as_masks(gt_mask, rgb.shape[:2], g, "gt_mask"),
                            as_masks(pred_mask, rgb.shape[:2], p, "pred_mask")], axis=2)
    fill = np.concatenate([np.where(gt_hit, 0.0, 0.45), np.full(p, 0.45)])
    box_keep = np.concatenate([~gt_hit, np.ones(p, bool)])
    # Labels: false positives and misses first, then matches by score.
    label_order = np.concatenate([g + order[match[order] < 0], np.flatnonzero(~gt_hit),
                                  g + order[match[order] >= 0]]).astype(int)

    fig, (a,), own = open_axes(ax, 1, 1, figsize, save_path, "display_differences")
    notes = render_instances(a, rgb, np.concatenate([gt_box, pred_box]), masks, colors,
                             captions, label_order, fill, show_mask, show_box, box_keep,
                             max_labels)
    tp = int((match >= 0).sum())
    summary = (f"{tp} matched, {p - tp} false positive, {int((~gt_hit).sum())} missed "
               f"(IoU >= {iou_threshold:g}); captions: score / IoU")
    set_title(a, title or "Ground truth and detections", [summary] + notes,
              label_fontsize(a) + 2)
    handles = [Patch(facecolor=_TP, label="matched prediction"),
               Patch(facecolor=_FP, label="false positive"),
               Patch(facecolor=_FN, label="missed ground truth"),
               Patch(facecolor="white", edgecolor="black",
                     label="ground truth of a match (outline)")]
    a.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4,
             frameon=False, fontsize=label_fontsize(a))
    return finish_figure(fig, own, save_path)


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
    boxes = as_boxes(boxes) if boxes is not None else None
    refined = as_boxes(refined_boxes, "refined_boxes") if refined_boxes is not None else None
    n = (boxes if boxes is not None else refined).shape[0]
    if boxes is not None and refined is not None and refined.shape[0] != n:
        raise ValueError(f"boxes has {n} rows but refined_boxes has {refined.shape[0]}")
    vis = np.full(n, 2) if visibilities is None else np.asarray(visibilities).reshape(-1)
    if vis.size != n or not np.isin(vis, (0, 1, 2)).all():
        raise ValueError(f"visibilities must be {n} values in (0, 1, 2), got {vis!r}")
    if captions is not None and len(captions) != n:
        raise ValueError(f"captions has {len(captions)} entries for {n} boxes")
    rgb = display_rgb(image)
    masks = as_masks(masks, rgb.shape[:2], n) if masks is not None else None
    colors = np.asarray(random_colors(n)).reshape(n, 3)
    colors[vis == 1] = 0.6
    label_boxes = refined if refined is not None else boxes

    fig, (a,), own = open_axes(ax, 1, 1, figsize, save_path, "draw_boxes")
    shown = vis > 0
    texts = [c if (captions is not None and shown[i]) else "" for i, c in
             enumerate(captions if captions is not None else [""] * n)]
    notes = render_instances(a, rgb, label_boxes, masks, colors, texts,
                             np.flatnonzero(vis == 2).tolist()
                             + np.flatnonzero(vis == 1).tolist(),
                             np.where(shown, 0.4, 0.0), masks is not None, False,
                             shown, max_labels, outline_keep=shown)
    lw = outline_width(a, rgb.shape, 1.5)
    for level, style, width in ((1, ":", lw * 0.7), (2, None, lw)):
        sel = vis == level
        if boxes is not None:
            draw_rectangles(a, boxes[sel], colors[sel],
                            "--" if refined is not None else (style or "-"), width)
        if refined is not None:
            draw_rectangles(a, refined[sel], colors[sel], style or "-", width)
    if boxes is not None and refined is not None and shown.any():
        draw_arrows(a, boxes[shown], refined[shown], colors[shown])
    set_title(a, title, notes, label_fontsize(a) + 2)
    return finish_figure(fig, own, save_path)

