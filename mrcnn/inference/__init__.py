"""Inference: from a trained model's detections to a submission (NumPy side).

* ``results``: the ``detect()`` result dict, its compact (sparse) form.
* ``postprocess``: score / mask thresholds, mask NMS, overlap removal,
  minimum areas, dilation (:class:`PostprocessConfig`, :func:`postprocess`).
* ``tta``: test-time augmentation (named sets of flips, 90-degree turns and
  scales, :data:`TTA_SETS`) and checkpoint ensembles, merged on mask
  probabilities; ``transforms``: each variant and its inverse.
* ``molding``: images into the model, detections out (``unmold_result``:
  masks and, on request, ``soft_masks``).
* ``submission``: Kaggle ``submission.csv`` writing and validation.
* ``tiling``: images larger than the model input, in overlapping tiles
  (:func:`detect_tiled`, :class:`TiledModel`).
* ``fitted_input``: each image (or TTA variant) in an input of its own size,
  with no padded band (:func:`detect_fitted`, :func:`model_at_input`).
"""

from mrcnn.data.masks.sparse import FLIPS, SparseMasks
from mrcnn.data.rle import rle_encode_instances
from mrcnn.inference.fitted_input import detect_fitted, model_at_input
from mrcnn.inference.postprocess import (NESTED_FRACTION, OVERLAP_ORDERS, SARTORIUS_MIN_AREA,
                                         PostprocessConfig,
                                         apply_mask_threshold, dilate, filter_by_score,
                                         majority_class, mask_nms, postprocess, remove_overlaps,
                                         remove_small, resolve_class_keys)
from mrcnn.inference.results import compact, expand
from mrcnn.inference.submission import (read_submission, submission_rows,
                                        validate_submission, write_submission)
from mrcnn.inference.tiling import TiledModel, detect_tiled
from mrcnn.inference.transforms import Transform
from mrcnn.inference.tta import (TTA_SETS, TTAModel, detect_tta, flip_image, flip_result,
                                 flip_tta, merge_tta, tta_input_shape, tta_results,
                                 tta_variants)

__all__ = [
    "FLIPS", "SparseMasks", "SARTORIUS_MIN_AREA", "OVERLAP_ORDERS", "NESTED_FRACTION",
    "PostprocessConfig", "apply_mask_threshold",
    "dilate", "filter_by_score", "majority_class", "mask_nms", "postprocess", "remove_overlaps", "remove_small",
    "resolve_class_keys", "compact", "expand", "read_submission", "rle_encode_instances",
    "submission_rows", "validate_submission", "write_submission", "TTAModel", "detect_tta",
    "flip_image", "flip_result", "flip_tta", "merge_tta", "TTA_SETS", "Transform",
    "tta_input_shape", "tta_results", "tta_variants", "TiledModel", "detect_tiled",
    "detect_fitted", "model_at_input",
]
