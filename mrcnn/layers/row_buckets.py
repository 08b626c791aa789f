"""Run a head on the leading rows only, at one of a few static sizes (JAX's varying ROI count).

On TensorFlow and PyTorch the mask head runs on exactly the positive ROIs
(training) or the detections (inference): `mrcnn.layers.batching.PositiveRois`
packs them, and their count may change every step. A jitted JAX step has
static shapes, so there the head ran on all N padded rows: 128 where a young
model has ~10 positives (benchmarks/jax_vs_tf.py: JAX/TF 4.7x for our step
against 2.3x for a plain ResNet50, the difference being that mask head).

`BucketedRows` keeps the shapes static and still skips the padding: the
wanted rows come first in each image (the detection-target layer orders its
ROIs positives first; detections are sorted by score with the zero padding
last), so the head runs on ``x[:, :k]`` for the smallest bucket ``k`` of
``buckets`` (N, N/2, N/4, ... down to `min_rows`) that holds every image's
rows, and its output is zero padded back to N rows. The choice is a
``keras.ops.switch`` (``jax.lax.switch``): every bucket is compiled once,
in the same program, and a step runs one of them. Training steps bucket on
an accelerator only: on XLA:CPU a convolution's kernel gradient inside a
conditional is ~50x slower (`mrcnn.ops.dispatch.switch_trains_fast`), so
there only inference does. Rows past each image's
count are computed on whatever ROIs lie there and are ignored by the mask
loss (it weighs positives only) and by ``detect()`` (padding).

Shapes: ``x`` [B, N, ...], ``class_ids`` [B, N] int (> 0 marks the wanted
rows, which come first in each image); the output is ``head(x)``'s
[B, N, ...] with zeros in the rows past the bucket.
"""

import keras
from keras import ops

from mrcnn.layers.walk import leaf_layers
from mrcnn.ops import dispatch


def bucket_sizes(n, min_rows=8):
    """Row counts a head runs on: n, ceil(n / 2), ceil(n / 4), ... while >= min_rows; ascending.

    >>> bucket_sizes(128)
    [8, 16, 32, 64, 128]
    >>> bucket_sizes(100)
    [13, 25, 50, 100]
    """
    n, min_rows = int(n), int(min_rows)
    if n < 1 or min_rows < 1:
        raise ValueError(f"bucket_sizes needs n >= 1 and min_rows >= 1, got n={n}, "
                         f"min_rows={min_rows}")
    sizes = [n]
    while -(-sizes[-1] // 2) >= min_rows and sizes[-1] > 1:
        sizes.append(-(-sizes[-1] // 2))
    return sorted(sizes)


def bucket_index(class_ids, buckets):
    """Index into `buckets` (ascending) of the smallest size >= every image's count of class_ids > 0.

    Args:
        class_ids: [B, N] int.
        buckets: ascending row counts, the last one N.

    Returns:
        an int32 scalar tensor.
    """
    if len(buckets) == 1:
        return ops.convert_to_tensor(0, dtype="int32")
    counts = ops.sum(ops.cast(ops.greater(class_ids, 0), "int32"), axis=1)
    needed = ops.max(counts)
    smaller = ops.convert_to_tensor(list(buckets[:-1]), dtype="int32")
    return ops.sum(ops.cast(ops.greater(needed, smaller), "int32"))


@keras.saving.register_keras_serializable(package="mrcnn")
class BucketedRows(keras.layers.Layer):
    """``layer(x, class_ids)``: ``head`` on the leading rows of `x` at a bucketed size (module docstring).

    Args:
        head: a Keras model taking [B, k, ...] for any k and returning
            [B, k, ...] (the mask head built with ``num_rois=None``).
        num_rows: N, the padded row count of `x`.
        min_rows: the smallest bucket (8).

    The head's layers are reached through ``layers`` (so weights load and
    freeze by their own names, as in a nested model). When a BatchNormalization
    inside the head trains (Config.TRAIN_BN with the head trainable), its
    moving statistics cannot leave a ``switch`` branch, so the head then runs
    on all N rows; so it does in training on XLA:CPU, where gradients inside a
    conditional are slow (`mrcnn.ops.dispatch.switch_trains_fast`).
    Inference (no gradients) always runs on the bucket.
    """

    def __init__(self, head, num_rows, min_rows=8, **kwargs):
        super().__init__(**kwargs)
        self.head = head
        self.num_rows = int(num_rows)
        self.min_rows = int(min_rows)
        self.buckets = bucket_sizes(self.num_rows, self.min_rows)

    @property
    def layers(self):
        return [self.head]

    def build(self, x_shape, class_ids_shape=None):
        self.built = True

    def _bn_trains(self):
        return any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
                   for layer in leaf_layers(self.head))

    def call(self, x, class_ids, training=None):
        if x.shape[1] != self.num_rows:
            raise ValueError(f"BucketedRows(num_rows={self.num_rows}) got {x.shape[1]} rows "
                             f"(x of shape {tuple(x.shape)})")
        n = self.num_rows
        if len(self.buckets) == 1 or (training and (self._bn_trains()
                                                     or not dispatch.switch_trains_fast())):
            return self.head(x, training=training)

        def branch(k):
            def run(rows):
                out = self.head(rows[:, :k], training=training)
                if k == n:
                    return out
                pad = [[0, 0], [0, n - k]] + [[0, 0]] * (len(out.shape) - 2)
                return ops.pad(out, pad)
            return run

        index = bucket_index(class_ids, self.buckets)
        return ops.switch(index, [branch(k) for k in self.buckets], x)

    def compute_output_spec(self, x, class_ids, training=None):
        return self.head.compute_output_spec(x)

    def get_config(self):
        return {**super().get_config(), "num_rows": self.num_rows, "min_rows": self.min_rows,
                "head": keras.saving.serialize_keras_object(self.head)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["head"] = keras.saving.deserialize_keras_object(config["head"])
        return cls(**config)
