"""What the engines need of Keras' objects (used by `mrcnn.distribute.strategy`'s plans).

* `synchronize_batch_norm`: batch-norm statistics over all replicas
  (TensorFlow's ``tf.distribute``; JAX's GSPMD needs nothing).
* `clip_after_all_reduce`: a TensorFlow optimizer clips the gradient of the
  global batch, not each replica's part of it.
* `PauseDistribution`: models built by callbacks at the end of an epoch stay
  on one device while ``fit`` runs under a JAX distribution.
"""

import keras

from mrcnn.layers.walk import leaf_layers

__all__ = ["synchronize_batch_norm", "clip_after_all_reduce", "PauseDistribution"]


def synchronize_batch_norm(keras_model):
    """Make every BatchNormalization of `keras_model` compute its statistics over all replicas.

    Sets Keras' ``synchronized`` flag (TensorFlow: an all-reduce of the sums
    inside ``tf.distribute``; the same layer otherwise) on the built layers,
    nested models included. Names and weights are unchanged.

    Returns:
        the names of the layers changed.
    """
    names = []
    for layer in leaf_layers(keras_model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            names.append(layer.name)
    return names


def clip_after_all_reduce(optimizer):
    """Make a TensorFlow optimizer clip the summed gradient of the replicas, not each one's part.

    Keras 3's optimizers clip in ``BaseOptimizer._backend_apply_gradients``
    (``_clip_gradients``), before ``TFOptimizer._backend_update_step``
    sums the gradients over the replicas (``_all_reduce_sum_gradients``); so
    under ``tf.distribute`` ``clipnorm`` would bound each replica's part (about
    1/N of the gradient) instead of the gradient of the global batch (tf.keras
    2 clipped after the sum). This moves the clipping after the sum, on this
    optimizer object (the inner one of a ``LossScaleOptimizer``): one step
    is then the step of one device on the global batch. Without a replica
    context the sum is the identity and the clipping is as before.

    Returns:
        the optimizer.

    Raises:
        RuntimeError: the optimizer lacks those methods (another Keras).
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if getattr(inner, "_mrcnn_clip_after_sum", False):
        return optimizer
    if not (hasattr(inner, "_clip_gradients") and hasattr(inner, "_all_reduce_sum_gradients")):
        raise RuntimeError(f"keras {keras.__version__}: {type(inner).__name__} has no "
                           f"_clip_gradients / _all_reduce_sum_gradients; gradient clipping "
                           f"under tf.distribute cannot be moved after the replicas' sum")
    clip, all_reduce = inner._clip_gradients, inner._all_reduce_sum_gradients

    def all_reduce_then_clip(grads_and_vars):
        pairs = list(all_reduce(grads_and_vars))
        grads = clip([g for g, _ in pairs])
        return [(g, v) for g, (_, v) in zip(grads, pairs)]

    inner._clip_gradients = lambda grads: grads
    inner._all_reduce_sum_gradients = all_reduce_then_clip
    inner._mrcnn_clip_after_sum = True
    return optimizer


class PauseDistribution(keras.callbacks.Callback):
    """Lift the JAX distribution at the end of each epoch and set it again when the next begins.

    ``fit`` runs under the distribution; callbacks that build a model at the
    end of an epoch (`mrcnn.evaluation.epoch_score.EpochScore`'s inference
    model) would otherwise place it on the mesh and shard its one-image
    batches. Put it first in the callback list.
    """

    def __init__(self, distribution):
        super().__init__()
        self.distribution = distribution

    def on_epoch_begin(self, epoch, logs=None):
        keras.distribution.set_distribution(self.distribution)

    def on_epoch_end(self, epoch, logs=None):
        keras.distribution.set_distribution(None)
