"""Losses over the global batch when each replica sees only its share of it (TensorFlow).

Each Mask R-CNN loss is a mean pooled over the elements of the whole batch
that count (labelled anchors, positive ROIs, ...; `mrcnn.losses`). Under
``tf.distribute`` every replica computes the loss of its own images, and the
gradients of the replicas are summed. Keras' usual remedy, dividing by the
number of replicas (``scale_loss_for_distribution``), gives the mean of the
replicas' means; that equals the pooled mean only when every replica counts
the same number of elements, which positive ROIs and anchors do not. So each
replica's loss is weighted by its share of the global count::

    loss_r * count_r / sum(count over replicas)   (the counts all-reduced, no gradient)

and the summed gradients are those of the pooled mean over the global batch:
the same step as on one device. On JAX (GSPMD sees the global batch) and
without a strategy the weights are 1.
"""

import keras
from keras import ops

__all__ = ["replicas_in_sync", "global_shares"]


def _replica_context():
    """The TensorFlow replica context of a multi-replica step, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return None
    return context


def replicas_in_sync():
    """Replicas computing the current step together (1 outside ``tf.distribute`` and on JAX)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def global_shares(counts):
    """Each count's share of its sum over the replicas of this step.

    Args:
        counts: float32 ``[K]``: how many elements each of K losses averages
            over on this replica.

    Returns:
        float32 ``[K]`` ``counts / all-reduced sum`` (0 where the sum is 0),
        without gradient; None when the step runs on one replica (the weights
        are 1).
    """
    context = _replica_context()
    if context is None:
        return None
    import tensorflow as tf

    counts = ops.stop_gradient(ops.cast(counts, "float32"))
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, counts)
    return ops.stop_gradient(tf.math.divide_no_nan(counts, total))
