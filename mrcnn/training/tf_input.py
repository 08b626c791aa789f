"""On TensorFlow, the data generators as ``tf.data`` datasets without tf.data's autotuning.

``keras.Model.fit`` of a ``keras.utils.PyDataset`` that has no worker pool
(``workers <= 1``, no multiprocessing: `mrcnn.data.generator.DataGenerator`
with Config.WORKERS = 0, the default) runs it as
``tf.data.Dataset.from_generator(...).prefetch(AUTOTUNE)`` and makes a new
iterator for every epoch (and every validation pass). An autotuned dataset's
iterator has a model thread that wakes up once per optimization period (which
doubles up to 60 s), and TensorFlow 2.21's iterator destructor waits for it:
the old iterator, freed as the next epoch starts, holds the training for up to
a minute with no CPU in use. Measured on 2 cores (`benchmarks/RESULTS.md`,
"Idle seconds at every epoch start"): 28 s of every 140 s epoch of
`benchmarks/real_nuclei.py`'s runs (120 steps of 0.69 s).

`as_tf_dataset` builds the same dataset itself with autotuning off (Keras does
the same for a PyDataset with a worker pool): a prefetch of one batch, the
batches' shapes from `DataGenerator.batch_spec` (no batch is prepared to find
them), and the generator's length as the dataset's cardinality, so Keras
still starts a new iterator per epoch, which reads the generator's epoch
order afresh. Keras calls ``on_epoch_end`` only on a PyDataset, so
`AdvanceEpochs` does it: the training generator after each epoch, the
validation generator after each validation pass, before the next pass's
first batch is prepared (tf.data starts prefetching at an iterator's first
read). The batches are the ones Keras' own path gives, in the same order.
"""

import keras

from mrcnn.data.generator import DataGenerator


def uses_keras_threads(generator):
    """Whether Keras runs `generator` with its own worker pool (its tf.data is not autotuned)."""
    return generator.workers > 1 or (generator.workers > 0 and generator.use_multiprocessing)


def wants_own_pipeline(generator):
    """Whether `fit` should get `as_tf_dataset(generator)` in place of `generator` itself."""
    return (keras.backend.backend() == "tensorflow" and isinstance(generator, DataGenerator)
            and not uses_keras_threads(generator))


def as_tf_dataset(generator, prefetch=1):
    """``tf.data.Dataset`` of `generator`'s batches ``0 .. len - 1``, autotuning off.

    Args:
        generator: a `DataGenerator`; its epoch order is read as each batch
            is prepared (advance it with `AdvanceEpochs`).
        prefetch: batches prepared ahead of the training step (>= 1).

    Returns:
        the dataset, of cardinality ``len(generator)``.
    """
    import tensorflow as tf

    if int(prefetch) < 1:
        raise ValueError(f"prefetch must be a number of batches >= 1, got {prefetch!r}")
    spec = {name: tf.TensorSpec(shape, tf.as_dtype(dtype), name=name)
            for name, (shape, dtype) in generator.batch_spec().items()}
    steps = len(generator)

    def batches():
        for index in range(steps):
            yield generator[index]

    dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(int(prefetch)).with_options(options)


class AdvanceEpochs(keras.callbacks.Callback):
    """What Keras does for a PyDataset: ``on_epoch_end`` after each epoch / validation pass."""

    def __init__(self, train=None, validation=None):
        super().__init__()
        self.train, self.validation = train, validation

    def on_epoch_end(self, epoch, logs=None):
        if self.train is not None:
            self.train.on_epoch_end()

    def on_test_end(self, logs=None):
        if self.validation is not None:
            self.validation.on_epoch_end()


def fit_inputs(train_generator, val_generator):
    """``(train data, validation data, callbacks)`` to hand to ``fit`` for these generators.

    The generators themselves, no callback, except on TensorFlow for those
    Keras would run without a worker pool: `as_tf_dataset` of them and the
    `AdvanceEpochs` that moves them on (put it first among the callbacks).
    """
    own = [g if g is not None and wants_own_pipeline(g) else None
           for g in (train_generator, val_generator)]
    if own == [None, None]:
        return train_generator, val_generator, []
    data = [as_tf_dataset(g) if o is not None else g
            for g, o in zip((train_generator, val_generator), own)]
    return data[0], data[1], [AdvanceEpochs(*own)]
