"""DetectionTargetLayer: samples training ROIs and builds the head targets."""

import keras
import numpy as np
from keras import ops

from mrcnn.ops.boxes import box_refinement_graph, overlaps_graph, scale_boxes_graph
from mrcnn.ops.crop_and_resize import crop_and_resize


def mask_targets(rois, gt_boxes, gt_masks, assigned, mask_shape,
                 use_mini_mask=True, image_shape=None):
    """Crops the mask of each ROI's assigned GT to ``mask_shape``.

    Normalized boxes follow `mrcnn.data.boxes.norm_boxes`: 0 and 1 are the
    centres of the first and last pixel, so a ROI of pixel rows ``[r1, r2)``
    samples the mask from the centre of row ``r1`` to that of row ``r2 - 1``
    (``MH`` evenly spaced rows), the grid on which ROIAlign samples the ROI's
    features. With full-image masks the ROI crops the mask directly.

    With mini masks each GT mask covers its own box: `minimize_mask` resized
    the box's ``h`` pixel rows to ``mh`` with pixel centres aligned (mini row
    ``j`` lies at image row ``gt_y1 + (j + 0.5) * h / mh - 0.5``), so image
    row ``y`` is mini row ``(y - gt_y1 + 0.5) * mh / h - 0.5``; the ROI is
    mapped into the mini mask (given a border of zeros) by that rule and the
    targets sample the same image positions as from the full mask (equal
    when ``mh == h``). That needs the image size, ``image_shape``; without
    it (Matterport's rule)
    the ROI is expressed in the GT box's normalized frame
    (``(roi_y1 - gt_y1) / gt_h``), which puts the mini mask's first and last
    pixel centres on the box's and so shrinks masks smaller than the mini
    mask and stretches larger ones by up to a mini pixel
    (benchmarks/mask_targets.py). Parts of the ROI outside the GT box
    sample 0.

    Args:
        rois: float ``[B, T, (y1, x1, y2, x2)]`` normalized ROIs.
        gt_boxes: float ``[B, G, (y1, x1, y2, x2)]`` normalized GT boxes.
        gt_masks: ``[B, mh, mw, G]`` bool / 0-1 masks (mini or full-image).
        assigned: int32 ``[B, T]`` GT index in ``[0, G)`` of each ROI.
        mask_shape: ``(MH, MW)`` python ints.
        use_mini_mask: whether ``gt_masks`` are mini masks.
        image_shape: ``(H, W)`` of the image the boxes are normalized to
            (mini masks only; None: Matterport's rule, above).

    Returns:
        float32 ``[B, T, MH, MW]`` masks of 0/1 (bilinear sample >= 0.5).
    """
    rois = ops.cast(rois, "float32")
    gt_boxes = ops.cast(gt_boxes, "float32")
    assigned = ops.cast(assigned, "int32")
    mask_shape = tuple(int(v) for v in mask_shape)
    rois_per_image = rois.shape[1]
    num_gt = gt_masks.shape[3]
    mask_h, mask_w = gt_masks.shape[1], gt_masks.shape[2]
    masks = ops.cast(gt_masks, "float32")
    # [B, mh, mw, G] -> [B * G, mh, mw, 1]: one "image" per GT mask.
    masks = ops.reshape(ops.transpose(masks, (0, 3, 1, 2)),
                        (-1, mask_h, mask_w, 1))
    boxes = rois
    if use_mini_mask:
        gt = ops.take_along_axis(
            gt_boxes, ops.expand_dims(assigned, -1), axis=1)
        gt_h = gt[..., 2] - gt[..., 0]
        gt_w = gt[..., 3] - gt[..., 1]
        # Padding GT (zero size) is only ever assigned to rows the caller
        # discards; keep them finite.
        if image_shape is None:
            gt_h = ops.where(gt_h > 0, gt_h, ops.ones_like(gt_h))
            gt_w = ops.where(gt_w > 0, gt_w, ops.ones_like(gt_w))
            boxes = ops.stack([
                (rois[..., 0] - gt[..., 0]) / gt_h,
                (rois[..., 1] - gt[..., 1]) / gt_w,
                (rois[..., 2] - gt[..., 0]) / gt_h,
                (rois[..., 3] - gt[..., 1]) / gt_w,
            ], axis=-1)
        else:
            span_y, span_x = (float(int(v) - 1) for v in image_shape[:2])
            # The GT box's pixel size (rows y1..y2-1: (y2n - y1n) * (H - 1) + 1);
            # padding GT (zero size) gives 1 and is discarded by the caller.
            pixels_h = ops.maximum(gt_h * span_y + 1.0, 1.0)
            pixels_w = ops.maximum(gt_w * span_x + 1.0, 1.0)

            def mini_coord(roi, gt_start, span, pixels, mini):
                # image row (normalized) -> mini row -> normalized in the mini mask
                # with its border of zeros (below): row + 1 of mini + 2 rows
                row = ((roi - gt_start) * span + 0.5) * (mini / pixels) - 0.5
                return (row + 1.0) / float(mini + 1)

            # One pixel of zeros around each mini mask: samples between the box's
            # edge pixel and the outside interpolate with 0, as in a full mask
            # (crop_and_resize gives 0 to any sample outside the image instead).
            masks = ops.pad(masks, ((0, 0), (1, 1), (1, 1), (0, 0)))

            boxes = ops.stack([
                mini_coord(rois[..., 0], gt[..., 0], span_y, pixels_h, mask_h),
                mini_coord(rois[..., 1], gt[..., 1], span_x, pixels_w, mask_w),
                mini_coord(rois[..., 2], gt[..., 0], span_y, pixels_h, mask_h),
                mini_coord(rois[..., 3], gt[..., 1], span_x, pixels_w, mask_w),
            ], axis=-1)
    batch = ops.shape(rois)[0]
    image_index = (ops.arange(batch, dtype="int32")[:, None] * num_gt
                   + assigned)
    # The generic (keras.ops) kernel: tf.image.crop_and_resize has no XLA
    # kernel, and Keras compiles with XLA by default on TensorFlow + GPU.
    crops = crop_and_resize(
        masks, ops.reshape(boxes, (-1, 4)),
        ops.reshape(image_index, (-1,)), mask_shape, method="generic")
    crops = ops.reshape(crops, (-1, rois_per_image) + mask_shape)
    return ops.cast(crops >= 0.5, "float32")


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionTargetLayer(keras.layers.Layer):
    """Samples ``T`` ROIs per image and builds class, box and mask targets.

    Per image (all with static shapes):

    1. Candidates are the non-padding proposals (a proposal is padding when
       all four coordinates are 0) and, with ``include_gt_boxes``, the
       non-crowd ground-truth boxes themselves (torchvision's trick: it gives
       the heads positives while the RPN is still poor), those of positive
       height and width only (a zero-area box has IoU 0 with everything, so it
       would be a background ROI on top of its object).
    2. IoU with the non-crowd GT boxes (``class_id > 0``). Positive: max IoU
       ``>= 0.5``. Negative: max IoU ``< 0.5`` and IoU ``< 0.001`` with every
       crowd box (``class_id < 0``). GT rows with ``class_id == 0`` are
       padding and ignored.
    3. Up to ``int(T * roi_positive_ratio)`` positives are drawn at random.
       Then ``int(pos_count / roi_positive_ratio) - pos_count`` negatives
       (Matterport's balance) are drawn at random, at most the available
       ones and at most ``T - pos_count``. When an image has no positive
       candidate (e.g. no ground truth) Matterport's formula would give no
       ROI at all; this layer fills all ``T`` rows with negatives instead
       (as many as are available), so such images still train the
       classifier on background.
    4. Each positive is assigned its max-IoU GT: its class, its box
       refinement ``box_refinement_graph(roi, gt) / bbox_std_dev`` and a mask
       target cropped from that GT's mask (see ``use_mini_mask``), resized
       to ``mask_shape`` and binarized at 0.5.

    Rows are ordered positives, negatives, zero padding. Negatives have
    class 0, zero deltas and zero masks; padding rows are all zeros. The
    outputs carry no gradient.

    Args:
        train_rois_per_image: ``T``, ROIs per image (TRAIN_ROIS_PER_IMAGE).
        roi_positive_ratio: largest fraction of positives, in ``(0, 1]``.
        bbox_std_dev: 4 floats dividing the box refinement targets.
        mask_shape: ``(MH, MW)`` mask target size, e.g. ``(28, 28)``.
        use_mini_mask: True when ``gt_masks`` are mini masks (each GT's mask
            resized to its own bounding box); False for full-image masks.
        image_shape: ``(H, W)`` of the training images: mini-mask targets
            then sample the image positions a full mask would give (see
            `mask_targets`); None keeps Matterport's rule.
        mask_box_scale: mask targets are cut from each ROI grown this many
            times about its centre (Config.MASK_BOX_SCALE, see
            `mrcnn.layers.mask_boxes`); the returned ``rois`` are not grown.
        include_gt_boxes: add the GT boxes to the candidate ROIs.
        seed: int seed of the layer's random sampling (None: random).
        **kwargs: standard Keras layer arguments (``name``, ...).

    Call arguments:
        inputs: list ``[proposals, gt_class_ids, gt_boxes, gt_masks]``:
            proposals: ``[B, N, (y1, x1, y2, x2)]`` normalized, zero padded.
            gt_class_ids: int ``[B, G]``; 0 padding, negative crowd.
            gt_boxes: ``[B, G, (y1, x1, y2, x2)]`` normalized.
            gt_masks: ``[B, mh, mw, G]`` bool/0-1 masks: mini masks in box
                coordinates if ``use_mini_mask``, else full-image masks.

    Returns:
        list ``[rois, target_class_ids, target_deltas, target_masks]``:
            rois: float32 ``[B, T, (y1, x1, y2, x2)]`` normalized.
            target_class_ids: int32 ``[B, T]``.
            target_deltas: float32 ``[B, T, (dy, dx, log(dh), log(dw))]``
                divided by ``bbox_std_dev``.
            target_masks: float32 ``[B, T, MH, MW]`` of 0/1.
    """

    def __init__(self, train_rois_per_image, roi_positive_ratio,
                 bbox_std_dev, mask_shape, use_mini_mask=True,
                 include_gt_boxes=True, seed=None, image_shape=None, mask_box_scale=1.0,
                 **kwargs):
        super().__init__(**kwargs)
        if int(train_rois_per_image) != train_rois_per_image or \
                train_rois_per_image < 1:
            raise ValueError(
                "train_rois_per_image must be a positive int; got "
                f"{train_rois_per_image!r}.")
        if not 0.0 < float(roi_positive_ratio) <= 1.0:
            raise ValueError(
                "roi_positive_ratio must be in (0, 1]; got "
                f"{roi_positive_ratio!r}.")
        std = np.asarray(bbox_std_dev, dtype=np.float32).reshape(-1)
        if std.shape != (4,) or np.any(std <= 0):
            raise ValueError(
                "bbox_std_dev must be 4 positive floats; got "
                f"{bbox_std_dev!r}.")
        if len(mask_shape) != 2 or min(mask_shape) < 1:
            raise ValueError(
                f"mask_shape must be (height, width); got {mask_shape!r}.")
        self.train_rois_per_image = int(train_rois_per_image)
        self.roi_positive_ratio = float(roi_positive_ratio)
        self.bbox_std_dev = [float(v) for v in std]
        self.mask_shape = tuple(int(v) for v in mask_shape)
        self.use_mini_mask = bool(use_mini_mask)
        if image_shape is not None:
            image_shape = tuple(int(v) for v in image_shape[:2])
            if len(image_shape) != 2 or min(image_shape) < 2:
                raise ValueError(
                    f"image_shape must be (height, width) of at least 2 pixels; got "
                    f"{image_shape!r}.")
        self.image_shape = image_shape
        self.mask_box_scale = float(mask_box_scale)
        if not 1.0 <= self.mask_box_scale < float("inf"):
            raise ValueError(f"mask_box_scale must be a finite number >= 1; got {mask_box_scale!r}.")
        self.include_gt_boxes = bool(include_gt_boxes)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    # ------------------------------------------------------------- helpers

    def _sample(self, positive, negative):
        """Random positive / negative choice.

        Args:
            positive, negative: bool ``[B, M]`` disjoint candidate flags.

        Returns:
            ``(index [B, T] int32, pos_rows [B, T] bool, used_rows [B, T]
            bool)``: candidate index of each output row, whether the row is
            a positive, and whether it is a positive or a negative.
        """
        rois = self.train_rois_per_image
        num_candidates = positive.shape[1]
        pos_cap = int(rois * self.roi_positive_ratio)
        noise = keras.random.uniform(
            ops.shape(positive), seed=self.seed_generator)
        minus_one = -ops.ones_like(noise)

        pos_available = ops.sum(ops.cast(positive, "int32"), axis=1)
        neg_available = ops.sum(ops.cast(negative, "int32"), axis=1)
        pos_count = ops.minimum(pos_available, pos_cap)
        # int(pos / ratio) - pos; the 1e-3 absorbs float32 round-off
        # (66 / 0.33 must give 200, not 199).
        balanced = ops.cast(
            ops.cast(pos_count, "float32") / self.roi_positive_ratio + 1e-3,
            "int32") - pos_count
        neg_count = ops.where(pos_count > 0, balanced, rois)
        neg_count = ops.minimum(ops.minimum(neg_count, neg_available),
                                rois - pos_count)

        # Random order of the positives (negatives) via top_k of noise.
        k_pos = max(1, min(pos_cap, num_candidates))
        k_neg = min(rois, num_candidates)
        _, pos_index = ops.top_k(ops.where(positive, noise, minus_one), k_pos)
        _, neg_index = ops.top_k(ops.where(negative, noise, minus_one), k_neg)

        row = ops.arange(rois, dtype="int32")[None, :]  # [1, T]
        pos_count = pos_count[:, None]
        neg_count = neg_count[:, None]
        pos_rows = row < pos_count
        used_rows = row < pos_count + neg_count
        from_pos = ops.take_along_axis(
            pos_index, ops.broadcast_to(ops.minimum(row, k_pos - 1),
                                        ops.shape(pos_rows)), axis=1)
        from_neg = ops.take_along_axis(
            neg_index, ops.clip(row - pos_count, 0, k_neg - 1), axis=1)
        index = ops.where(pos_rows, from_pos, from_neg)
        index = ops.where(used_rows, index, ops.zeros_like(index))
        return ops.cast(index, "int32"), pos_rows, used_rows

    # ---------------------------------------------------------------- call

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 4:
            raise ValueError(
                "DetectionTargetLayer expects [proposals, gt_class_ids, "
                "gt_boxes, gt_masks].")
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        proposals = ops.cast(proposals, "float32")
        gt_class_ids = ops.cast(gt_class_ids, "int32")
        gt_boxes = ops.cast(gt_boxes, "float32")

        proposal_valid = ops.any(ops.not_equal(proposals, 0.0), axis=-1)
        gt_real = gt_class_ids > 0                       # [B, G]
        gt_crowd = gt_class_ids < 0
        if self.include_gt_boxes:
            # A GT box of zero height or width (a fragment one pixel thick: normalized
            # boxes span first to last pixel centre) overlaps nothing, itself included:
            # as a candidate it would be a background ROI lying on the object.
            gt_area = ops.logical_and(gt_boxes[..., 2] > gt_boxes[..., 0],
                                      gt_boxes[..., 3] > gt_boxes[..., 1])
            candidates = ops.concatenate([proposals, gt_boxes], axis=1)
            valid = ops.concatenate([proposal_valid, ops.logical_and(gt_real, gt_area)], axis=1)
        else:
            candidates, valid = proposals, proposal_valid

        overlaps = overlaps_graph(candidates, gt_boxes)    # [B, M, G]
        real_overlaps = ops.where(gt_real[:, None, :], overlaps, -1.0)
        max_iou = ops.max(real_overlaps, axis=2)
        assigned_all = ops.cast(ops.argmax(real_overlaps, axis=2), "int32")
        crowd_iou = ops.max(
            ops.where(gt_crowd[:, None, :], overlaps, 0.0), axis=2)
        positive = ops.logical_and(valid, max_iou >= 0.5)
        negative = ops.logical_and(
            ops.logical_and(valid, max_iou < 0.5), crowd_iou < 0.001)

        index, pos_rows, used_rows = self._sample(positive, negative)
        rois = ops.take_along_axis(
            candidates, ops.expand_dims(index, -1), axis=1)
        rois = ops.where(used_rows[..., None], rois, 0.0)
        assigned = ops.take_along_axis(assigned_all, index, axis=1)
        class_ids = ops.take_along_axis(gt_class_ids, assigned, axis=1)
        class_ids = ops.where(pos_rows, class_ids, 0)

        gt = ops.take_along_axis(gt_boxes, ops.expand_dims(assigned, -1),
                                 axis=1)
        std = ops.convert_to_tensor(self.bbox_std_dev, dtype="float32")
        deltas = box_refinement_graph(rois, gt) / std
        deltas = ops.where(pos_rows[..., None], deltas, 0.0)

        masks = mask_targets(scale_boxes_graph(rois, self.mask_box_scale), gt_boxes, gt_masks,
                             assigned, self.mask_shape, self.use_mini_mask, self.image_shape)
        masks = ops.where(pos_rows[..., None, None], masks, 0.0)

        return [ops.stop_gradient(rois),
                ops.stop_gradient(ops.cast(class_ids, "int32")),
                ops.stop_gradient(deltas),
                ops.stop_gradient(masks)]

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0]
        rois = self.train_rois_per_image
        return [(batch, rois, 4), (batch, rois), (batch, rois, 4),
                (batch, rois) + self.mask_shape]

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape([x.shape for x in inputs])
        dtypes = ["float32", "int32", "float32", "float32"]
        return [keras.KerasTensor(s, dtype=d) for s, d in zip(shapes, dtypes)]

    def get_config(self):
        config = super().get_config()
        config.update({
            "train_rois_per_image": self.train_rois_per_image,
            "roi_positive_ratio": self.roi_positive_ratio,
            "bbox_std_dev": self.bbox_std_dev,
            "mask_shape": list(self.mask_shape),
            "use_mini_mask": self.use_mini_mask,
            "include_gt_boxes": self.include_gt_boxes,
            "seed": self.seed,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "mask_box_scale": self.mask_box_scale,
        })
        return config
