"""WindowConv2D (the box head's pool x pool and 1x1 "fully connected" convs) against keras' Conv2D."""

import numpy as np
import keras
import pytest
from keras import layers

from mrcnn.heads.window_conv import WindowConv2D


def _pair(filters, kernel, shape, seed=0):
    """A Conv2D and a WindowConv2D with the same weights, built for `shape`."""
    rng = np.random.default_rng(seed)
    ref = layers.Conv2D(filters, kernel, padding="valid")
    ours = WindowConv2D(filters, kernel, padding="valid")
    ref.build(shape)
    ours.build(shape)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ref.get_weights()]
    ref.set_weights(weights)
    ours.set_weights(weights)
    return ref, ours


@pytest.mark.parametrize("kernel,channels", [(7, 8), (1, 16), (3, 5)])
def test_output_and_gradients_equal_the_convolution(kernel, channels):
    shape = (6, kernel, kernel, channels)
    ref, ours = _pair(4, kernel, shape)
    x = np.random.default_rng(1).standard_normal(shape).astype("float32")
    want, got = keras.ops.convert_to_numpy(ref(x)), keras.ops.convert_to_numpy(ours(x))
    assert got.shape == want.shape == (6, 1, 1, 4)
    # float32 sums of up to 392 products of N(0, 1) values (outputs up to ~50): rounding ~1e-5
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # Gradients by central differences of the layer's own output (any backend):
    # d sum(y * g) / d x equals the Conv2D's, checked on a few input entries.
    g = np.random.default_rng(2).standard_normal(want.shape).astype("float32")
    eps = 1e-2
    for index in [(0, 0, 0, 0), (3, kernel - 1, kernel // 2, channels - 1), (5, kernel // 2, 0, 1)]:
        d = np.zeros(shape, "float32")
        d[index] = eps
        diffs = [float(np.sum((keras.ops.convert_to_numpy(layer(x + d))
                               - keras.ops.convert_to_numpy(layer(x - d))) * g)) / (2 * eps)
                 for layer in (ref, ours)]
        np.testing.assert_allclose(diffs[1], diffs[0], rtol=1e-3, atol=1e-3)


def test_training_gradients_equal_the_convolution():
    """One SGD step of a model with each layer moves the kernel alike."""
    shape = (5, 7, 7, 3)
    x = np.random.default_rng(3).standard_normal(shape).astype("float32")
    y = np.random.default_rng(4).standard_normal((5, 1, 1, 2)).astype("float32")
    kernels = []
    for cls in (layers.Conv2D, WindowConv2D):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(shape[1:]), cls(2, 7, padding="valid")])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(x, y)
        kernels.append(model.layers[0].get_weights()[0])
    np.testing.assert_allclose(kernels[1], kernels[0], rtol=1e-5, atol=1e-6)


def test_other_inputs_fall_back_to_the_convolution():
    """A larger input than the kernel: a real sliding convolution, as Conv2D."""
    ref, ours = _pair(3, 2, (2, 5, 4, 3))
    x = np.random.default_rng(5).standard_normal((2, 5, 4, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)),
                               keras.ops.convert_to_numpy(ref(x)), rtol=1e-5, atol=1e-5)
    assert tuple(ours(x).shape) == (2, 4, 3, 3)


def test_saved_and_loaded_with_its_class(tmp_path):
    model = keras.Sequential([keras.Input((7, 7, 4)), WindowConv2D(3, 7, name="mrcnn_class_conv1")])
    x = np.random.default_rng(6).standard_normal((2, 7, 7, 4)).astype("float32")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[0]) is WindowConv2D
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-6)
