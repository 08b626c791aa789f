"""The Mask R-CNN losses as pure functions of tensors (keras.ops).

Matterport's five, the optional soft Dice term of the mask head
(``LOSS_WEIGHTS["mrcnn_mask_dice_loss"]``) and the optional dense foreground
loss (Config.FOREGROUND_LOSS).

Every function returns a finite float32 scalar and returns exactly 0 (with
finite, zero gradients) when there is nothing to average over: no labelled
anchors, no positive anchors, no valid ROIs or no positive ROIs. Inputs may be
batched over any static batch size B; averages are taken over the whole batch
(the elements that count, pooled over all images), as Matterport does.

Shapes:
    A: anchors per image; K: rows of RPN box targets per image;
    T: ROIs per image (TRAIN_ROIS_PER_IMAGE); C: classes (background included).
"""

from keras import ops


def _smooth_l1(diff):
    """Elementwise smooth L1, beta = 1: 0.5 x^2 if |x| < 1 else |x| - 0.5."""
    absolute = ops.abs(diff)
    return ops.where(absolute < 1.0, 0.5 * ops.square(diff), absolute - 0.5)


def _softmax_cross_entropy(logits, labels):
    """Softmax cross entropy per row.

    Args:
        logits: float [..., C].
        labels: int [...] class index in [0, C).

    Returns:
        float32 [...]: logsumexp(logits) - logits[label].
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    picked = ops.take_along_axis(logits, ops.expand_dims(labels, -1), axis=-1)
    return ops.logsumexp(logits, axis=-1) - ops.squeeze(picked, -1)


def _sigmoid_cross_entropy(logits, targets):
    """Elementwise binary cross entropy from logits, stable: max(x, 0) - x z + log(1 + exp(-|x|))."""
    return ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


def _weighted_mean(values, weights, elements_per_weight=1.0):
    """sum(values * weights) / (elements_per_weight * sum(weights)).

    Returns 0 (not NaN) when the weights sum to 0.
    """
    total = ops.sum(values * weights)
    count = ops.sum(weights) * elements_per_weight
    return total / ops.maximum(count, 1e-8) * ops.cast(count > 0, "float32")


def rpn_class_loss(rpn_match, rpn_class_logits):
    """RPN anchor classifier loss (foreground vs background).

    Args:
        rpn_match: int [B, A]: 1 positive anchor, -1 negative, 0 neutral
            (ignored).
        rpn_class_logits: float [B, A, 2] logits (background, foreground).

    Returns:
        float32 scalar: mean softmax cross entropy over the non-neutral
        anchors of the batch (target 1 for positives, 0 for negatives);
        0 when every anchor is neutral.
    """
    rpn_match = ops.cast(rpn_match, "int32")
    labels = ops.cast(ops.equal(rpn_match, 1), "int32")
    weights = ops.cast(ops.not_equal(rpn_match, 0), "float32")
    cross_entropy = _softmax_cross_entropy(rpn_class_logits, labels)
    return _weighted_mean(cross_entropy, weights)


def rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox):
    """RPN box regression loss on the positive anchors.

    Row i of ``target_bbox[b]`` is the target of the i-th positive anchor of
    image b in anchor order (Matterport's packing, as built by
    ``mrcnn.data.rpn_targets``); rows past the number of positives are
    padding. Positive anchors beyond the K target rows are ignored.

    Args:
        target_bbox: float [B, K, 4] target deltas (dy, dx, log(dh), log(dw)),
            already divided by RPN_BBOX_STD_DEV.
        rpn_match: int [B, A]: 1 positive, -1 negative, 0 neutral.
        rpn_bbox: float [B, A, 4] predicted deltas.

    Returns:
        float32 scalar: smooth L1 (beta = 1) averaged over the n_pos * 4
        elements of the positive anchors of the batch (Matterport's
        ``K.mean`` over the packed [n_pos, 4] rows); 0 when there are no
        positive anchors.
    """
    target_bbox = ops.cast(target_bbox, "float32")
    rpn_bbox = ops.cast(rpn_bbox, "float32")
    num_rows = ops.shape(target_bbox)[1]
    positive = ops.equal(ops.cast(rpn_match, "int32"), 1)
    # Rank of each positive anchor among the positives of its image.
    rank = ops.cumsum(ops.cast(positive, "int32"), axis=1) - 1
    used = ops.logical_and(positive, rank < num_rows)
    rank = ops.clip(rank, 0, num_rows - 1)
    matched_target = ops.take_along_axis(
        target_bbox, ops.expand_dims(rank, -1), axis=1)
    per_element = _smooth_l1(matched_target - rpn_bbox)
    weights = ops.cast(used, "float32")
    per_anchor = ops.sum(per_element, axis=-1)
    return _weighted_mean(per_anchor, weights, elements_per_weight=4.0)


def mrcnn_class_loss(target_class_ids, pred_class_logits, active_class_ids,
                     valid=None):
    """Classifier head loss.

    Args:
        target_class_ids: int [B, T] true class per ROI (0 = background).
        pred_class_logits: float [B, T, C] logits.
        active_class_ids: [B, C] 1 for the classes of the image's dataset
            source, 0 otherwise (from the image meta; any numeric dtype).
        valid: optional bool [B, T], False for padding ROIs. Defaults to all
            True.

    Returns:
        float32 scalar: softmax cross entropy averaged over the valid ROIs
        whose predicted (argmax) class is active in their image (Matterport
        gives ROIs predicting a class foreign to the image's source zero
        weight, and they leave the denominator too); 0 when no ROI counts.
    """
    target_class_ids = ops.cast(target_class_ids, "int32")
    pred_class_logits = ops.cast(pred_class_logits, "float32")
    active = ops.cast(active_class_ids, "float32")
    pred_class = ops.argmax(pred_class_logits, axis=-1)
    pred_active = ops.take_along_axis(
        active, ops.cast(pred_class, "int32"), axis=1)
    weights = pred_active
    if valid is not None:
        weights = weights * ops.cast(valid, "float32")
    cross_entropy = _softmax_cross_entropy(pred_class_logits, target_class_ids)
    return _weighted_mean(cross_entropy, weights)


def mrcnn_bbox_loss(target_bbox, target_class_ids, pred_bbox):
    """Box head regression loss on the positive ROIs.

    Args:
        target_bbox: float [B, T, 4] target deltas, already divided by
            BBOX_STD_DEV.
        target_class_ids: int [B, T]; positives have class > 0.
        pred_bbox: float [B, T, C, 4] predicted deltas per class.

    Returns:
        float32 scalar: smooth L1 (beta = 1) between the true class's
        predicted deltas and the targets, averaged over the n_pos * 4
        elements of the positive ROIs; 0 when there are none.
    """
    target_bbox = ops.cast(target_bbox, "float32")
    pred_bbox = ops.cast(pred_bbox, "float32")
    class_ids = ops.maximum(ops.cast(target_class_ids, "int32"), 0)
    index = ops.expand_dims(class_ids, (-2, -1))
    pred_true = ops.squeeze(
        ops.take_along_axis(pred_bbox, index, axis=2), axis=2)
    per_roi = ops.sum(_smooth_l1(target_bbox - pred_true), axis=-1)
    weights = ops.cast(class_ids > 0, "float32")
    return _weighted_mean(per_roi, weights, elements_per_weight=4.0)


def _true_class_masks(target_masks, target_class_ids, pred_mask_logits):
    """(0/1 targets [B, T, h, w], the true class's logits [B, T, h, w], positive weights [B, T])."""
    target_masks = ops.cast(target_masks, "float32")
    pred_mask_logits = ops.cast(pred_mask_logits, "float32")
    class_ids = ops.maximum(ops.cast(target_class_ids, "int32"), 0)
    index = ops.expand_dims(class_ids, (-3, -2, -1))
    logits = ops.squeeze(
        ops.take_along_axis(pred_mask_logits, index, axis=-1), axis=-1)
    return target_masks, logits, ops.cast(class_ids > 0, "float32")


def mrcnn_mask_loss(target_masks, target_class_ids, pred_mask_logits):
    """Mask head loss on the positive ROIs.

    Args:
        target_masks: [B, T, h, w] 0/1 mask targets.
        target_class_ids: int [B, T]; positives have class > 0.
        pred_mask_logits: float [B, T, h, w, C] mask logits per class.

    Returns:
        float32 scalar: binary cross entropy (from logits) of the true
        class's mask, averaged over the n_pos * h * w pixels of the positive
        ROIs; 0 when there are none.
    """
    targets, logits, weights = _true_class_masks(target_masks, target_class_ids,
                                                 pred_mask_logits)
    per_roi = ops.sum(_sigmoid_cross_entropy(logits, targets), axis=(2, 3))
    pixels = float(targets.shape[2] * targets.shape[3])
    return _weighted_mean(per_roi, weights, elements_per_weight=pixels)


def mrcnn_mask_dice_loss(target_masks, target_class_ids, pred_mask_logits, smooth=1.0):
    """Soft Dice loss of the mask head on the positive ROIs.

    Per positive ROI, with ``p`` the true class's mask probabilities and
    ``t`` its 0/1 target (``h * w`` pixels each):
    ``1 - (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)``.
    Cross entropy weighs every pixel alike, so a small object's boundary
    counts for little; Dice measures each mask's overlap as a whole, as the
    mAP-IoU scores it.

    Args:
        target_masks, target_class_ids, pred_mask_logits: as
            `mrcnn_mask_loss`.
        smooth: added to both sides of the ratio (an empty target with an
            empty prediction has loss 0).

    Returns:
        float32 scalar: the mean over the positive ROIs; 0 when there are none.
    """
    targets, logits, weights = _true_class_masks(target_masks, target_class_ids,
                                                 pred_mask_logits)
    probs = ops.sigmoid(logits)
    overlap = ops.sum(probs * targets, axis=(2, 3))
    total = ops.sum(probs, axis=(2, 3)) + ops.sum(targets, axis=(2, 3))
    per_roi = 1.0 - (2.0 * overlap + smooth) / (total + smooth)
    return _weighted_mean(per_roi, weights)


def foreground_loss(target, logits):
    """The dense foreground loss (Config.FOREGROUND_LOSS, `mrcnn.heads.foreground`).

    Args:
        target: ``[B, h, w, 1]`` 0/1 foreground map
            (`mrcnn.layers.foreground_target`).
        logits: float ``[B, h, w, 1]`` foreground logits.

    Returns:
        float32 scalar: binary cross entropy (from logits) averaged over the
        ``B * h * w`` pixels.
    """
    return ops.mean(_sigmoid_cross_entropy(ops.cast(logits, "float32"),
                                           ops.cast(target, "float32")))
