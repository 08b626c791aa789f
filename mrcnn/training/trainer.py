"""The training-mode Keras model: a functional graph plus Mask R-CNN's loss.

`MaskRCNNTrainer` is a functional `keras.Model` whose outputs are the head
predictions and the detection targets; `compute_loss` turns them into the
five weighted losses (Matterport's names) so that `fit`, `evaluate`,
callbacks and progress bars work unchanged on every backend. Each loss is
tracked as a metric, so logs show ``rpn_class_loss``, ``val_mrcnn_mask_loss``
and so on next to ``loss``, which is exactly their weighted sum.
"""

import keras
from keras import ops

from mrcnn import losses
from mrcnn.keras_model import MaskRCNNModel

LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
              "mrcnn_bbox_loss", "mrcnn_mask_loss")


def compute_losses(x, y_pred):
    """The five unweighted Mask R-CNN losses.

    Args:
        x: the model's input dict (targets: ``input_rpn_match``,
            ``input_rpn_bbox``, ``input_image_meta``).
        y_pred: the model's output dict (``rpn_class_logits``, ``rpn_bbox``,
            ``mrcnn_class_logits``, ``mrcnn_bbox``, ``mrcnn_mask_logits``,
            ``rois``, ``target_class_ids``, ``target_bbox``, ``target_mask`` and
            ``mask_class_ids`` (targets of the leading, positive-first ROIs the
            mask head ran on), ``active_class_ids``).

    Returns:
        dict loss name -> scalar tensor.
    """
    rpn_match = ops.cast(x["input_rpn_match"], "int32")
    valid_rois = ops.any(ops.not_equal(y_pred["rois"], 0.0), axis=-1)
    return {
        "rpn_class_loss": losses.rpn_class_loss(rpn_match, y_pred["rpn_class_logits"]),
        "rpn_bbox_loss": losses.rpn_bbox_loss(x["input_rpn_bbox"], rpn_match, y_pred["rpn_bbox"]),
        "mrcnn_class_loss": losses.mrcnn_class_loss(
            y_pred["target_class_ids"], y_pred["mrcnn_class_logits"],
            y_pred["active_class_ids"], valid=valid_rois),
        "mrcnn_bbox_loss": losses.mrcnn_bbox_loss(
            y_pred["target_bbox"], y_pred["target_class_ids"], y_pred["mrcnn_bbox"]),
        "mrcnn_mask_loss": losses.mrcnn_mask_loss(
            y_pred["target_mask"], y_pred["mask_class_ids"], y_pred["mrcnn_mask_logits"]),
    }


class MaskRCNNTrainer(MaskRCNNModel):
    """Functional training graph with the weighted Mask R-CNN loss.

    Args:
        inputs, outputs: as for a functional ``keras.Model``; outputs is a
            dict with the names listed in :func:`compute_losses`.
        loss_weights: dict loss name -> weight (Config.LOSS_WEIGHTS); missing
            names weigh 1.
    """

    def __init__(self, inputs, outputs, loss_weights=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        weights = dict(loss_weights or {})
        self.loss_weights_ = {n: float(weights.get(n, 1.0)) for n in LOSS_NAMES}
        self.loss_trackers = [keras.metrics.Mean(name=n) for n in LOSS_NAMES]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        parts = compute_losses(x, y_pred)
        total = 0.0
        for tracker, name in zip(self.loss_trackers, LOSS_NAMES):
            value = ops.cast(parts[name], "float32")
            tracker.update_state(value)
            total = total + self.loss_weights_[name] * value
        for extra in self.losses:  # regularisation added by layers, if any
            total = total + ops.sum(ops.cast(extra, "float32"))
        return total
