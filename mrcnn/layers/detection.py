"""DetectionLayer: final boxes, classes and scores from the classifier head."""

import keras
import numpy as np
from keras import ops

from mrcnn.ops.boxes import apply_box_deltas_graph, clip_boxes_graph, sanitize_deltas
from mrcnn.ops.nms import batched_non_max_suppression_graph

# Shift between the boxes of consecutive classes in the class-offset NMS
# trick. Boxes are normalized and clipped to the window (inside [0, 1]), so
# a shift of 2 keeps the boxes of different classes apart.
_CLASS_OFFSET = 2.0


def first_argmax(probs):
    """Index of the first maximum along the last axis, int32 (``argmax``'s tie rule).

    Written with max / where / min instead of ``ops.argmax``: on TensorFlow
    Keras' float argmax checks the sign bit with Bitcast and BitwiseAnd, ops
    that tf2onnx leaves unconverted, so an ONNX export of the detection layer
    would not run (see `mrcnn.inference.export`).

    Args:
        probs: [..., C] float scores.

    Returns:
        [...] int32 in [0, C).
    """
    n = int(probs.shape[-1])
    best = ops.max(probs, axis=-1, keepdims=True)
    index = ops.where(probs >= best, ops.arange(n, dtype="int32"), n)
    return ops.minimum(ops.min(index, axis=-1), n - 1)


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionLayer(keras.layers.Layer):
    """Refines, filters and suppresses the classified ROIs of each image.

    Per image and ROI: the top class (argmax of the probabilities) and its
    score; the ROI refined with that class's deltas (times
    ``bbox_std_dev``) and clipped to the window. A ROI is kept when its
    class is not background, its score is ``>= min_confidence``, it is
    not padding (all-zero ROI) and its clipped box is not empty (a box wholly
    outside the window, in the input's padding, is no detection).
    Non-maximum suppression runs per class at
    ``nms_threshold`` (in one call: each class's boxes are shifted by
    ``2 * class_id`` so different classes never overlap), and the
    ``max_instances`` best survivors are returned.

    Args:
        max_instances: detections per image (DETECTION_MAX_INSTANCES).
        min_confidence: lowest class probability kept
            (DETECTION_MIN_CONFIDENCE).
        nms_threshold: IoU above which a lower-scored box of the same class
            is suppressed (DETECTION_NMS_THRESHOLD).
        bbox_std_dev: 4 floats multiplying the predicted deltas
            (BBOX_STD_DEV).
        **kwargs: standard Keras layer arguments (``name``, ...).

    Call arguments:
        inputs: list ``[rois, mrcnn_class, mrcnn_bbox, window]``:
            rois: ``[B, N, (y1, x1, y2, x2)]`` normalized, zero padded.
            mrcnn_class: ``[B, N, C]`` class probabilities.
            mrcnn_bbox: ``[B, N, C, (dy, dx, log(dh), log(dw))]`` deltas.
            window: ``[B, (y1, x1, y2, x2)]`` normalized window of the real
                image inside the padded input.

    Returns:
        float32 ``[B, max_instances, 6]`` rows ``(y1, x1, y2, x2, class_id,
        score)`` with normalized boxes, sorted by score (descending); rows
        past the detections found are zero.
    """

    def __init__(self, max_instances, min_confidence, nms_threshold,
                 bbox_std_dev, **kwargs):
        super().__init__(**kwargs)
        if int(max_instances) != max_instances or max_instances < 1:
            raise ValueError(
                "max_instances must be a positive int; got "
                f"{max_instances!r}.")
        if not 0.0 <= float(nms_threshold) <= 1.0:
            raise ValueError(
                f"nms_threshold must be in [0, 1]; got {nms_threshold!r}.")
        std = np.asarray(bbox_std_dev, dtype=np.float32).reshape(-1)
        if std.shape != (4,):
            raise ValueError(
                f"bbox_std_dev must hold 4 floats; got {bbox_std_dev!r}.")
        self.max_instances = int(max_instances)
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.bbox_std_dev = [float(v) for v in std]

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 4:
            raise ValueError(
                "DetectionLayer expects [rois, mrcnn_class, mrcnn_bbox, "
                "window].")
        rois, probs, deltas, window = (ops.cast(x, "float32")
                                       for x in inputs)
        class_ids = first_argmax(probs)  # [B, N]
        scores = ops.squeeze(ops.take_along_axis(
            probs, ops.expand_dims(class_ids, -1), axis=2), -1)
        class_deltas = ops.squeeze(ops.take_along_axis(
            deltas, ops.expand_dims(class_ids, (-2, -1)), axis=2), 2)
        std = ops.convert_to_tensor(self.bbox_std_dev, dtype="float32")
        boxes = clip_boxes_graph(
            apply_box_deltas_graph(rois, sanitize_deltas(class_deltas * std)),
            window[:, None, :])

        not_padding = ops.any(ops.not_equal(rois, 0.0), axis=-1)
        # A box clipped to nothing lay wholly outside the image window (in the padding
        # of a small image in a large input): no detection, and no slot among
        # max_instances taken from the image's own.
        inside = ops.logical_and(boxes[..., 2] > boxes[..., 0], boxes[..., 3] > boxes[..., 1])
        keep = ops.logical_and(
            ops.logical_and(class_ids > 0, scores >= self.min_confidence),
            ops.logical_and(not_padding, inside))
        # Rejected ROIs get score -1: NMS ranks them after every kept one, so
        # they can neither suppress a kept box nor take its place; the score
        # threshold lets NMS skip them (and stop early); any left are dropped
        # below.
        nms_scores = ops.where(keep, scores, -1.0)
        offset = ops.cast(class_ids, "float32")[..., None] * _CLASS_OFFSET
        chosen = batched_non_max_suppression_graph(
            boxes + offset, nms_scores, self.max_instances,
            self.nms_threshold, score_threshold=-0.5)
        chosen = ops.cast(chosen, "int32")                     # [B, M]
        safe = ops.maximum(chosen, 0)
        valid = ops.logical_and(
            chosen >= 0, ops.take_along_axis(keep, safe, axis=1))

        def gather(values):
            return ops.take_along_axis(values, safe, axis=1)[..., None]

        detections = ops.concatenate([
            ops.take_along_axis(boxes, safe[..., None], axis=1),
            ops.cast(gather(class_ids), "float32"),
            gather(scores),
        ], axis=-1)
        return ops.where(valid[..., None], detections, 0.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.max_instances, 6)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(
            self.compute_output_shape([x.shape for x in inputs]),
            dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({
            "max_instances": self.max_instances,
            "min_confidence": self.min_confidence,
            "nms_threshold": self.nms_threshold,
            "bbox_std_dev": self.bbox_std_dev,
        })
        return config
