"""PyramidROIAlign: RoIAlign pooling from the FPN level that suits each box."""

import keras
from keras import ops

from mrcnn.ops.crop_and_resize import multilevel_crop_and_resize


def roi_pyramid_levels(boxes, image_shape):
    """FPN level index (0 for P2 ... 3 for P5) of each box.

    Matterport's / the FPN paper's rule: a box of ``224 x 224`` pixels of a
    ``224 x 224`` ImageNet-sized image maps to P4, and every factor of 2 in
    box size moves one level::

        level = clip(4 + round(log2(sqrt(h * w) / (224 / sqrt(H * W)))), 2, 5)

    with ``h, w`` the normalized box size and ``H, W`` the image size.
    ``round`` is half-to-even (``tf.round``). Zero-area (padding) boxes are
    assigned P2 without producing NaN or inf.

    Args:
        boxes: float ``[..., 4]`` normalized ``(y1, x1, y2, x2)``.
        image_shape: ``(height, width[, channels])`` python ints.

    Returns:
        int32 ``[...]`` level index in ``[0, 4)``: ``level - 2``.
    """
    boxes = ops.cast(boxes, "float32")
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    area = ops.maximum(height * width, 1e-12)
    image_area = float(image_shape[0]) * float(image_shape[1])
    reference = 224.0 / image_area ** 0.5
    level = ops.log2(ops.sqrt(area) / reference)
    level = ops.clip(4.0 + ops.round(level), 2.0, 5.0)
    return ops.cast(level, "int32") - 2


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(keras.layers.Layer):
    """Crops and resizes every box from the pyramid level of its size.

    Args:
        pool_shape: ``(height, width)`` of the pooled output, e.g. ``(7, 7)``
            for the box head or ``(14, 14)`` for the mask head.
        image_shape: model input ``(height, width[, channels])``; it sets
            the box-size-to-level mapping (see :func:`roi_pyramid_levels`).
        **kwargs: standard Keras layer arguments (``name``, ...).

    Call arguments:
        inputs: list ``[boxes, P2, P3, P4, P5]``:
            boxes: ``[B, N, (y1, x1, y2, x2)]`` normalized, zero padded.
            P2..P5: feature maps ``[B, H_l, W_l, C]`` (same C).

    Returns:
        ``[B, N, pool_h, pool_w, C]`` pooled features (bilinear samples,
        ``tf.image.crop_and_resize`` semantics) of each box on its level.
        Padding boxes give finite (meaningless) values.
    """

    def __init__(self, pool_shape, image_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            self.pool_shape = tuple(int(v) for v in pool_shape)
        except TypeError:
            self.pool_shape = ()
        if len(self.pool_shape) != 2 or min(self.pool_shape) < 1:
            raise ValueError(
                "pool_shape must be (height, width) positive ints; got "
                f"{pool_shape!r}.")
        if len(image_shape) < 2:
            raise ValueError(
                "image_shape must be (height, width[, channels]); got "
                f"{image_shape!r}.")
        self.image_shape = tuple(int(v) for v in image_shape)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 5:
            raise ValueError(
                "PyramidROIAlign expects [boxes, P2, P3, P4, P5]; got "
                f"{type(inputs).__name__} of length "
                f"{len(inputs) if isinstance(inputs, (list, tuple)) else 1}.")
        boxes = ops.cast(inputs[0], "float32")
        feature_maps = list(inputs[1:])
        levels = roi_pyramid_levels(boxes, self.image_shape)
        return multilevel_crop_and_resize(
            feature_maps, boxes, levels, self.pool_shape)

    def compute_output_shape(self, input_shape):
        boxes_shape, feature_shape = input_shape[0], input_shape[1]
        return (boxes_shape[0], boxes_shape[1]) + self.pool_shape + (
            feature_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update({
            "pool_shape": list(self.pool_shape),
            "image_shape": list(self.image_shape),
        })
        return config
