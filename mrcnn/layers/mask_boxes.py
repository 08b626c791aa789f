"""MaskBoxes: the boxes the mask head sees, detection boxes or ROIs grown by MASK_BOX_SCALE.

With ``Config.MASK_BOX_SCALE = s > 1`` the mask head pools (ROIAlign) and
predicts its ``M x M`` mask over each box grown ``s`` times about its centre,
in training (the targets are cut from the same grown ROI,
`mrcnn.layers.detection_targets.mask_targets`) and in inference (the mask is
pasted into the grown box, `mrcnn.inference.molding.unmold_result`). A mask
can then reach past a box that came out too small: the mask's extent no
longer depends on the box regression alone. ``s = 1`` is Matterport's mask
head (the layer passes its input through).
"""

import keras
from keras import layers

from mrcnn.ops.boxes import scale_boxes_graph


@keras.saving.register_keras_serializable(package="mrcnn")
class MaskBoxes(layers.Layer):
    """boxes ``[B, N, (y1, x1, y2, x2)]`` normalized -> the same grown by ``scale`` about their centres.

    Zero-padding rows stay zero. Boxes may reach past the image (ROIAlign
    samples 0 there; pasting drops what lies outside).
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        scale = float(scale)
        if not scale >= 1.0 or scale == float("inf"):
            raise ValueError(f"scale must be a finite number >= 1 (MASK_BOX_SCALE), got {scale!r}")
        self.scale = scale

    def call(self, boxes):
        return scale_boxes_graph(boxes, self.scale)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return dict(super().get_config(), scale=self.scale)
