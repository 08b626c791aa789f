"""Evaluation: Matterport's AP, the competition mAP-IoU, COCO AP, model evaluation, tuning.

    from mrcnn.evaluation import evaluate, map_iou, compute_ap, coco_ap
"""

from mrcnn.evaluation.metrics import (DEFAULT_IOU_THRESHOLDS, compute_ap, compute_ap_range,
                                      compute_matches, compute_recall, iou_matrix, map_iou,
                                      map_iou_dataset, map_iou_from_ious, map_iou_per_class,
                                      map_iou_per_class_from_ious, mean_map_iou,
                                      precision_recall_per_threshold, trim_zeros)
from mrcnn.evaluation.report import (DEFAULT_MAX_DETS, coco_ap, collect_predictions, evaluate,
                                     format_report, kfold_datasets, kfold_indices,
                                     subset_dataset, tune_postprocess)

__all__ = [
    "DEFAULT_IOU_THRESHOLDS", "compute_ap", "compute_ap_range", "compute_matches",
    "compute_recall", "iou_matrix", "map_iou", "map_iou_dataset", "map_iou_from_ious",
    "map_iou_per_class", "map_iou_per_class_from_ious", "mean_map_iou",
    "precision_recall_per_threshold", "trim_zeros", "DEFAULT_MAX_DETS", "coco_ap",
    "collect_predictions", "evaluate", "format_report", "kfold_datasets", "kfold_indices",
    "subset_dataset", "tune_postprocess",
]
