"""Images into the model and detections back out (Matterport's ``mold_inputs`` / ``unmold_detections``)."""

import keras
import numpy as np

from mrcnn.data.boxes import scale_boxes
from mrcnn.data.fit import fit_image, undo_resize_boxes
from mrcnn.data.image import mold_image
from mrcnn.data.image_meta import compose_image_meta, parse_image_meta
from mrcnn.data.masks.mini import paste_blocks, paste_values, write_blocks
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


def detect_molded(keras_model, config, molded_images, image_metas, original_shapes=None,
                  windows=None, soft_masks=False, sparse=False, log=None):
    """Run the inference model on molded images; their `unmold_result` dicts.

    Args:
        keras_model: the inference ``keras.Model`` ([images, metas] ->
            detections, ..., masks as its outputs 0 and 3).
        config: its Config (BATCH_SIZE, DETECTION_MASK_THRESHOLD, DETECTION_MASK_PASTE,
            MASK_BOX_SCALE).
        molded_images, image_metas: up to BATCH_SIZE molded images and metas.
        original_shapes: per image ``(H, W, ...)``; default the molded shape
            (results in molded pixels).
        windows: per image window; default those in the metas.
        soft_masks, sparse: as `unmold_result`.
        log: ``log(name, array)`` to print the inputs (Matterport's verbose).
    """
    molded, metas = pad_batch(molded_images, image_metas, config.BATCH_SIZE)
    if log is not None:
        log("molded_images", molded), log("image_metas", metas)
    outputs = keras_model.predict_on_batch([molded, metas])
    detections, masks = (np.asarray(keras.ops.convert_to_numpy(outputs[i])) for i in (0, 3))
    windows = parse_image_meta(image_metas)["window"] if windows is None else windows
    shapes = [molded.shape[1:]] * len(molded_images) if original_shapes is None \
        else original_shapes
    return unmold_batch(detections, masks, shapes, molded.shape[1:], windows,
                        config.DETECTION_MASK_THRESHOLD, soft_masks, sparse,
                        config.DETECTION_MASK_PASTE, getattr(config, "MASK_BOX_SCALE", 1.0))


def unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window,
                      mask_threshold=0.5, paste="centers", mask_box_scale=1.0):
    """One image's padded detections -> boxes, class ids, scores, full-size masks.

    Args:
        detections: [N, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded.
        mrcnn_mask: [N, mh, mw, num_classes] mask probabilities.
        original_image_shape: [H, W, C] of the image before molding.
        image_shape: [H, W, C] of the molded image.
        window: (y1, x1, y2, x2) of the real image in the molded one (pixels).
        mask_threshold: probability from which a mask pixel is on
            (Config.DETECTION_MASK_THRESHOLD).
        paste: "centers" or "grid" (Config.DETECTION_MASK_PASTE; `unmold_result`).
        mask_box_scale: Config.MASK_BOX_SCALE (`unmold_result`).

    Returns:
        boxes int32 [n, (y1, x1, y2, x2)] original pixels, class_ids int32
        [n], scores float32 [n], masks bool [H, W, n].
    """
    r = unmold_result(detections, mrcnn_mask, original_image_shape, image_shape, window,
                      mask_threshold, paste=paste, mask_box_scale=mask_box_scale)
    return r["rois"], r["class_ids"], r["scores"], r["masks"]


