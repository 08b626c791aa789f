"""Small graph layers that read the image meta vector and detections."""

from keras import layers, ops


class ActiveClassIds(layers.Layer):
    """image_meta [B, 12 + C] -> active_class_ids [B, C] (float 0/1)."""

    def call(self, image_meta):
        return image_meta[:, 12:]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] - 12)


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
        window = image_meta[:, 7:11]
        scale = ops.convert_to_tensor([h - 1, w - 1, h - 1, w - 1], dtype=window.dtype)
        shift = ops.convert_to_tensor([0, 0, 1, 1], dtype=window.dtype)
        return (window - shift) / scale

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4)

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape}


class DetectionBoxes(layers.Layer):
    """detections [B, N, 6] -> boxes [B, N, 4] (normalized y1, x1, y2, x2)."""

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)


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


class ZeroOutsideWindow(layers.Layer):
    """Set the molded image to 0 (the mean pixel) outside the image window.

    Padding added by resizing is 0 in pixel space, i.e. -MEAN_PIXEL after
    molding: a strong artificial edge, and one a model trained on crops (no
    padding) never saw. Zeroing the molded padding makes it look like an
    average, featureless background at training and inference alike.

    Call arguments:
        [image [B, H, W, C] molded, image_meta [B, META]] (window at meta[7:11],
        pixels y1, x1, y2, x2 with y2, x2 exclusive).
    """

    def call(self, inputs):
        image, meta = inputs
        h, w = image.shape[1], image.shape[2]
        window = ops.cast(meta[:, 7:11], "float32")
        ys = ops.cast(ops.arange(h), "float32")[None, :]
        xs = ops.cast(ops.arange(w), "float32")[None, :]
        inside_y = (ys >= window[:, 0:1]) & (ys < window[:, 2:3])  # [B, H]
        inside_x = (xs >= window[:, 1:2]) & (xs < window[:, 3:4])  # [B, W]
        inside = ops.logical_and(inside_y[:, :, None], inside_x[:, None, :])
        return image * ops.cast(inside, image.dtype)[..., None]

    def compute_output_shape(self, input_shape):
        return input_shape[0]
