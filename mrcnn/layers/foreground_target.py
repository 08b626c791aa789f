"""ForegroundTarget: the dense foreground map of the ground truth (the foreground loss's target).

Config.FOREGROUND_LOSS trains a small head on P2 to say, at every pixel,
whether it lies in any instance (`mrcnn.heads.foreground`,
`mrcnn.losses.foreground_loss`). This layer builds its target from the
training inputs as they are (boxes and mini masks, or full masks), so the
data pipeline and the sample cache are unchanged.

Grid: cell ``(i, j)`` of a stride-``s`` grid over the model input stands for
the pixel ``(s * i + s // 2, s * j + s // 2)`` (the pixel itself at ``s = 1``;
the one just past the cell's centre for even ``s``). Its target is 1 when that
pixel lies in a real instance (class id > 0; padding rows and crowds count
as background).

With mini masks (Config.USE_MINI_MASK) each instance's mask covers its own
box: pixel row ``y`` of a box of rows ``[y1, y2)`` (``h = y2 - y1``) is mini
row ``(y - y1 + 0.5) * mh / h - 0.5`` (`mrcnn.data.masks.mini.minimize_mask`'s
pixel-centre alignment, the rule `mrcnn.layers.detection_targets.mask_targets`
also uses), read at the nearest mini pixel; pixels outside the box are 0.
When the mini mask is at least the box's size (``mh >= h``) this gives back
the full mask exactly.
"""

import keras
from keras import layers, ops


def foreground_target(gt_class_ids, gt_boxes, gt_masks, image_shape, stride=1,
                      use_mini_mask=True):
    """The foreground map [B, H / s, W / s, 1] (float32 0/1) of the real instances.

    Args:
        gt_class_ids: int ``[B, G]``; > 0 for real instances.
        gt_boxes: float ``[B, G, (y1, x1, y2, x2)]`` normalized as
            `mrcnn.data.boxes.norm_boxes` (pixel ``y1`` -> ``y1 / (H - 1)``,
            exclusive ``y2`` -> ``(y2 - 1) / (H - 1)``).
        gt_masks: bool / 0-1 ``[B, mh, mw, G]`` mini masks (`use_mini_mask`)
            or ``[B, H, W, G]`` full-image masks.
        image_shape: ``(H, W)`` of the model input, multiples of `stride`.
        stride: grid stride ``s`` (a python int >= 1).
        use_mini_mask: whether `gt_masks` are mini masks.

    Returns:
        float32 ``[B, H // s, W // s, 1]``, no gradient.
    """
    height, width = (int(v) for v in image_shape[:2])
    s = int(stride)
    rows = ops.arange(height // s, dtype="int32") * s + s // 2          # [h] pixel rows
    cols = ops.arange(width // s, dtype="int32") * s + s // 2           # [w] pixel columns
    real = ops.cast(gt_class_ids, "int32") > 0                          # [B, G]
    masks = ops.cast(gt_masks, "float32")
    if not use_mini_mask:
        picked = ops.take(ops.take(masks, rows, axis=1), cols, axis=2)  # [B, h, w, G]
        picked = picked * ops.cast(real, "float32")[:, None, None, :]
        return ops.stop_gradient(ops.max(picked, axis=-1, keepdims=True))
    boxes = ops.cast(gt_boxes, "float32")
    y1 = ops.round(boxes[..., 0] * (height - 1))                        # [B, G] pixels
    x1 = ops.round(boxes[..., 1] * (width - 1))
    y2 = ops.round(boxes[..., 2] * (height - 1)) + 1.0
    x2 = ops.round(boxes[..., 3] * (width - 1)) + 1.0
    mini_h, mini_w, count = masks.shape[1], masks.shape[2], masks.shape[3]
    ys = ops.cast(rows, "float32")[None, :, None]                       # [1, h, 1]
    xs = ops.cast(cols, "float32")[None, :, None]
    in_y = (ys >= y1[:, None, :]) & (ys < y2[:, None, :])               # [B, h, G]
    in_x = (xs >= x1[:, None, :]) & (xs < x2[:, None, :])               # [B, w, G]
    mini_y = (ys - y1[:, None, :] + 0.5) * mini_h / ops.maximum(y2 - y1, 1.0)[:, None, :] - 0.5
    mini_x = (xs - x1[:, None, :] + 0.5) * mini_w / ops.maximum(x2 - x1, 1.0)[:, None, :] - 0.5
    mini_y = ops.clip(ops.cast(ops.floor(mini_y + 0.5), "int32"), 0, mini_h - 1)
    mini_x = ops.clip(ops.cast(ops.floor(mini_x + 0.5), "int32"), 0, mini_w - 1)
    index = mini_y[:, :, None, :] * mini_w + mini_x[:, None, :, :]       # [B, h, w, G]
    grid_h, grid_w = height // s, width // s
    flat = ops.reshape(masks, (-1, mini_h * mini_w, count))
    values = ops.take_along_axis(flat, ops.reshape(index, (-1, grid_h * grid_w, count)), axis=1)
    values = ops.reshape(values, (-1, grid_h, grid_w, count))
    inside = in_y[:, :, None, :] & in_x[:, None, :, :] & real[:, None, None, :]
    values = values * ops.cast(inside, "float32")
    return ops.stop_gradient(ops.max(values, axis=-1, keepdims=True))


@keras.saving.register_keras_serializable(package="mrcnn")
class ForegroundTarget(layers.Layer):
    """[gt_class_ids, gt_boxes, gt_masks] -> the foreground map (see `foreground_target`).

    Args:
        image_shape: ``(H, W)`` of the model input.
        stride: the grid's stride (Config.FOREGROUND_STRIDE).
        use_mini_mask: whether the masks are mini masks (Config.USE_MINI_MASK).
    """

    def __init__(self, image_shape, stride=1, use_mini_mask=True, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.stride = int(stride)
        self.use_mini_mask = bool(use_mini_mask)
        if self.stride < 1 or self.image_shape[0] % self.stride or \
                self.image_shape[1] % self.stride:
            raise ValueError(f"stride must be an int >= 1 dividing the input shape "
                             f"{self.image_shape}, got {stride!r}")

    def call(self, inputs):
        gt_class_ids, gt_boxes, gt_masks = inputs
        return foreground_target(gt_class_ids, gt_boxes, gt_masks, self.image_shape,
                                 self.stride, self.use_mini_mask)

    def compute_output_shape(self, input_shape):
        h, w = self.image_shape
        return (input_shape[0][0], h // self.stride, w // self.stride, 1)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape([x.shape for x in inputs]),
                                 dtype="float32")

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape),
                "stride": self.stride, "use_mini_mask": self.use_mini_mask}
