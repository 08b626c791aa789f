"""Fold the ROI axis into the batch axis and back.

The heads run plain 2-D layers on [B * N, h, w, C] tensors instead of
wrapping them in TimeDistributed (which Keras 3 unrolls into N copies).
"""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="mrcnn")
class MergeRoiBatch(layers.Layer):
    """[B, N, ...] -> [B * N, ...]."""

    def call(self, x):
        return ops.reshape(x, (-1,) + tuple(x.shape[2:]))

    def compute_output_shape(self, input_shape):
        b, n = input_shape[:2]
        return ((b * n if b is not None and n is not None else None),) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="mrcnn")
class SplitRoiBatch(layers.Layer):
    """[B * N, ...] -> [B, N, ...] for a fixed N."""

    def __init__(self, num_rois, **kwargs):
        super().__init__(**kwargs)
        if int(num_rois) != num_rois or num_rois < 1:
            raise ValueError(f"num_rois must be a positive int, got {num_rois!r}")
        self.num_rois = int(num_rois)

    def call(self, x):
        self.compute_output_shape(x.shape)  # checks a static batch
        return ops.reshape(x, (-1, self.num_rois) + tuple(x.shape[1:]))

    def compute_output_shape(self, input_shape):
        bn = input_shape[0]
        if bn is not None and bn % self.num_rois:
            raise ValueError(f"SplitRoiBatch: a batch of {bn} rows is not a multiple of "
                             f"num_rois={self.num_rois}")
        return ((bn // self.num_rois if bn is not None else None),
                self.num_rois) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "num_rois": self.num_rois}
