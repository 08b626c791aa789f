"""What ``keras.Model.fit`` is fed: the data generators, their epochs set by fit's own.

Two things Keras' handling of a ``keras.utils.PyDataset`` gets wrong for
`mrcnn.data.generator.DataGenerator`, whose epoch ``e`` draws its image order
and sample randomness from ``(seed, e)``:

* **The epoch number.** Keras calls ``on_epoch_end`` once before the first
  epoch (when it resets its epoch iterator) and twice per validation pass, so
  epoch ``e`` of ``fit`` trained on the generator's epoch ``e + 1`` and the
  validation generator skipped every other epoch (measured on TensorFlow,
  JAX and PyTorch; Keras 3.15). `GeneratorEpochs` sets each generator's
  epoch to fit's as an epoch (a validation pass) begins, before its first
  batch is prepared, whatever Keras called before: a run resumed at epoch
  ``e`` sees what the uninterrupted run saw.
* **On TensorFlow, idle seconds at every epoch start.** A PyDataset without a
  worker pool (``workers <= 1``, no multiprocessing: Config.WORKERS = 0, the
  default) runs as ``tf.data.Dataset.from_generator(...).prefetch(AUTOTUNE)``
  with a new iterator per epoch and per validation pass. An autotuned
  iterator has a model thread that wakes once per optimization period (which
  doubles up to 60 s), and TensorFlow 2.21's iterator destructor waits for
  it: the old iterator, freed as the next epoch starts, holds the training
  for up to a minute with no CPU in use. `as_tf_dataset` builds the dataset
  itself with autotuning off (as Keras does for a PyDataset with a worker
  pool): a prefetch of one batch, the batches' shapes from
  `DataGenerator.batch_spec` (Keras prepared two batches to find them), the
  generator's length as the cardinality (so a new iterator still starts each
  epoch). Measured in `benchmarks/RESULTS.md`, "Idle seconds at every epoch
  start".

tf.data and Keras' worker pools start preparing batches at an iterator's
first read, after the epoch's callbacks began, so the epoch set by
`GeneratorEpochs` is the one every batch of the epoch is drawn from.
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
        generator: a `DataGenerator`; its epoch is read as each batch is
            prepared (set it with `GeneratorEpochs`).
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


class GeneratorEpochs(keras.callbacks.Callback):
    """Sets the generators' ``epoch`` to fit's: the training one as each epoch begins,
    the validation one as each validation pass begins (to the epoch it validates)."""

    def __init__(self, train=None, validation=None):
        super().__init__()
        self.train, self.validation = train, validation
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = int(epoch)
        if self.train is not None:
            self.train.epoch = self.epoch

    def on_test_begin(self, logs=None):
        if self.validation is not None:
            self.validation.epoch = self.epoch


def fit_inputs(train_generator, val_generator):
    """``(train data, validation data, callbacks)`` to hand to ``fit`` for these generators.

    `DataGenerator` objects get a `GeneratorEpochs` (put it first among the
    callbacks); on TensorFlow, those Keras would run without a worker pool
    run as `as_tf_dataset`. Anything else is passed on as it is.
    """
    ours = [g if isinstance(g, DataGenerator) else None for g in (train_generator, val_generator)]
    data = [as_tf_dataset(g) if g is not None and wants_own_pipeline(g) else given
            for g, given in zip(ours, (train_generator, val_generator))]
    callbacks = [GeneratorEpochs(*ours)] if ours != [None, None] else []
    return data[0], data[1], callbacks
