"""FusedSGD against Keras' SGD and a NumPy reference: same updates, same state, same config."""

import keras
import numpy as np
import pytest

from mrcnn.training import fused_sgd
from mrcnn.training.fused_sgd import FusedSGD
from mrcnn.training.optimizer import build_optimizer
from model_helpers import make_config

BACKEND = keras.backend.backend()


def _run(optimizer, steps=4, seed=0):
    """Variables named like a model's (a kernel, a bias, a BN gamma) after `steps` updates."""
    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.standard_normal(shape).astype("float32"), name=name)
                 for shape, name in (((3, 3, 4, 5), "kernel"), ((5,), "bias"),
                                     ((5,), "gamma"))]
    optimizer.exclude_from_weight_decay(var_names=["gamma", "bias"])
    for step in range(steps):
        grads = [keras.ops.convert_to_tensor(rng.standard_normal(v.shape).astype("float32")
                                             * (10.0 if step == 1 else 1.0))   # clipped once
                 for v in variables]
        optimizer.apply(grads, variables)
    return [keras.ops.convert_to_numpy(v) for v in variables], optimizer


def _numpy_reference(steps=4, seed=0, lr=0.05, momentum=0.9, wd=0.01, clipnorm=5.0):
    """Decoupled weight decay, then per-variable clipping, then m = mu m - lr g; v += m."""
    rng = np.random.default_rng(seed)
    values = [rng.standard_normal(shape).astype("float64") for shape in ((3, 3, 4, 5), (5,), (5,))]
    moments = [np.zeros_like(v) for v in values]
    for step in range(steps):
        grads = [rng.standard_normal(v.shape).astype("float32").astype("float64")
                 * (10.0 if step == 1 else 1.0) for v in values]
        for i, (v, g) in enumerate(zip(values, grads)):
            norm = np.sqrt((g ** 2).sum())
            g = g * clipnorm / norm if norm > clipnorm else g
            if i == 0:                                  # the kernel only
                v = v - v * wd * lr
            moments[i] = momentum * moments[i] - lr * g
            values[i] = v + moments[i]
    return values


def test_fused_sgd_matches_keras_sgd_and_numpy():
    kwargs = dict(learning_rate=0.05, momentum=0.9, weight_decay=0.01, clipnorm=5.0)
    ours, _ = _run(FusedSGD(**kwargs))
    theirs, _ = _run(keras.optimizers.SGD(**kwargs))
    for a, b, ref in zip(ours, theirs, _numpy_reference()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="the fused kernel is TensorFlow's")
def test_on_tensorflow_the_update_is_the_fused_kernel(monkeypatch):
    import tensorflow as tf

    calls = []
    real = tf.raw_ops.ResourceApplyKerasMomentum
    monkeypatch.setattr(tf.raw_ops, "ResourceApplyKerasMomentum",
                        lambda **kw: calls.append(kw) or real(**kw))
    _run(FusedSGD(learning_rate=0.05, momentum=0.9), steps=1)
    assert len(calls) == 3 and all(not c["use_nesterov"] for c in calls)
    calls.clear()
    _run(FusedSGD(learning_rate=0.05, momentum=0.9, nesterov=True), steps=1)
    _run(FusedSGD(learning_rate=0.05, momentum=0.0), steps=1)
    assert calls == []                                   # Keras' own path for these


@pytest.mark.parametrize("kwargs", [dict(momentum=0.9, nesterov=True), dict(momentum=0.0)])
def test_settings_without_a_fused_kernel_are_keras_sgd(kwargs):
    ours, _ = _run(FusedSGD(learning_rate=0.05, **kwargs))
    theirs, _ = _run(keras.optimizers.SGD(learning_rate=0.05, **kwargs))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute")
def test_under_a_distribution_strategy_it_is_keras_sgd():
    import tensorflow as tf

    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        optimizer = FusedSGD(learning_rate=0.05, momentum=0.9)
        assert not fused_sgd._fused_here(optimizer)
    assert fused_sgd._fused_here(optimizer)


def test_state_and_config_are_keras_sgds():
    """Checkpointed optimizer state (mrcnn.training.state) and configs move between the two."""
    _, ours = _run(FusedSGD(learning_rate=0.05, momentum=0.9), steps=1)
    _, theirs = _run(keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), steps=1)
    assert [tuple(v.shape) for v in ours.variables] == [tuple(v.shape) for v in theirs.variables]
    assert [v.name for v in ours.variables] == [v.name for v in theirs.variables]
    config = ours.get_config()
    assert config == theirs.get_config() | {"name": config["name"]}
    again = keras.optimizers.deserialize(keras.optimizers.serialize(ours))
    assert type(again) is FusedSGD and again.momentum == 0.9


def test_the_config_s_sgd_is_fused():
    optimizer = build_optimizer(make_config(OPTIMIZER="SGD"), 0.01, 0.9, 100)
    assert type(optimizer) is FusedSGD and optimizer.momentum == 0.9
