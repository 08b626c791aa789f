"""AnchorsLayer: the model's pyramid anchors as a graph constant."""

import keras
import numpy as np
from keras import ops

from mrcnn.data.anchors import (compute_backbone_shapes,
                                generate_pyramid_anchors)
from mrcnn.data.boxes import norm_boxes


@keras.saving.register_keras_serializable(package="mrcnn")
class AnchorsLayer(keras.layers.Layer):
    """Returns the anchors of every pyramid level, normalized, as a constant.

    The anchors depend only on the (static) input image shape, so they are
    computed once with NumPy when the layer is created
    (:func:`mrcnn.data.anchors.generate_pyramid_anchors`, then normalized
    with Matterport's ``(box - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1]``).
    They are the same anchors, in the same order, as the ones the data side
    uses to build RPN targets.

    Args:
        scales: anchor side in pixels, one per pyramid level, e.g.
            ``(32, 64, 128, 256, 512)``.
        ratios: anchor width/height ratios used at every level, e.g.
            ``[0.5, 1, 2]``.
        strides: feature stride in pixels of each level, e.g.
            ``[4, 8, 16, 32, 64]``.
        anchor_stride: place anchors on every ``anchor_stride``-th cell.
        image_shape: model input ``(height, width[, channels])``.
        **kwargs: standard Keras layer arguments (``name``, ...).

    Call arguments:
        inputs: any tensor (the model passes its image input); its values
            are ignored.

    Returns:
        float32 ``[1, A, (y1, x1, y2, x2)]`` normalized anchors, ``A`` the
        total number of anchors; consumers broadcast it over the batch.
    """

    def __init__(self, scales, ratios, strides, anchor_stride, image_shape,
                 **kwargs):
        super().__init__(**kwargs)
        # one size per level, or a list of sizes per level
        self.scales = [[float(v) for v in np.ravel(s)] if np.ndim(s) else float(s)
                       for s in scales]
        self.ratios = [float(r) for r in np.asarray(ratios).reshape(-1)]
        self.strides = [int(s) for s in np.asarray(strides).reshape(-1)]
        self.anchor_stride = int(anchor_stride)
        if len(image_shape) < 2:
            raise ValueError(
                "image_shape must be (height, width[, channels]); got "
                f"{image_shape!r}.")
        self.image_shape = [int(v) for v in image_shape]
        feature_shapes = compute_backbone_shapes(self.image_shape,
                                                 self.strides)
        pixel_anchors = generate_pyramid_anchors(
            self.scales, self.ratios, feature_shapes, self.strides,
            self.anchor_stride)
        self._anchors = norm_boxes(
            pixel_anchors, tuple(self.image_shape[:2])).astype(np.float32)

    @property
    def num_anchors(self):
        """Total number of anchors A."""
        return int(self._anchors.shape[0])

    @property
    def anchors(self):
        """float32 NumPy ``[A, 4]`` normalized anchors."""
        return self._anchors

    def call(self, inputs):
        del inputs  # Only the static image shape matters.
        return ops.convert_to_tensor(self._anchors[None], dtype="float32")

    def compute_output_shape(self, input_shape):
        return (1, self.num_anchors, 4)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((1, self.num_anchors, 4), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({
            "scales": self.scales,
            "ratios": self.ratios,
            "strides": self.strides,
            "anchor_stride": self.anchor_stride,
            "image_shape": self.image_shape,
        })
        return config
