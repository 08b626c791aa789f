"""Mask R-CNN graph layers, one Keras layer per module (keras.ops only).

Each layer takes plain values (never a ``Config``), implements
``get_config()`` and ``compute_output_shape()``, and runs under
``tf.function`` and ``jax.jit`` with a static batch size.

* :class:`AnchorsLayer` (``anchors.py``): the pyramid anchors, normalized.
* :class:`ProposalLayer` (``proposal.py``): RPN outputs -> NMS proposals.
* :class:`PyramidROIAlign` (``pyramid_roi_align.py``): RoIAlign from the FPN
  level matching each box's size.
* :class:`DetectionTargetLayer` (``detection_targets.py``): training ROI
  sampling and class / box / mask targets of the heads.
* :class:`DetectionLayer` (``detection.py``): final detections.
"""

from mrcnn.layers.anchors import AnchorsLayer
from mrcnn.layers.detection import DetectionLayer
from mrcnn.layers.detection_targets import DetectionTargetLayer
from mrcnn.layers.proposal import ProposalLayer
from mrcnn.layers.pyramid_roi_align import PyramidROIAlign

__all__ = [
    "AnchorsLayer",
    "DetectionLayer",
    "DetectionTargetLayer",
    "ProposalLayer",
    "PyramidROIAlign",
]
