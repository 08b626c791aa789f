"""ProposalLayer: turns RPN scores and deltas into NMS-filtered proposals."""

import keras
import numpy as np
from keras import ops

from mrcnn.ops.boxes import apply_box_deltas_graph, clip_boxes_graph, sanitize_deltas
from mrcnn.ops.nms import batched_non_max_suppression_graph


@keras.saving.register_keras_serializable(package="mrcnn")
class ProposalLayer(keras.layers.Layer):
    """Selects region proposals from the RPN outputs.

    Per image: take the ``min(pre_nms_limit, A)`` anchors with the highest
    foreground score, refine them with their predicted deltas (times
    ``rpn_bbox_std_dev``), clip them to the image ``[0, 0, 1, 1]``, run
    non-maximum suppression at ``nms_threshold`` and keep up to
    ``proposal_count`` boxes, best score first, zero padded.

    Args:
        proposal_count: proposals kept per image (POST_NMS_ROIS_TRAINING /
            POST_NMS_ROIS_INFERENCE).
        nms_threshold: IoU above which the lower-scored box is suppressed
            (RPN_NMS_THRESHOLD).
        pre_nms_limit: anchors kept by score before NMS (PRE_NMS_LIMIT).
        rpn_bbox_std_dev: 4 floats multiplying the predicted deltas
            (RPN_BBOX_STD_DEV).
        **kwargs: standard Keras layer arguments (``name``, ...).

    Call arguments:
        inputs: list ``[rpn_probs, rpn_bbox, anchors]``:
            rpn_probs: ``[B, A, 2]`` (background, foreground) probabilities.
            rpn_bbox: ``[B, A, (dy, dx, log(dh), log(dw))]`` deltas, not yet
                multiplied by the std dev.
            anchors: ``[1 or B, A, (y1, x1, y2, x2)]`` normalized anchors.

    Returns:
        float32 ``[B, proposal_count, (y1, x1, y2, x2)]`` normalized
        proposals, sorted by score, zero padded when NMS keeps fewer.
    """

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit,
                 rpn_bbox_std_dev, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("proposal_count", proposal_count),
                            ("pre_nms_limit", pre_nms_limit)):
            if int(value) != value or value < 1:
                raise ValueError(
                    f"{name} must be a positive int; got {value!r}.")
        if not 0.0 <= float(nms_threshold) <= 1.0:
            raise ValueError(
                f"nms_threshold must be in [0, 1]; got {nms_threshold!r}.")
        std = np.asarray(rpn_bbox_std_dev, dtype=np.float32).reshape(-1)
        if std.shape != (4,):
            raise ValueError(
                "rpn_bbox_std_dev must hold 4 floats; got "
                f"{rpn_bbox_std_dev!r}.")
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in std]

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 3:
            raise ValueError(
                "ProposalLayer expects [rpn_probs, rpn_bbox, anchors].")
        rpn_probs, rpn_bbox, anchors = inputs
        scores = ops.cast(rpn_probs[..., 1], "float32")        # [B, A]
        deltas = ops.cast(rpn_bbox, "float32")
        anchors = ops.cast(anchors, "float32")
        num_anchors = scores.shape[1]
        limit = min(self.pre_nms_limit, num_anchors)

        # A diverging network must not crash the graph: NaN scores rank last.
        scores = ops.where(ops.isfinite(scores), scores, ops.zeros_like(scores))
        scores, order = ops.top_k(scores, limit)               # [B, K]
        std = ops.convert_to_tensor(self.rpn_bbox_std_dev, dtype="float32")
        deltas = ops.take_along_axis(
            deltas, ops.expand_dims(order, -1), axis=1) * std
        if anchors.shape[0] == 1:
            anchors = ops.take(anchors[0], order, axis=0)      # [B, K, 4]
        else:
            anchors = ops.take_along_axis(
                anchors, ops.expand_dims(order, -1), axis=1)
        boxes = apply_box_deltas_graph(anchors, sanitize_deltas(deltas))
        window = ops.convert_to_tensor([0.0, 0.0, 1.0, 1.0], dtype="float32")
        boxes = clip_boxes_graph(boxes, window)

        keep = batched_non_max_suppression_graph(
            boxes, scores, self.proposal_count, self.nms_threshold)
        keep = ops.cast(keep, "int32")                         # [B, P]
        valid = keep >= 0
        proposals = ops.take_along_axis(
            boxes, ops.expand_dims(ops.maximum(keep, 0), -1), axis=1)
        return ops.where(valid[..., None], proposals, 0.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.proposal_count, 4)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(
            self.compute_output_shape([x.shape for x in inputs]),
            dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({
            "proposal_count": self.proposal_count,
            "nms_threshold": self.nms_threshold,
            "pre_nms_limit": self.pre_nms_limit,
            "rpn_bbox_std_dev": self.rpn_bbox_std_dev,
        })
        return config
