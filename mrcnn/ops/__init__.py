"""Backend-agnostic model kernels written with ``keras.ops``.

Static shapes throughout (jit-safe on JAX and under ``tf.function``); each
is tested against a NumPy reference in ``tests/ops/``. Functions that have a
NumPy counterpart on the data side (`mrcnn.data.boxes`: ``apply_box_deltas``,
``norm_boxes``, ``non_max_suppression``, ...) carry Matterport's ``_graph``
suffix here (``apply_box_deltas_graph``, ``norm_boxes_graph``, ...), so a
name says which side it runs on.

* :mod:`mrcnn.ops.boxes`: box deltas, clipping, IoU, normalization.
* :mod:`mrcnn.ops.crop_and_resize`: bilinear RoI sampling (single and
  multi-level), native ``tf.image`` kernel on TensorFlow outside XLA.
* :mod:`mrcnn.ops.nms`: greedy non-maximum suppression padded to a fixed
  size, native ``tf.image`` kernel on TensorFlow outside XLA.
"""

from mrcnn.ops.boxes import (
    apply_box_deltas_graph,
    box_area_graph,
    overlaps_graph,
    box_refinement_graph,
    clip_boxes_graph,
    denorm_boxes_graph,
    norm_boxes_graph,
)
from mrcnn.ops.crop_and_resize import crop_and_resize, multilevel_crop_and_resize
from mrcnn.ops.nms import batched_non_max_suppression_graph, non_max_suppression_graph

__all__ = [
    "apply_box_deltas_graph",
    "box_area_graph",
    "overlaps_graph",
    "box_refinement_graph",
    "clip_boxes_graph",
    "denorm_boxes_graph",
    "norm_boxes_graph",
    "crop_and_resize",
    "multilevel_crop_and_resize",
    "non_max_suppression_graph",
    "batched_non_max_suppression_graph",
]