def unmold_result(detections, mrcnn_mask, original_image_shape, image_shape, window,
                  mask_threshold=0.5, soft_masks=False, sparse=False, paste="centers",
                  mask_box_scale=1.0):
    """One image's padded detections -> a ``detect()`` result dict.

    The mask of each detection (its class's channel of ``mrcnn_mask``) is
    pasted into its box at the original resolution by
    `mrcnn.data.masks.mini.paste_blocks` (dense masks) or `paste_values` (sparse ones:
    the same values, bit for bit); the binary masks are the pasted
    probabilities ``>= mask_threshold``, so for a threshold > 0 ``masks ==
    (soft_masks >= mask_threshold)`` exactly.

    Args:
        detections, mrcnn_mask, original_image_shape, image_shape, window,
        mask_threshold: as `unmold_detections`.
        soft_masks: also return ``soft_masks``, the pasted probabilities
            (float32 ``[H, W, n]``, 0 outside each (grown) box).
        sparse: masks (and soft masks) as
            :class:`~mrcnn.data.masks.sparse.SparseMasks` instead of dense
            arrays: memory proportional to the boxes' area, not ``H * W * n``
            (soft values of 0 are not stored, as ``SparseMasks.from_dense``).
        paste: "centers" (Matterport's: the mask resized to the rounded box,
            pixel centres aligned) or "grid" (mask row i on the pixel where
            ROIAlign sampled row i, `grid_paste_boxes`, on the pixels of the
            rounded box, the mask's edges repeated past the outer samples);
            see `MASK_PASTES`.
        mask_box_scale: the factor the mask head's boxes were grown by
            (Config.MASK_BOX_SCALE, `mrcnn.layers.mask_boxes`): each mask is
            pasted into its detection box grown so, and may reach past
            ``rois`` (which stay the detection boxes).

    Returns:
        dict with ``rois`` int32 [n, (y1, x1, y2, x2)] original pixels,
        ``class_ids`` int32 [n], ``scores`` float32 [n], ``masks`` bool
        [H, W, n] (or SparseMasks) and, with `soft_masks`, ``soft_masks``.
    """
    boxes, class_ids, scores, probs, norm = _unmold_boxes(
        detections, mrcnn_mask, original_image_shape, image_shape, window)
    oh, ow = int(original_image_shape[0]), int(original_image_shape[1])
    n = class_ids.size
    paste_boxes = boxes
    if mask_box_scale != 1.0:   # the mask covers the box grown as the mask head saw it
        norm = scale_boxes(norm, mask_box_scale)
        paste_boxes = _pixel_boxes(norm, image_shape, window, original_image_shape)
    result = {"rois": boxes, "class_ids": class_ids, "scores": scores}
    if sparse:   # per-pixel entries: vectorized over every box, fast for many small ones
        inst, ys, xs, values = _paste(paste_values, probs, paste_boxes, norm, image_shape,
                                      window, original_image_shape, paste)
        on = values >= mask_threshold
        result["masks"] = SparseMasks.from_sorted((oh, ow), n, inst[on], ys[on] * ow + xs[on])
        if soft_masks:
            nz = values > 0
            result["soft_masks"] = SparseMasks.from_sorted((oh, ow), n, inst[nz],
                                                           ys[nz] * ow + xs[nz], values[nz])
        return result
    # dense masks: one block per box, written as a slice
    blocks = _paste(paste_blocks, probs, paste_boxes, norm, image_shape, window,
                    original_image_shape, paste)
    result["masks"] = write_blocks(np.zeros((oh, ow, n), bool), blocks, mask_threshold)
    if soft_masks:
        result["soft_masks"] = write_blocks(np.zeros((oh, ow, n), np.float32), blocks)
    return result


def unmold_batch(detections, mrcnn_mask, original_shapes, image_shape, windows,
                 mask_threshold=0.5, soft_masks=False, sparse=False, paste="centers",
                 mask_box_scale=1.0):
    """`unmold_result` of each image of a batch (``len(original_shapes)`` images).

    Args:
        detections: [B, N, 6] padded detections; mrcnn_mask: [B, N, mh, mw,
            num_classes]; original_shapes: per image ``(H, W, ...)`` (a list
            of up to B); image_shape: the molded shape; windows: [B, 4].
        mask_threshold, soft_masks, sparse, paste, mask_box_scale: see `unmold_result`.
    """
    return [unmold_result(detections[i], mrcnn_mask[i], shape, image_shape, windows[i],
                          mask_threshold, soft_masks, sparse, paste, mask_box_scale)
            for i, shape in enumerate(original_shapes)]


#: How a detection's mask is placed in its box (Config.DETECTION_MASK_PASTE): "grid",
#: mask row i on ROIAlign's sample i, where the training targets were cut; "centers",
#: the mask resized to the box with pixel centres aligned (Matterport's unmold_mask).
MASK_PASTES = ("grid", "centers")


