"""mrcnn.training.fit_inputs: what fit is fed (generator epochs; tf.data without autotuning).

The reference is the generator itself: indexing it directly, epoch by epoch,
gives the batches that must arrive, and a recording generator shows which
(epoch, batch) ``fit`` asked for.
"""

import keras
import numpy as np
import pytest
from data_helpers import Cfg
from keras import ops
from model_helpers import shapes as shapes_dataset

from mrcnn.data.generator import DataGenerator
from mrcnn.training import fit_inputs as F
from mrcnn.training.loop import fit

tensorflow_only = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                     reason="the tf.data pipeline is TensorFlow's")


@pytest.fixture(scope="module")
def shapes():
    return shapes_dataset(count=6, size=96, seed=3)


class _Recording(DataGenerator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def __getitem__(self, index):
        self.seen.append((self.epoch, index))
        return super().__getitem__(index)


class _ZeroLoss(keras.layers.Layer):
    def call(self, x):
        self.add_loss(ops.mean(x) * 0.0)
        return x


def _reader(generator):
    """A model that reads every input of a batch and learns nothing (a loss of 0)."""
    inputs = {name: keras.Input(shape[1:], batch_size=shape[0], dtype=dtype, name=name)
              for name, (shape, dtype) in generator.batch_spec().items()}
    pooled = keras.layers.GlobalAveragePooling2D()(inputs["input_image"])
    model = keras.Model(inputs, _ZeroLoss()(keras.layers.Dense(1)(pooled)))
    model.compile(optimizer="sgd")
    return model


@pytest.mark.parametrize("initial_epoch", [0, 2])
def test_fit_feeds_epoch_e_the_generators_epoch_e(shapes, initial_epoch):
    """Epoch e of ``fit`` gets batches 0..n-1 of the generator's epoch e, in order, once
    each, and validation after epoch e the validation generator's epoch e.

    Keras' own handling fed epoch e+1 (it ends an epoch before the first one) and
    advanced the validation generator twice per pass.
    """
    train = _Recording(shapes, Cfg(), shuffle=True, seed=5, steps=3)
    val = _Recording(shapes, Cfg(), shuffle=False, seed=6, steps=1)
    train.epoch = initial_epoch          # as make_generators does for a resumed run
    fit(_reader(train), train, val, initial_epoch=initial_epoch, epochs=initial_epoch + 2,
        steps_per_epoch=3, validation_steps=1, callbacks=[], verbose=0)
    epochs = (initial_epoch, initial_epoch + 1)
    assert train.seen == [(e, i) for e in epochs for i in range(3)]
    assert val.seen == [(e, 0) for e in epochs]


@tensorflow_only
def test_the_dataset_yields_the_generators_batches_epoch_by_epoch(shapes):
    gen = DataGenerator(shapes, Cfg(), shuffle=True, seed=5, steps=3)
    twin = DataGenerator(shapes, Cfg(), shuffle=True, seed=5, steps=3)
    dataset = F.as_tf_dataset(gen)
    epochs = F.GeneratorEpochs(train=gen)
    assert int(dataset.cardinality()) == 3
    firsts = []
    for epoch in range(2):
        epochs.on_epoch_begin(epoch)
        twin.epoch = epoch
        got = list(iter(dataset))              # a new iterator per epoch, as Keras does
        assert len(got) == 3
        for index, batch in enumerate(got):
            want = twin[index]
            assert set(batch) == set(want)
            for name in want:
                np.testing.assert_array_equal(batch[name].numpy(), want[name], err_msg=name)
        firsts.append(got[0]["input_image"].numpy())
    assert not np.array_equal(*firsts)      # the generator's order is drawn per epoch


def test_batch_spec_is_what_a_batch_holds(shapes):
    for cfg in (Cfg(), type("Full", (Cfg,), {"USE_MINI_MASK": False})()):
        gen = DataGenerator(shapes, cfg, seed=1)
        batch = gen[0]
        spec = gen.batch_spec()
        assert set(spec) == set(batch)
        for name, (shape, dtype) in spec.items():
            assert batch[name].shape == shape and batch[name].dtype == np.dtype(dtype), name


@tensorflow_only
def test_autotuning_is_off_and_keras_threads_are_left_alone(shapes):
    gen = DataGenerator(shapes, Cfg(), seed=1)
    assert F.as_tf_dataset(gen).options().autotune.enabled is False
    assert F.wants_own_pipeline(gen)
    threaded = DataGenerator(shapes, Cfg(), seed=1, workers=2)
    assert not F.wants_own_pipeline(threaded)      # Keras' worker pool: not autotuned
    train, val, callbacks = F.fit_inputs(threaded, None)
    assert train is threaded and val is None
    assert callbacks[0].train is threaded and callbacks[0].validation is None
    train, val, callbacks = F.fit_inputs(gen, threaded)
    assert val is threaded and train is not gen
    with pytest.raises(ValueError, match="prefetch must be a number of batches >= 1, got 0"):
        F.as_tf_dataset(gen, prefetch=0)


def test_other_inputs_pass_through(shapes):
    data = [np.zeros((2, 3))]
    assert F.fit_inputs(data, None) == (data, None, [])
