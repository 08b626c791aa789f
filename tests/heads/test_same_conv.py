"""SameConv2D (mask head, FPN and RPN 3x3 convs) against keras' Conv2D and a NumPy brute force."""

import numpy as np
import keras
import pytest
from keras import layers

from mrcnn.heads import same_conv
from mrcnn.heads.same_conv import SameConv2D, forward_grads_pay

MEASURED = forward_grads_pay.__wrapped__     # the machine check itself, not its cached answer


@pytest.fixture(autouse=True)
def forward_grads_here(monkeypatch):
    """The tests below check the forward-convolution gradients on every machine, also
    where `forward_grads_pay` would leave TensorFlow's own (CPUs with AVX-512)."""
    monkeypatch.setattr(same_conv, "forward_grads_pay", lambda: True)


@pytest.mark.parametrize("flags, expected", [
    ({"fma", "avx2"}, True),                       # AMD EPYC without AVX-512: measured faster
    ({"fma", "avx2", "avx512f", "avx512_bf16"}, False),   # AVX-512: TensorFlow's own are faster
    (set(), False),                                # /proc/cpuinfo unreadable: TensorFlow's own
])
def test_forward_grads_only_on_cpus_where_they_were_measured_faster(monkeypatch, flags,
                                                                     expected):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a TensorFlow gradient path")
    monkeypatch.setattr(same_conv, "cpu_features", lambda: ("AuthenticAMD", frozenset(flags)))
    assert MEASURED() is expected
    import tensorflow as tf
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu:0"])
    assert MEASURED() is False                     # a GPU: cuDNN's gradients


def test_where_they_do_not_pay_the_layer_is_the_plain_convolution(monkeypatch):
    monkeypatch.setattr(same_conv, "forward_grads_pay", lambda: False)
    layer = SameConv2D(3, 3, padding="same")
    layer.build((1, 6, 6, 2))
    assert not layer._takes_forward_grad()


def _numpy_input_grad(g, kernel):
    """d sum(conv_same(x, W) * g) / dx by the definition: dx[p] = sum_ij g[p - (ij - r)] W_ij^T."""
    kh, kw, c, f = kernel.shape
    rh, rw = kh // 2, kw // 2
    n, h, w, _ = g.shape
    gp = np.pad(g, [(0, 0), (rh, rh), (rw, rw), (0, 0)])
    dx = np.zeros((n, h, w, c))
    for i in range(kh):
        for j in range(kw):
            # y[p] takes x[p + (i - rh, j - rw)] * W[i, j]: x[q] feeds y[q - (i - rh, j - rw)]
            shifted = gp[:, 2 * rh - i:2 * rh - i + h, 2 * rw - j:2 * rw - j + w, :]
            dx += shifted @ kernel[i, j].T
    return dx


@pytest.mark.parametrize("kernel_size,channels,filters", [(3, 5, 4), (5, 3, 6), (1, 4, 2)])
def test_tensorflow_input_gradient_is_the_definition(kernel_size, channels, filters):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the forward-convolution gradient is TensorFlow's; other backends derive their own")
    import tensorflow as tf
    rng = np.random.default_rng(kernel_size)
    shape = (2, 9, 7, channels)
    layer = SameConv2D(filters, kernel_size, padding="same")
    layer.build(shape)
    kernel = rng.standard_normal(layer.kernel.shape).astype("float32")
    layer.set_weights([kernel, rng.standard_normal(filters).astype("float32")])
    assert layer._takes_forward_grad()
    x = tf.constant(rng.standard_normal(shape).astype("float32"))
    g = rng.standard_normal(shape[:3] + (filters,)).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * g)
    dx, dw = tape.gradient(loss, [x, layer.kernel])
    np.testing.assert_allclose(dx.numpy(), _numpy_input_grad(g.astype("float64"), kernel),
                               rtol=1e-4, atol=1e-4)
    # the kernel gradient is TensorFlow's own: sum over positions of x-window x g
    ref = layers.Conv2D(filters, kernel_size, padding="same")
    ref.build(shape)
    ref.set_weights(layer.get_weights())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(ref(x) * g)
    np.testing.assert_allclose(dw.numpy(), tape.gradient(loss, ref.kernel).numpy(),
                               rtol=1e-5, atol=1e-4)


def test_training_step_equals_the_convolution():
    """One SGD step moves a layer *before* ours (it sees our input gradient) as with Conv2D."""
    x = np.random.default_rng(3).standard_normal((4, 8, 10, 3)).astype("float32")
    y = np.random.default_rng(4).standard_normal((4, 8, 10, 6)).astype("float32")
    weights = []
    for cls in (layers.Conv2D, SameConv2D):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input(x.shape[1:]), layers.Conv2D(5, 3, padding="same"),
                                  cls(6, 3, padding="same", activation="relu")])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(x, y)
        weights.append([w for layer in model.layers for w in layer.get_weights()])
    for got, want in zip(weights[1], weights[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bfloat16_policy_gives_the_convolution_gradient():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's gradient path")
    import tensorflow as tf
    rng = np.random.default_rng(5)
    x = tf.constant(rng.standard_normal((2, 6, 6, 4)).astype("float32"))
    grads = []
    for cls in (layers.Conv2D, SameConv2D):
        layer = cls(3, 3, padding="same", dtype="mixed_bfloat16")
        layer.build(x.shape)
        layer.set_weights([np.full(layer.kernel.shape, 0.1, "float32"), np.zeros(3, "float32")])
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x), "float32") ** 2)
        grads.append(tape.gradient(loss, x).numpy())
    assert grads[1].dtype == np.float32
    np.testing.assert_allclose(grads[1], grads[0], rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("kwargs", [dict(strides=2), dict(padding="valid"), dict(kernel_size=2),
                                    dict(dilation_rate=2)])
def test_other_settings_are_the_plain_convolution(kwargs):
    args = dict(filters=3, kernel_size=3, padding="same")
    args.update(kwargs)
    layer = SameConv2D(**args)
    ref = layers.Conv2D(**args)
    shape = (2, 8, 8, 4)
    layer.build(shape)
    ref.build(shape)
    ref.set_weights(layer.get_weights())
    assert not layer._takes_forward_grad()
    x = np.random.default_rng(6).standard_normal(shape).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)),
                               keras.ops.convert_to_numpy(ref(x)), rtol=1e-6, atol=1e-6)


def test_heads_use_it_with_matterport_names():
    from mrcnn.heads.fpn import build_fpn
    maps = [keras.Input((s, s, 8)) for s in (32, 16, 8, 4)]
    outs = build_fpn(*maps, pyramid_size=8)
    model = keras.Model(maps, outs)
    for name in ("fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5"):
        assert isinstance(model.get_layer(name), SameConv2D)
