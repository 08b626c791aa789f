"""Scores: precision-recall curves.

:func:`plot_precision_recall` draws Matterport's curve of
:func:`mrcnn.evaluation.compute_ap`; :func:`plot_precision_recall_iou`
draws per-class precision, recall and the competition score against the
IoU threshold. ``ax`` / ``save_path`` as in the :mod:`mrcnn.visualize`
package docstring; matplotlib is imported inside the functions only.
"""

import numpy as np

from mrcnn.visualize.colors import class_colors
from mrcnn.visualize.figures import finish_figure, open_axes


def plot_precision_recall(AP, precisions, recalls, figsize=(6, 6), ax=None,
                          save_path=None):
    """Precision-recall curve of :func:`mrcnn.evaluation.compute_ap` (Matterport).

    Args:
        AP: the average precision (shown in the title).
        precisions, recalls: the ``[Npred + 2]`` arrays from ``compute_ap``.
        figsize, ax, save_path: see the :mod:`mrcnn.visualize` docstring.

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    p = np.asarray(precisions, np.float64).reshape(-1)
    r = np.asarray(recalls, np.float64).reshape(-1)
    if p.shape != r.shape:
        raise ValueError(f"precisions and recalls differ in length: {p.size} vs {r.size}")
    fig, (a,), own = open_axes(ax, 1, 1, figsize, save_path, "plot_precision_recall")
    # Precision p[i] holds on the recall interval (r[i-1], r[i]]: the area
    # under this step line is the AP.
    a.step(r, p, where="pre", color="tab:blue", linewidth=2)
    a.fill_between(r, p, step="pre", color="tab:blue", alpha=0.15)
    a.set(xlim=(0, 1.05), ylim=(0, 1.05), xlabel="recall", ylabel="precision")
    a.set_title(f"Precision-recall curve, AP@50 = {float(AP):.3f}")
    a.grid(alpha=0.3)
    return finish_figure(fig, own, save_path)


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
    counted with :func:`mrcnn.evaluation.precision_recall_per_threshold` on
    that class's instances of every image and summed over images; then
    ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)`` and ``score =
    tp / (tp + fp + fn)`` are plotted against the IoU threshold, one line per
    class, plus a black dashed line for all instances regardless of class
    (the DSB / Sartorius matching). The legend of the score panel gives each
    line's mean over thresholds (pooled over images, so not exactly the
    per-image mean of :func:`mrcnn.evaluation.map_iou`).

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
        figsize, save_path: see the :mod:`mrcnn.visualize` docstring.
        ax: optional sequence of 3 Axes (precision, recall, score).

    Returns:
        ``save_path``, the figure (non-interactive backend, no ``ax``) or None.
    """
    from mrcnn.evaluation import DEFAULT_IOU_THRESHOLDS, precision_recall_per_threshold

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

    fig, axes, own = open_axes(ax, 3, 3, figsize, save_path, "plot_precision_recall_iou")
    classes = sorted(k for k in totals if k != "all")
    palette = dict(zip(classes, class_colors(len(classes))))
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
    return finish_figure(fig, own, save_path)

