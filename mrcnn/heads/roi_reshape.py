"""Fold the ROI axis into the batch axis and back.

The heads run plain 2-D layers on [B * N, h, w, C] tensors instead of
wrapping them in TimeDistributed (which Keras 3 unrolls into N copies).
"""

from keras import layers, ops


class MergeRoiBatch(layers.Layer):
    """[B, N, ...] -> [B * N, ...]."""

    def call(self, x):
        return ops.reshape(x, (-1,) + tuple(x.shape[2:]))

    def compute_output_shape(self, input_shape):
        b, n = input_shape[:2]
        return ((b * n if b is not None and n is not None else None),) + tuple(input_shape[2:])


class SplitRoiBatch(layers.Layer):
    """[B * N, ...] -> [B, N, ...] for a fixed N."""

    def __init__(self, num_rois, **kwargs):
        super().__init__(**kwargs)
        self.num_rois = int(num_rois)

    def call(self, x):
        return ops.reshape(x, (-1, self.num_rois) + tuple(x.shape[1:]))

    def compute_output_shape(self, input_shape):
        bn = input_shape[0]
        return ((bn // self.num_rois if bn is not None else None), self.num_rois) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "num_rois": self.num_rois}
