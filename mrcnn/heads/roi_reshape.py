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
    """[B * N, ...] -> [B, N, ...] for a fixed N, or for a fixed B when N varies.

    Args:
        num_rois: N, or None when the ROI count varies between steps (the
            mask head on the positive ROIs, see `mrcnn.layers.batching.LeadingRois`);
            then `batch_size` is required.
        batch_size: B; used when `num_rois` is None.
    """

    def __init__(self, num_rois, batch_size=None, **kwargs):
        super().__init__(**kwargs)
        if num_rois is None:
            if batch_size is None or int(batch_size) != batch_size or batch_size < 1:
                raise ValueError(f"SplitRoiBatch with num_rois=None (a varying ROI count) "
                                 f"needs a positive int batch_size, got {batch_size!r}")
        elif int(num_rois) != num_rois or num_rois < 1:
            raise ValueError(f"num_rois must be a positive int or None, got {num_rois!r}")
        self.num_rois = None if num_rois is None else int(num_rois)
        self.batch_size = None if batch_size is None else int(batch_size)

    def call(self, x):
        self.compute_output_shape(x.shape)  # checks a static batch
        if self.num_rois is None:
            return ops.reshape(x, (self.batch_size, -1) + tuple(x.shape[1:]))
        return ops.reshape(x, (-1, self.num_rois) + tuple(x.shape[1:]))

    def compute_output_shape(self, input_shape):
        bn = input_shape[0]
        if self.num_rois is None:
            n = bn // self.batch_size if bn is not None else None
            return (self.batch_size, n) + tuple(input_shape[1:])
        if bn is not None and bn % self.num_rois:
            raise ValueError(f"SplitRoiBatch: a batch of {bn} rows is not a multiple of "
                             f"num_rois={self.num_rois}")
        return ((bn // self.num_rois if bn is not None else None),
                self.num_rois) + tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "num_rois": self.num_rois,
                "batch_size": self.batch_size}
