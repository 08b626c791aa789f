"""Inference: from a trained model's detections to a submission (NumPy side).

* ``results``: the ``detect()`` result dict, its compact (sparse) form.
* ``postprocess``: score / mask thresholds, mask NMS, overlap removal,
  minimum areas, dilation (:class:`PostprocessConfig`, :func:`postprocess`).
* ``tta``: flip test-time augmentation and checkpoint ensembles.
* ``submission``: Kaggle ``submission.csv`` writing and validation.
"""

from mrcnn.data.masks.sparse import FLIPS, SparseMasks
from mrcnn.data.rle import rle_encode_instances
from mrcnn.inference.postprocess import (SARTORIUS_MIN_AREA, PostprocessConfig,
                                         apply_mask_threshold, dilate, filter_by_score,
                                         mask_nms, postprocess, remove_overlaps,
                                         remove_small, resolve_class_keys)
from mrcnn.inference.results import compact, expand
from mrcnn.inference.submission import (read_submission, submission_rows,
                                        validate_submission, write_submission)
from mrcnn.inference.tta import (TTAModel, detect_tta, flip_image, flip_result, flip_tta,
                                 merge_tta)

__all__ = [
    "FLIPS", "SparseMasks", "SARTORIUS_MIN_AREA", "PostprocessConfig", "apply_mask_threshold",
    "dilate", "filter_by_score", "mask_nms", "postprocess", "remove_overlaps", "remove_small",
    "resolve_class_keys", "compact", "expand", "read_submission", "rle_encode_instances",
    "submission_rows", "validate_submission", "write_submission", "TTAModel", "detect_tta",
    "flip_image", "flip_result", "flip_tta", "merge_tta",
]
