"""Graph layers that read the image meta vector (layout: `mrcnn.data.image_meta`)."""

import keras
from keras import layers, ops

from mrcnn.data import image_meta as meta_layout


@keras.saving.register_keras_serializable(package="mrcnn")
class ActiveClassIds(layers.Layer):
    """image_meta [B, 12 + C] -> active_class_ids [B, C] (float 0/1)."""

    def call(self, image_meta):
        return image_meta[:, meta_layout.ACTIVE_CLASS_IDS]

    def compute_output_shape(self, input_shape):
        meta = input_shape[1]
        return (input_shape[0], None if meta is None else meta - meta_layout.FIXED_SIZE)


@keras.saving.register_keras_serializable(package="mrcnn")
class NormalizedWindow(layers.Layer):
    """image_meta -> window [B, 4] of the real image, normalized to the input shape.

    Args:
        image_shape: (height, width) of the model input.
    """

    def __init__(self, image_shape, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))

    def call(self, image_meta):
        h, w = self.image_shape
        window = image_meta[:, meta_layout.WINDOW]
        scale = ops.convert_to_tensor([h - 1, w - 1, h - 1, w - 1], dtype=window.dtype)
        shift = ops.convert_to_tensor([0, 0, 1, 1], dtype=window.dtype)
        return (window - shift) / scale

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4)

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape}


@keras.saving.register_keras_serializable(package="mrcnn")
class ZeroOutsideWindow(layers.Layer):
    """Set the molded image to 0 (the mean pixel) outside the image window.

    Padding added by resizing is 0 in pixel space, i.e. -MEAN_PIXEL after
    molding: a strong artificial edge, and one a model trained on crops (no
    padding) never saw. Zeroing the molded padding makes it look like an
    average, featureless background at training and inference alike.

    Call arguments:
        [image [B, H, W, C] molded, image_meta [B, META]]: the window is
        ``image_meta[:, WINDOW]`` (`mrcnn.data.image_meta`), pixels y1, x1, y2,
        x2 with y2, x2 exclusive.
    """

    def call(self, inputs):
        image, meta = inputs
        h, w = image.shape[1], image.shape[2]
        window = ops.cast(meta[:, meta_layout.WINDOW], "float32")
        ys = ops.cast(ops.arange(h), "float32")[None, :]
        xs = ops.cast(ops.arange(w), "float32")[None, :]
        inside_y = (ys >= window[:, 0:1]) & (ys < window[:, 2:3])  # [B, H]
        inside_x = (xs >= window[:, 1:2]) & (xs < window[:, 3:4])  # [B, W]
        inside = ops.logical_and(inside_y[:, :, None], inside_x[:, None, :])
        return image * ops.cast(inside, image.dtype)[..., None]

    def compute_output_shape(self, input_shape):
        return input_shape[0]
