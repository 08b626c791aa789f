"""The training-mode Keras model: a functional graph plus Mask R-CNN's loss.

`MaskRCNNTrainer` is a functional `keras.Model` whose outputs are the head
predictions and the detection targets; `compute_loss` turns them into the
five weighted losses (Matterport's names; `loss_names` says when there are more) so that `fit`, `evaluate`,
callbacks and progress bars work unchanged on every backend. Each loss is
tracked as a metric, so logs show ``rpn_class_loss``, ``val_mrcnn_mask_loss``
and so on next to ``loss``, which is exactly their weighted sum.

Under ``tf.distribute`` (data-parallel training, `mrcnn.distribute`) each
replica weights its losses by its share of the global count of what they
average over (`loss_counts`, `mrcnn.distribute.reduction`), so the summed
gradients and the logged losses are those of the whole global batch.
"""

import keras
from keras import ops

from mrcnn import losses
from mrcnn.distribute import cluster, reduction
from mrcnn.keras_model import MaskRCNNModel

LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss",
              "mrcnn_bbox_loss", "mrcnn_mask_loss")
# The soft Dice term of the mask head: counted when its LOSS_WEIGHTS entry is above 0.
MASK_DICE_LOSS = "mrcnn_mask_dice_loss"
# The loss of a graph built with Config.FOREGROUND_LOSS (output "foreground_logits").
FOREGROUND_LOSS = "mrcnn_foreground_loss"
# Every loss a training graph may have (what the NaN guard watches).
ALL_LOSS_NAMES = LOSS_NAMES + (MASK_DICE_LOSS, FOREGROUND_LOSS)


def loss_names(output_names, loss_weights=None):
    """The losses of a training graph: LOSS_NAMES, + MASK_DICE_LOSS when its weight
    in `loss_weights` is above 0, + FOREGROUND_LOSS when the outputs hold its head."""
    dice = float((loss_weights or {}).get(MASK_DICE_LOSS, 0.0)) > 0
    return (LOSS_NAMES + ((MASK_DICE_LOSS,) if dice else ())
            + ((FOREGROUND_LOSS,) if "foreground_logits" in output_names else ()))


def compute_losses(x, y_pred, names=None):
    """The unweighted Mask R-CNN losses: Matterport's five and the optional ones.

    Args:
        x: the model's input dict (targets: ``input_rpn_match``,
            ``input_rpn_bbox``, ``input_image_meta``).
        y_pred: the model's output dict (``rpn_class_logits``, ``rpn_bbox``,
            ``mrcnn_class_logits``, ``mrcnn_bbox``, ``mrcnn_mask_logits``,
            ``rois``, ``target_class_ids``, ``target_bbox``, ``target_mask`` and
            ``mask_class_ids`` (targets of the leading, positive-first ROIs the
            mask head ran on), ``active_class_ids``; with FOREGROUND_LOSS
            ``foreground_target`` and ``foreground_logits``).
        names: the losses wanted (`loss_names`); None: LOSS_NAMES, + the
            foreground loss when its outputs are there.

    Returns:
        dict loss name -> scalar tensor.
    """
    names = loss_names(y_pred) if names is None else tuple(names)
    rpn_match = ops.cast(x["input_rpn_match"], "int32")
    valid_rois = ops.any(ops.not_equal(y_pred["rois"], 0.0), axis=-1)
    mask_args = (y_pred["target_mask"], y_pred["mask_class_ids"], y_pred["mrcnn_mask_logits"])
    loss_fns = {
        "rpn_class_loss": lambda: losses.rpn_class_loss(rpn_match, y_pred["rpn_class_logits"]),
        "rpn_bbox_loss": lambda: losses.rpn_bbox_loss(x["input_rpn_bbox"], rpn_match,
                                                      y_pred["rpn_bbox"]),
        "mrcnn_class_loss": lambda: losses.mrcnn_class_loss(
            y_pred["target_class_ids"], y_pred["mrcnn_class_logits"],
            y_pred["active_class_ids"], valid=valid_rois),
        "mrcnn_bbox_loss": lambda: losses.mrcnn_bbox_loss(
            y_pred["target_bbox"], y_pred["target_class_ids"], y_pred["mrcnn_bbox"]),
        "mrcnn_mask_loss": lambda: losses.mrcnn_mask_loss(*mask_args),
        MASK_DICE_LOSS: lambda: losses.mrcnn_mask_dice_loss(*mask_args),
        FOREGROUND_LOSS: lambda: losses.foreground_loss(y_pred["foreground_target"],
                                                        y_pred["foreground_logits"]),
    }
    return {name: loss_fns[name]() for name in names}


