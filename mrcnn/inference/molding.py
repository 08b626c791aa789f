"""Images into the model and detections back out (Matterport's ``mold_inputs`` / ``unmold_detections``)."""

import numpy as np

from mrcnn.data.fit import fit_image, undo_resize_boxes
from mrcnn.data.image import mold_image
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.data.masks.mini import paste_values
from mrcnn.data.masks.sparse import SparseMasks


def mold_inputs(images, config):
    """Fit images to the model input (`mrcnn.data.fit.fit_image`) and subtract the mean pixel.

    Args:
        images: list of [H, W, C] (or [H, W] grayscale) images of any size.
        config: the model's Config.

    Returns:
        molded_images float32 [N, IMAGE_SHAPE...], image_metas float32
        [N, IMAGE_META_SIZE], windows int [N, (y1, x1, y2, x2)] (the real image
        inside each molded one, pixels).
    """
    channels = config.IMAGE_CHANNEL_COUNT
    molded, metas, windows = [], [], []
    for image in images:
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] != channels:
            raise ValueError(f"images must be [H, W, {channels}] arrays, got shape {image.shape}")
        fitted, window, scale, _, _ = fit_image(image, config, training=False)
        metas.append(compose_image_meta(0, image.shape, fitted.shape, window, scale,
                                        np.ones(config.NUM_CLASSES, np.int32)))
        molded.append(mold_image(fitted, config))
        windows.append(window)
    return np.stack(molded).astype(np.float32), np.stack(metas), np.asarray(windows)


def pad_batch(molded_images, image_metas, batch_size):
    """Zero-pad molded images and metas to the model's static batch size.

    Raises:
        ValueError: more images than `batch_size`.
    """
    n = len(molded_images)
    if n > batch_size:
        raise ValueError(f"got {n} images for a model with BATCH_SIZE {batch_size}")
    molded = np.zeros((batch_size,) + tuple(np.shape(molded_images)[1:]), np.float32)
    metas = np.zeros((batch_size, np.shape(image_metas)[1]), np.float32)
    molded[:n], metas[:n] = molded_images, image_metas
    return molded, metas


def unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window,
                      mask_threshold=0.5):
    """One image's padded detections -> boxes, class ids, scores, full-size masks.

    Args:
        detections: [N, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded.
        mrcnn_mask: [N, mh, mw, num_classes] mask probabilities.
        original_image_shape: [H, W, C] of the image before molding.
        image_shape: [H, W, C] of the molded image.
        window: (y1, x1, y2, x2) of the real image in the molded one (pixels).
        mask_threshold: probability from which a mask pixel is on
            (Config.DETECTION_MASK_THRESHOLD).

    Returns:
        boxes int32 [n, (y1, x1, y2, x2)] original pixels, class_ids int32
        [n], scores float32 [n], masks bool [H, W, n].
    """
    r = unmold_result(detections, mrcnn_mask, original_image_shape, image_shape, window,
                      mask_threshold)
    return r["rois"], r["class_ids"], r["scores"], r["masks"]


def unmold_result(detections, mrcnn_mask, original_image_shape, image_shape, window,
                  mask_threshold=0.5, soft_masks=False, sparse=False):
    """One image's padded detections -> a ``detect()`` result dict.

    The mask of each detection (its class's channel of ``mrcnn_mask``) is
    pasted into its box at the original resolution by
    `mrcnn.data.masks.mini.paste_values`; the binary masks are the pasted
    probabilities ``>= mask_threshold``, so for a threshold > 0 ``masks ==
    (soft_masks >= mask_threshold)`` exactly.

    Args:
        detections, mrcnn_mask, original_image_shape, image_shape, window,
        mask_threshold: as `unmold_detections`.
        soft_masks: also return ``soft_masks``, the pasted probabilities
            (float32 ``[H, W, n]``, 0 outside each box).
        sparse: masks (and soft masks) as
            :class:`~mrcnn.data.masks.sparse.SparseMasks` instead of dense
            arrays: memory proportional to the boxes' area, not ``H * W * n``
            (soft values of 0 are not stored, as ``SparseMasks.from_dense``).

    Returns:
        dict with ``rois`` int32 [n, (y1, x1, y2, x2)] original pixels,
        ``class_ids`` int32 [n], ``scores`` float32 [n], ``masks`` bool
        [H, W, n] (or SparseMasks) and, with `soft_masks`, ``soft_masks``.
    """
    boxes, class_ids, scores, probs = _unmold_boxes(detections, mrcnn_mask,
                                                    original_image_shape, image_shape, window)
    oh, ow = int(original_image_shape[0]), int(original_image_shape[1])
    n = class_ids.size
    inst, ys, xs, values = paste_values(probs, boxes, (oh, ow))
    on = values >= mask_threshold
    result = {"rois": boxes, "class_ids": class_ids, "scores": scores}
    if sparse:
        result["masks"] = SparseMasks.from_sorted((oh, ow), n, inst[on], ys[on] * ow + xs[on])
    else:
        result["masks"] = np.zeros((oh, ow, n), bool)
        result["masks"][ys[on], xs[on], inst[on]] = True
    if soft_masks and sparse:
        nz = values > 0
        result["soft_masks"] = SparseMasks.from_sorted((oh, ow), n, inst[nz],
                                                       ys[nz] * ow + xs[nz], values[nz])
    elif soft_masks:
        result["soft_masks"] = np.zeros((oh, ow, n), np.float32)
        result["soft_masks"][ys, xs, inst] = values
    return result


def unmold_batch(detections, mrcnn_mask, original_shapes, image_shape, windows,
                 mask_threshold=0.5, soft_masks=False, sparse=False):
    """`unmold_result` of each image of a batch (``len(original_shapes)`` images).

    Args:
        detections: [B, N, 6] padded detections; mrcnn_mask: [B, N, mh, mw,
            num_classes]; original_shapes: per image ``(H, W, ...)`` (a list
            of up to B); image_shape: the molded shape; windows: [B, 4].
        mask_threshold, soft_masks, sparse: see `unmold_result`.
    """
    return [unmold_result(detections[i], mrcnn_mask[i], shape, image_shape, windows[i],
                          mask_threshold, soft_masks, sparse)
            for i, shape in enumerate(original_shapes)]


def _unmold_boxes(detections, mrcnn_mask, original_image_shape, image_shape, window):
    """Kept detections: boxes int32 [n, 4] original pixels, class ids, scores, and
    float32 [n, mh, mw] probabilities of each one's class."""
    class_ids = detections[:, 4].astype(np.int32)
    keep = np.flatnonzero(class_ids > 0)
    class_ids = class_ids[keep]
    scores = detections[keep, 5].astype(np.float32)
    h, w = int(image_shape[0]), int(image_shape[1])
    # normalized -> molded-image pixels (floats) -> original pixels
    boxes = detections[keep, :4] * np.array([h - 1, w - 1, h - 1, w - 1]) + \
        np.array([0, 0, 1, 1])
    oh, ow = int(original_image_shape[0]), int(original_image_shape[1])
    boxes = undo_resize_boxes(boxes, window, 1.0, original_shape=(oh, ow))
    boxes = np.round(boxes).astype(np.int32)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, class_ids, scores, keep = boxes[ok], class_ids[ok], scores[ok], keep[ok]
    probs = mrcnn_mask[keep, :, :, class_ids] if keep.size else \
        np.zeros((0,) + mrcnn_mask.shape[1:3], np.float32)
    return boxes, class_ids, scores, np.asarray(probs, np.float32)
