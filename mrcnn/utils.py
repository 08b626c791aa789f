"""Matterport's ``mrcnn.utils`` names, re-exported from their new homes.

Existing notebooks keep working::

    from mrcnn import utils
    utils.Dataset, utils.extract_bboxes, utils.compute_ap, utils.resize_image

New code can import from the modules directly (``mrcnn.data.boxes``,
``mrcnn.data.image``, ``mrcnn.data.rle``, ``mrcnn.evaluation.matterport``, ...).
"""

from mrcnn.dataset import Dataset
from mrcnn.data.boxes import (
    extract_bboxes, compute_iou, compute_overlaps, compute_overlaps_masks,
    box_refinement, apply_box_deltas, non_max_suppression, norm_boxes, denorm_boxes,
)
from mrcnn.data.anchors import (
    compute_backbone_shapes, generate_anchors, generate_pyramid_anchors,
)
from mrcnn.data.rpn_targets import build_rpn_targets
from mrcnn.data.fit import resize_image, resize_mask
from mrcnn.data.image import mold_image, unmold_image
from mrcnn.data.masks.mini import minimize_mask, expand_mask, unmold_mask, paste_masks
from mrcnn.data.image_meta import compose_image_meta, parse_image_meta
from mrcnn.data.rle import rle_encode, rle_decode
from mrcnn.evaluation.matterport import (
    trim_zeros, compute_matches, compute_ap, compute_ap_range, compute_recall,
)
from mrcnn.evaluation.competition import map_iou
from mrcnn.weights import download_trained_weights

__all__ = [
    "Dataset", "extract_bboxes", "compute_iou", "compute_overlaps", "compute_overlaps_masks",
    "box_refinement", "apply_box_deltas", "non_max_suppression", "norm_boxes", "denorm_boxes",
    "compute_backbone_shapes", "generate_anchors", "generate_pyramid_anchors",
    "build_rpn_targets", "resize_image", "resize_mask", "mold_image", "unmold_image",
    "minimize_mask", "expand_mask", "unmold_mask", "paste_masks", "compose_image_meta",
    "parse_image_meta", "rle_encode", "rle_decode", "trim_zeros", "compute_matches",
    "compute_ap", "compute_ap_range", "compute_recall", "map_iou",
    "download_trained_weights",
]
