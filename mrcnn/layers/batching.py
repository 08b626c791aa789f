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
    all of them.

    Called as ``layer(x, class_ids)`` (``class_ids`` [B, N] int, > 0 for
    positives), it keeps only as many ROIs as the image of the batch with the
    most positives has (at least 1, at most `count`) where sizes may vary
    between steps (`mrcnn.ops.dispatch.dynamic_shapes_available`: TensorFlow
    without XLA, PyTorch); on JAX it keeps `count`. Early in training, and on
    images with few objects, an image has far fewer positives than `count`
    (10 of 128 in benchmarks/train_detect.py), and the mask head's work (the
    largest part of a ResNet50 training step, benchmarks/RESULTS.md) shrinks
    with them. The rows dropped are padding the mask loss gives weight 0.
    """

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.count = int(count)

    def call(self, x, class_ids=None):
        x = x[:, :self.count]
        if class_ids is None or not dynamic_shapes_available():
            return x
        positives = ops.sum(ops.cast(class_ids[:, :self.count] > 0, "int32"), axis=1)
        n = ops.clip(ops.max(positives), 1, self.count)
        if keras.backend.backend() == "torch":
            return x[:, :int(n)]
        return x[:, :n]

    def compute_output_shape(self, x_shape, class_ids_shape=None):
        varies = class_ids_shape is not None and keras.backend.backend() != "jax"
        return (x_shape[0], None if varies else self.count) + tuple(x_shape[2:])

    def get_config(self):
        return {**super().get_config(), "count": self.count}


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionBoxes(layers.Layer):
    """detections [B, N, 6] -> boxes [B, N, 4] (normalized y1, x1, y2, x2)."""

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)
