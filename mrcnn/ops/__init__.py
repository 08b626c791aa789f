"""Backend-agnostic model kernels written with ``keras.ops``.

Static shapes throughout (jit-safe on JAX and under ``tf.function``); each
is tested against a NumPy reference in ``tests/ops/``.

* :mod:`mrcnn.ops.boxes`: box deltas, clipping, IoU, normalization.
* :mod:`mrcnn.ops.crop_and_resize`: bilinear RoI sampling (single and
  multi-level), native ``tf.image`` kernel on TensorFlow outside XLA.
* :mod:`mrcnn.ops.nms`: greedy non-maximum suppression padded to a fixed
  size, native ``tf.image`` kernel on TensorFlow outside XLA.
"""

from mrcnn.ops.boxes import (
    apply_box_deltas,
    box_area,
    box_overlaps,
    box_refinement,
    clip_boxes,
    denorm_boxes,
    norm_boxes,
)
from mrcnn.ops.crop_and_resize import crop_and_resize, multilevel_crop_and_resize
from mrcnn.ops.nms import batched_non_max_suppression, non_max_suppression

__all__ = [
    "apply_box_deltas",
    "box_area",
    "box_overlaps",
    "box_refinement",
    "clip_boxes",
    "denorm_boxes",
    "norm_boxes",
    "crop_and_resize",
    "multilevel_crop_and_resize",
    "non_max_suppression",
    "batched_non_max_suppression",
]
