"""Layers that fix or slice the batch and ROI axes of graph tensors."""

import keras
from keras import layers, ops

from mrcnn.ops.dispatch import dynamic_shapes_available


@keras.saving.register_keras_serializable(package="mrcnn")
class FixedBatch(layers.Layer):
    """Give a tensor a static batch dimension.

    TensorFlow traces ``fit``/``predict`` with an unknown batch size; the
    graph layers (NMS, sampling) need it static, and the model always runs
    with Config.BATCH_SIZE images per step.

    Args:
        batch_size: the static batch size.
    """

    def __init__(self, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.batch_size = int(batch_size)

    def call(self, x):
        return ops.reshape(x, (self.batch_size,) + tuple(x.shape[1:]))

    def compute_output_shape(self, input_shape):
        return (self.batch_size,) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "batch_size": self.batch_size}


@keras.saving.register_keras_serializable(package="mrcnn")
class LeadingRois(layers.Layer):
    """x[:, :count]: the first `count` ROIs (the positives come first).

    The detection-target layer orders its ROIs positives first and draws at
    most int(TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO) positives, so the mask
    head (whose loss uses positives only) runs on that many ROIs instead of
    all of them (and on fewer still, see `PositiveRois`).
    """

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)

    def call(self, x):
        return x[:, :self.count]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.count) + tuple(input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "count": self.count}


@keras.saving.register_keras_serializable(package="mrcnn")
class PositiveRois(layers.Layer):
    """[B, N, ...] -> [1, M, ...]: the rows of the batch whose class id is > 0.

    ``layer(x, class_ids)`` with ``class_ids`` [B, N] int. M is the number of
    positive ROIs of the whole batch (at least 1: with none, the first row,
    which the mask loss weighs 0). The mask head then runs on exactly the
    ROIs its loss uses, as torchvision's does: early in training and on
    images with few objects far fewer than the padded N (10 of 128 in
    benchmarks/train_detect.py, where the mask head was the largest part of
    a ResNet50 training step; benchmarks/RESULTS.md), and its BatchNorm
    statistics hold no padding rows.

    M varies from step to step, so the rows are picked only where sizes may
    vary (`mrcnn.ops.dispatch.dynamic_shapes_available`: TensorFlow without
    XLA, PyTorch); elsewhere all B * N rows are kept, in the same layout.
    """

    def call(self, x, class_ids):
        rows = ops.reshape(x, (-1,) + tuple(x.shape[2:]))
        if dynamic_shapes_available():
            rows = ops.take(rows, kept_rows(class_ids), axis=0)
        return ops.expand_dims(rows, 0)

    def compute_output_shape(self, x_shape, class_ids_shape):
        return (1, None) + tuple(x_shape[2:])


@keras.saving.register_keras_serializable(package="mrcnn")
class UnpackRois(layers.Layer):
    """The inverse of `PositiveRois`: [1, M, ...] -> [B, N, ...], zeros in the other rows.

    ``layer(packed, class_ids)`` with the ``class_ids`` [B, N] that
    `PositiveRois` picked the rows by. The inference graph runs the mask head
    on the detections only (not on the zero padding up to
    DETECTION_MAX_INSTANCES) and puts the masks back in place.
    """

    def call(self, packed, class_ids):
        b, n = class_ids.shape[0], class_ids.shape[1]
        tail = tuple(packed.shape[2:])
        rows = packed[0]
        if dynamic_shapes_available():
            rows = ops.scatter(ops.expand_dims(kept_rows(class_ids), 1), rows, (b * n,) + tail)
        return ops.reshape(rows, (b, n) + tail)

    def compute_output_shape(self, packed_shape, class_ids_shape):
        return tuple(class_ids_shape[:2]) + tuple(packed_shape[2:])


def kept_rows(class_ids):
    """Indices into the flattened [B * N] rows of `class_ids` > 0; [0] when there are none."""
    positive = ops.reshape(class_ids, (-1,)) > 0
    first = ops.arange(ops.shape(positive)[0]) == 0
    keep = ops.logical_or(positive, ops.logical_and(first, ops.logical_not(ops.any(positive))))
    return ops.nonzero(keep)[0]


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionBoxes(layers.Layer):
    """detections [B, N, 6] -> boxes [B, N, 4] (normalized y1, x1, y2, x2)."""

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionClassIds(layers.Layer):
    """detections [B, N, 6] -> int32 class ids [B, N] (0 in the zero padding)."""

    def call(self, detections):
        return ops.cast(detections[..., 4], "int32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])
