"""Evaluation: Matterport's AP, the competition mAP-IoU, COCO AP, model evaluation, tuning.

    from mrcnn.evaluation import evaluate, map_iou, compute_ap, coco_ap

* ``matterport``: Matterport's ``compute_matches`` / ``compute_ap`` /
  ``compute_ap_range`` / ``compute_recall`` / ``trim_zeros``.
* ``competition``: the DSB 2018 / Sartorius 2021 score (``map_iou`` and
  family, ``iou_matrix``, ``matched_pairs``, ``error_breakdown``, ``touches_border``).
* ``coco``: COCO mask and box AP by pycocotools (``coco_ap``).
* ``report``: ``evaluate(model, dataset)``, ``format_report``,
  ``collect_predictions``.
* ``tuning``: ``tune_postprocess``, a grid search of post-processing settings.
* ``inputs``: the ground-truth / prediction forms these functions accept.

Box and mask IoU come from :mod:`mrcnn.data.iou`; cross-validation folds
from :mod:`mrcnn.datasets.folds`.
"""

from mrcnn.evaluation.coco import DEFAULT_MAX_DETS, coco_ap
from mrcnn.evaluation.competition import (DEFAULT_IOU_THRESHOLDS, error_breakdown, iou_matrix,
                                          map_iou, map_iou_dataset, map_iou_from_ious,
                                          map_iou_per_class, map_iou_per_class_from_ious,
                                          matched_pairs, mean_map_iou,
                                          precision_recall_per_threshold, touches_border)
from mrcnn.evaluation.matterport import (compute_ap, compute_ap_range, compute_matches,
                                         compute_recall, trim_zeros)
from mrcnn.evaluation.report import collect_predictions, evaluate, format_report
from mrcnn.evaluation.tuning import tune_postprocess

__all__ = [
    "DEFAULT_IOU_THRESHOLDS", "compute_ap", "compute_ap_range", "compute_matches",
    "compute_recall", "error_breakdown", "iou_matrix", "matched_pairs", "map_iou",
    "map_iou_dataset", "map_iou_from_ious", "map_iou_per_class", "map_iou_per_class_from_ious",
    "mean_map_iou", "precision_recall_per_threshold", "touches_border", "trim_zeros",
    "DEFAULT_MAX_DETS", "coco_ap",
    "collect_predictions", "evaluate", "format_report", "tune_postprocess",
]
