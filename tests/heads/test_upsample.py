"""mrcnn.heads.upsample: the 2x2 stride-2 transposed convolution as a matrix product."""

import keras
import numpy as np
import pytest

from helpers import run_layer_test
from mrcnn.heads.upsample import UpsampleConv2DTranspose


def reference(x, kernel, bias):
    """Brute force: every input pixel scatters its 2x2 block, y[2i+a, 2j+b] = x[i, j] K[a, b]."""
    n, h, w, _ = x.shape
    kh, kw, f, _ = kernel.shape
    y = np.zeros((n, h * kh, w * kw, f))
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for b in range(kw):
                    y[:, i * kh + a, j * kw + b] += x[:, i, j] @ kernel[a, b].T
    return y + bias


@pytest.mark.parametrize("kernel_size", [2, 3])
def test_equals_keras_conv2d_transpose_and_the_brute_force(kernel_size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 4, 3)).astype("float32")
    ours = UpsampleConv2DTranspose(6, kernel_size, strides=kernel_size)
    keras_layer = keras.layers.Conv2DTranspose(6, kernel_size, strides=kernel_size)
    ours.build(x.shape)
    keras_layer.build(x.shape)
    weights = [rng.normal(size=v.shape).astype("float32") for v in keras_layer.weights]
    ours.set_weights(weights)
    keras_layer.set_weights(weights)
    got = keras.ops.convert_to_numpy(ours(x))
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(keras_layer(x)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, reference(x, *weights), rtol=1e-5, atol=1e-5)


def test_overlapping_windows_run_the_parents_convolution():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 4, 4, 2)).astype("float32")
    ours = UpsampleConv2DTranspose(3, 3, strides=2, padding="same")
    keras_layer = keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same")
    ours.build(x.shape)
    keras_layer.build(x.shape)
    keras_layer.set_weights(ours.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours(x)),
                               keras.ops.convert_to_numpy(keras_layer(x)), rtol=1e-5, atol=1e-5)


def test_layer_contract_shapes_saving_and_gradients():
    x = np.random.default_rng(2).normal(size=(3, 7, 7, 4)).astype("float32")
    run_layer_test(UpsampleConv2DTranspose(5, 2, strides=2, activation="relu", name="up"), x,
                   expected_output_shape=(3, 14, 14, 5))