def grid_paste_boxes(norm_boxes, image_shape, window, original_image_shape, mask_size):
    """Fractional paste boxes that put mask row i where ROIAlign sampled row i of the ROI.

    ROIAlign (and the mask targets, `mrcnn.layers.detection_targets.mask_targets`)
    samples an ROI with normalized corners (y1, x1, y2, x2) at the molded
    image's pixel-index coordinates ``y1 * (h - 1) + i * (y2 - y1) * (h - 1) / (M - 1)``,
    i = 0..M-1: the first and last samples on the ROI's first and last pixel
    centres. Mapped to the original image (pixel centres, the per-axis factor
    ``original size / window size`` of `mrcnn.data.fit.undo_resize_boxes`),
    those are the centres ``first`` and ``last``; `paste_blocks` puts mask row
    i on ``first + i * cell`` (cell = (last - first) / (M - 1)) when given the
    box ``[first + 0.5 - cell / 2, last + 0.5 + cell / 2)`` (its edges half a
    cell beyond the outer sample centres).

    Args:
        norm_boxes: [n, (y1, x1, y2, x2)] normalized detection boxes.
        image_shape: (h, w, ...) of the molded image.
        window: (y1, x1, y2, x2) of the image inside the molded one (pixels).
        original_image_shape: (H, W, ...) of the original image.
        mask_size: (M_h, M_w) of the predicted masks.

    Returns:
        float64 [n, (y1, x1, y2, x2)] paste boxes in original pixels (edge
        coordinates, y2/x2 exclusive; not clipped).
    """
    norm_boxes = np.asarray(norm_boxes, np.float64).reshape(-1, 4)
    h, w = float(image_shape[0]), float(image_shape[1])
    wy1, wx1, wy2, wx2 = (float(v) for v in window)
    oh, ow = float(original_image_shape[0]), float(original_image_shape[1])
    if wy2 <= wy1 or wx2 <= wx1:
        raise ValueError(f"window {tuple(window)} has no area")
    shift = np.array([wy1, wx1])
    factor = np.array([oh / (wy2 - wy1), ow / (wx2 - wx1)])
    extent = np.array([h - 1, w - 1])
    cells = np.array([mask_size[0] - 1, mask_size[1] - 1], np.float64)
    # sample centres, molded pixel index -> original pixel index (centres map as
    # (m + 0.5 - shift) * factor - 0.5)
    first = (norm_boxes[:, :2] * extent + 0.5 - shift) * factor - 0.5
    last = (norm_boxes[:, 2:] * extent + 0.5 - shift) * factor - 0.5
    # a one-pixel ROI still covers its pixel (a cell of 1 / M)
    cell = np.maximum((last - first) / np.maximum(cells, 1.0), 1.0 / (cells + 1.0))
    return np.concatenate([first + 0.5 - cell / 2, last + 0.5 + cell / 2], axis=1)


def _paste(paster, probs, boxes, norm_boxes, image_shape, window, original_image_shape,
           paste):
    """`paster` (`paste_values` or `paste_blocks`) of the kept detections' masks by the
    `paste` geometry, inside their boxes."""
    oh, ow = int(original_image_shape[0]), int(original_image_shape[1])
    if paste not in MASK_PASTES:
        raise ValueError(f"mask paste must be one of {MASK_PASTES}, got {paste!r}")
    if paste == "centers" or not len(boxes):
        return paster(probs, boxes, (oh, ow))
    grid = grid_paste_boxes(norm_boxes, image_shape, window, original_image_shape,
                            probs.shape[1:3])
    # the pixels of the detection's own (rounded) box, as with "centers"; those past
    # the outer samples repeat the mask's edge
    return paster(probs, grid, (oh, ow), cover=boxes)


def _pixel_boxes(norm_boxes, image_shape, window, original_image_shape):
    """Normalized boxes in the molded image -> int32 [n, 4] boxes in original pixels."""
    h, w = int(image_shape[0]), int(image_shape[1])
    boxes = np.asarray(norm_boxes, np.float64).reshape(-1, 4) * \
        np.array([h - 1, w - 1, h - 1, w - 1]) + np.array([0, 0, 1, 1])
    oh, ow = int(original_image_shape[0]), int(original_image_shape[1])
    boxes = undo_resize_boxes(boxes, window, 1.0, original_shape=(oh, ow))
    return np.round(boxes).astype(np.int32)


def _unmold_boxes(detections, mrcnn_mask, original_image_shape, image_shape, window):
    """Kept detections: boxes int32 [n, 4] original pixels, class ids, scores, and
    float32 [n, mh, mw] probabilities of each one's class, and the normalized boxes."""
    class_ids = detections[:, 4].astype(np.int32)
    keep = np.flatnonzero(class_ids > 0)
    class_ids = class_ids[keep]
    scores = detections[keep, 5].astype(np.float32)
    boxes = _pixel_boxes(detections[keep, :4], image_shape, window, original_image_shape)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, class_ids, scores, keep = boxes[ok], class_ids[ok], scores[ok], keep[ok]
    probs = mrcnn_mask[keep, :, :, class_ids] if keep.size else \
        np.zeros((0,) + mrcnn_mask.shape[1:3], np.float32)
    return boxes, class_ids, scores, np.asarray(probs, np.float32), detections[keep, :4]