def loss_counts(x, y_pred, names=None):
    """How many elements each loss of `compute_losses` averages over, for a batch.

    The denominators of `mrcnn.losses` (each up to a constant factor such as
    the 4 box coordinates, which cancels in a share): labelled anchors,
    positive anchors with a target row, valid ROIs whose predicted class is
    active, positive ROIs, positive ROIs of the mask head (for both mask
    losses), and the pixels of the foreground map with FOREGROUND_LOSS. Keep
    in step with `mrcnn.losses` (tests/training/test_trainer_counts.py checks
    that pooling two halves by these counts gives the loss of the whole
    batch).

    Args:
        names: as `compute_losses`.

    Returns:
        float32 ``[len(names)]``, in the order of `names`.
    """
    names = loss_names(y_pred) if names is None else tuple(names)
    rpn_match = ops.cast(x["input_rpn_match"], "int32")
    positive = ops.equal(rpn_match, 1)
    rank = ops.cumsum(ops.cast(positive, "int32"), axis=1) - 1
    rows = ops.shape(x["input_rpn_bbox"])[1]

    def active_valid():
        logits = ops.cast(y_pred["mrcnn_class_logits"], "float32")
        active = ops.take_along_axis(ops.cast(y_pred["active_class_ids"], "float32"),
                                     ops.cast(ops.argmax(logits, axis=-1), "int32"), axis=1)
        valid = ops.any(ops.not_equal(y_pred["rois"], 0.0), axis=-1)
        return active * ops.cast(valid, "float32")

    def mask_positives():
        return ops.cast(y_pred["mask_class_ids"], "int32") > 0

    count_fns = {
        "rpn_class_loss": lambda: ops.not_equal(rpn_match, 0),
        "rpn_bbox_loss": lambda: ops.logical_and(positive, rank < rows),
        "mrcnn_class_loss": active_valid,
        "mrcnn_bbox_loss": lambda: ops.cast(y_pred["target_class_ids"], "int32") > 0,
        "mrcnn_mask_loss": mask_positives,
        MASK_DICE_LOSS: mask_positives,
        FOREGROUND_LOSS: lambda: ops.ones_like(ops.cast(y_pred["foreground_target"],
                                                        "float32")),
    }
    return ops.stack([ops.sum(ops.cast(count_fns[name](), "float32")) for name in names])


def _all_loss_weights(weights, names=LOSS_NAMES):
    """dict loss name -> weight for every name of `names` (missing names weigh 1)."""
    weights = dict(weights or {})
    return {name: float(weights.get(name, 1.0)) for name in names}


@keras.saving.register_keras_serializable(package="mrcnn")
class MaskRCNNTrainer(MaskRCNNModel):
    """Functional training graph with the weighted Mask R-CNN loss.

    Saved whole (``keras_model.save("x.keras")``) it loads back with its loss
    weights (`get_config` / `from_config`).

    Args:
        inputs, outputs: as for a functional ``keras.Model``; outputs is a
            dict with the names listed in :func:`compute_losses`.
        loss_weights: dict loss name -> weight (Config.LOSS_WEIGHTS); missing
            names weigh 1, except MASK_DICE_LOSS, which is left out unless its
            weight is above 0.
    """

    def __init__(self, *args, loss_weights=None, **kwargs):
        # (*args, **kwargs): Keras revives such a subclass as a functional model.
        outputs = kwargs.get("outputs", args[1] if len(args) > 1 else None)
        super().__init__(*args, **kwargs)
        self._output_keys = tuple(outputs) if isinstance(outputs, dict) else ()
        self._set_losses(loss_weights)

    def _set_losses(self, loss_weights):
        """The losses this graph computes (`loss_names`), their weights and trackers."""
        self.loss_names = loss_names(self._output_keys, loss_weights)
        self.loss_weights_ = _all_loss_weights(loss_weights, self.loss_names)
        self.loss_trackers = [keras.metrics.Mean(name=n) for n in self.loss_names]

    def get_config(self):
        return {**super().get_config(), "loss_weights": dict(self.loss_weights_)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        loss_weights = config.pop("loss_weights", None)
        model = super().from_config(config, custom_objects=custom_objects)
        model._set_losses(loss_weights)
        return model

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The weighted sum of the losses (this replica's part of it under tf.distribute).

        With several replicas each loss is weighted by this replica's share of
        its global count (`mrcnn.distribute.reduction`): the replicas' parts
        sum to the loss of the global batch. The trackers get the part times
        the replica count, since Keras averages them over the replicas.
        """
        parts = compute_losses(x, y_pred, self.loss_names)
        replicas = reduction.replicas_in_sync()
        shares = (reduction.global_shares(loss_counts(x, y_pred, self.loss_names))
                  if replicas > 1 else None)
        total = 0.0
        for i, (tracker, name) in enumerate(zip(self.loss_trackers, self.loss_names)):
            value = ops.cast(parts[name], "float32")
            if shares is not None:
                value = value * shares[i]
            tracker.update_state(value * replicas)
            total = total + self.loss_weights_[name] * value
        for extra in self.losses:  # regularisation added by layers, if any
            total = total + ops.sum(ops.cast(extra, "float32")) / replicas
        return total

    def get_metrics_result(self):
        """Keras' metric results, shaped so that a TF job of several workers can average them.

        See `mrcnn.distribute.cluster.worker_metrics` (Keras 3.15 reduces them
        over ``MultiWorkerMirroredStrategy`` with ``axis=0``, which fails on
        scalars); elsewhere the results are Keras' own.
        """
        return cluster.worker_metrics(super().get_metrics_result())

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras' TF trainer: skip the symbolic build when there is nothing left to build.

        Under a ``tf.distribute`` strategy Keras averages the first batch over
        the replicas only to read its shapes, which fails on boolean inputs
        (``input_gt_masks``: "AddN ... bool"). The training graph is a built
        functional model and `mrcnn.training.loop` builds the optimizer before
        ``fit``, so nothing needs that batch.
        """
        built = all(layer.built for layer in self._flatten_layers()) and (
            self.optimizer is None or self.optimizer.built)
        if built and self._compile_metrics is None and self._compile_loss is None:
            return None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
