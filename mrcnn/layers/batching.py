"""Layers that fix or slice the batch and ROI axes of graph tensors."""

import keras
from keras import layers, ops


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
    all of them: about a third of the mask-head work.
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
class DetectionBoxes(layers.Layer):
    """detections [B, N, 6] -> boxes [B, N, 4] (normalized y1, x1, y2, x2)."""

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)
