"""mrcnn.training.tf_input: the generators as tf.data datasets without autotuning (TensorFlow).

The reference is the generator itself: indexing it directly, epoch by epoch,
gives the batches the dataset must yield in order.
"""

import keras
import numpy as np
import pytest
from data_helpers import Cfg

from mrcnn.data.generator import DataGenerator
from mrcnn.datasets.shapes import ShapesDataset
from mrcnn.training import tf_input

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the tf.data pipeline is TensorFlow's")


@pytest.fixture(scope="module")
def shapes():
    ds = ShapesDataset()
    ds.load_shapes(6, 96, 112, seed=3)
    ds.prepare()
    return ds


def _expected(shapes, epochs, steps=3):
    twin = DataGenerator(shapes, Cfg(), shuffle=True, seed=5, steps=steps)
    out = []
    for _ in range(epochs):
        out.append([twin[i] for i in range(len(twin))])
        twin.on_epoch_end()
    return out


def test_the_dataset_yields_the_generators_batches_epoch_by_epoch(shapes):
    gen = DataGenerator(shapes, Cfg(), shuffle=True, seed=5, steps=3)
    dataset = tf_input.as_tf_dataset(gen)
    advance = tf_input.AdvanceEpochs(train=gen)
    expected = _expected(shapes, 2)
    assert int(dataset.cardinality()) == 3
    for epoch in range(2):
        got = list(iter(dataset))              # a new iterator per epoch, as Keras does
        assert len(got) == 3
        for batch, want in zip(got, expected[epoch]):
            assert set(batch) == set(want)
            for name in want:
                np.testing.assert_array_equal(batch[name].numpy(), want[name], err_msg=name)
        advance.on_epoch_end(epoch)
    # the epochs differ (the generator's order is drawn per epoch)
    assert any(not np.array_equal(a["input_image"], b["input_image"])
               for a, b in zip(expected[0], expected[1]))


def test_batch_spec_is_what_a_batch_holds(shapes):
    for cfg in (Cfg(), type("Full", (Cfg,), {"USE_MINI_MASK": False})()):
        gen = DataGenerator(shapes, cfg, seed=1)
        batch = gen[0]
        spec = gen.batch_spec()
        assert set(spec) == set(batch)
        for name, (shape, dtype) in spec.items():
            assert batch[name].shape == shape and batch[name].dtype == np.dtype(dtype), name


def test_autotuning_is_off_and_keras_threads_are_left_alone(shapes):
    gen = DataGenerator(shapes, Cfg(), seed=1)
    assert tf_input.as_tf_dataset(gen).options().autotune.enabled is False
    assert tf_input.wants_own_pipeline(gen)
    threaded = DataGenerator(shapes, Cfg(), seed=1, workers=2)
    assert not tf_input.wants_own_pipeline(threaded)      # Keras' enqueuer: not autotuned
    train, val, callbacks = tf_input.fit_inputs(threaded, None)
    assert train is threaded and val is None and callbacks == []
    train, val, callbacks = tf_input.fit_inputs(gen, threaded)
    assert val is threaded and isinstance(callbacks[0], tf_input.AdvanceEpochs)
    assert callbacks[0].train is gen and callbacks[0].validation is None
    with pytest.raises(ValueError, match="prefetch must be a number of batches >= 1, got 0"):
        tf_input.as_tf_dataset(gen, prefetch=0)


def test_validation_passes_advance_the_validation_generator(shapes):
    gen = DataGenerator(shapes, Cfg(), shuffle=False, seed=2, steps=1)
    advance = tf_input.AdvanceEpochs(validation=gen)
    advance.on_epoch_end(0)            # no training generator: nothing to move
    assert gen.epoch == 0
    advance.on_test_end()
    assert gen.epoch == 1
