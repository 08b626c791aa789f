"""A head run on the leading rows at bucketed static sizes (mrcnn/layers/row_buckets.py)."""

import keras
import numpy as np
import pytest

from mrcnn.layers.row_buckets import BucketedRows, bucket_index, bucket_sizes
from mrcnn.layers.walk import leaf_layers
from mrcnn.ops import dispatch


def test_bucket_sizes_halve_down_to_the_smallest():
    assert bucket_sizes(128) == [8, 16, 32, 64, 128]
    assert bucket_sizes(100) == [13, 25, 50, 100]
    assert bucket_sizes(5) == [5]
    assert bucket_sizes(42, min_rows=16) == [21, 42]
    with pytest.raises(ValueError, match="n >= 1 and min_rows >= 1, got n=0"):
        bucket_sizes(0)


def test_bucket_index_is_the_smallest_bucket_holding_every_image():
    rng = np.random.default_rng(0)
    buckets = bucket_sizes(64)
    for _ in range(30):
        counts = rng.integers(0, 65, size=3)
        ids = np.zeros((3, 64), "int32")
        for b, c in enumerate(counts):
            ids[b, :c] = rng.integers(1, 4, size=c)
        want = next(i for i, k in enumerate(buckets) if k >= counts.max())
        got = int(keras.ops.convert_to_numpy(bucket_index(ids, buckets)))
        assert got == want, (counts, buckets)


def _dense_head(batch, features=4, units=3, batch_norm=False):
    rows = keras.Input(batch_shape=(batch, None, features))
    x = keras.layers.Dense(units, name="inner_dense")(rows)
    if batch_norm:
        x = keras.layers.BatchNormalization(name="inner_bn")(x)
    return keras.Model(rows, x, name="head")


def test_the_head_runs_on_the_bucket_and_the_rest_is_zero():
    head = _dense_head(2)
    layer = BucketedRows(head, 32)
    assert layer.buckets == [8, 16, 32]
    x = np.random.default_rng(1).normal(size=(2, 32, 4)).astype("float32")
    full = keras.ops.convert_to_numpy(head(x))
    for counts, k in (([3, 9], 16), ([0, 8], 8), ([0, 0], 8), ([17, 2], 32)):
        ids = np.zeros((2, 32), "int32")
        for b, c in enumerate(counts):
            ids[b, :c] = 1
        out = keras.ops.convert_to_numpy(layer(x, ids))
        assert out.shape == (2, 32, 3)
        np.testing.assert_allclose(out[:, :k], full[:, :k], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(out[:, k:], 0.0)


def test_gradients_reach_the_head_through_the_chosen_bucket():
    head = _dense_head(1)
    layer = BucketedRows(head, 16)
    x = np.random.default_rng(2).normal(size=(1, 16, 4)).astype("float32")
    ids = np.zeros((1, 16), "int32")
    ids[0, :5] = 2
    kernel = head.get_layer("inner_dense").kernel
    if keras.backend.backend() == "jax":
        import jax
        from keras.src.backend.common.stateless_scope import StatelessScope

        def loss(value):
            with StatelessScope(state_mapping=[(kernel, value)]):
                return keras.ops.sum(layer(x, ids)[:, :5])
        grad = np.asarray(jax.grad(loss)(kernel.value))
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        with tf.GradientTape() as tape:
            value = keras.ops.sum(layer(x, ids)[:, :5])
        grad = tape.gradient(value, kernel.value).numpy()
    else:
        value = keras.ops.sum(layer(x, ids)[:, :5])
        value.backward()
        grad = kernel.value.grad.cpu().numpy()
    # d/dW sum(x W + b) over the 5 rows = sum of those rows' features, per unit
    want = np.repeat(x[0, :5].sum(0)[:, None], 3, axis=1)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-5)


def test_training_runs_every_row_on_a_cpu_or_with_a_training_batch_norm(monkeypatch):
    """Gradients inside a conditional are slow on XLA:CPU, and moving statistics cannot
    leave a switch branch: training there, or with a training BN, runs all N rows."""
    head = _dense_head(1, batch_norm=True)
    layer = BucketedRows(head, 16)
    x = np.random.default_rng(3).normal(size=(1, 16, 4)).astype("float32")
    ids = np.zeros((1, 16), "int32")
    ids[0, :2] = 1

    def past_the_bucket(training):
        out = keras.ops.convert_to_numpy(layer(x, ids, training=training))
        return np.abs(out[0, 8:]).sum(-1)

    head.get_layer("inner_bn").trainable = False
    assert dispatch.switch_trains_fast() is False     # no accelerator here
    assert np.all(past_the_bucket(True) > 0)          # computed: every row
    np.testing.assert_array_equal(past_the_bucket(False), 0.0)   # inference: the bucket
    monkeypatch.setattr(dispatch, "switch_trains_fast", lambda: True)   # an accelerator
    np.testing.assert_array_equal(past_the_bucket(True), 0.0)
    head.get_layer("inner_bn").trainable = True
    assert np.all(past_the_bucket(True) > 0)


def test_the_training_bucket_switch_follows_the_environment(monkeypatch):
    on_jax = keras.backend.backend() == "jax"
    monkeypatch.delenv("MRCNN_TRAIN_MASK_BUCKETS", raising=False)
    assert dispatch.switch_trains_fast() is False   # TF/torch always; JAX on this CPU too
    for value, want in [("on", True), ("OFF", False), (" auto ", False)]:
        monkeypatch.setenv("MRCNN_TRAIN_MASK_BUCKETS", value)
        assert dispatch.switch_trains_fast() is (want and on_jax)
    monkeypatch.setenv("MRCNN_TRAIN_MASK_BUCKETS", "yes")
    if on_jax:
        with pytest.raises(ValueError, match=r"MRCNN_TRAIN_MASK_BUCKETS must be one of .*'yes'"):
            dispatch.switch_trains_fast()
    else:
        assert dispatch.switch_trains_fast() is False   # nothing to switch off JAX


def test_the_heads_layers_are_reached_and_the_layer_round_trips():
    head = _dense_head(2)
    layer = BucketedRows(head, 24, min_rows=6, name="buckets")
    assert [l.name for l in leaf_layers(layer) if l.weights] == ["inner_dense"]
    x = np.random.default_rng(4).normal(size=(2, 24, 4)).astype("float32")
    ids = np.ones((2, 24), "int32")
    want = keras.ops.convert_to_numpy(layer(x, ids))
    again = BucketedRows.from_config(layer.get_config())
    assert again.buckets == layer.buckets == [6, 12, 24]
    again.head.set_weights(head.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x, ids)), want, rtol=1e-6)
    with pytest.raises(ValueError, match=r"BucketedRows\(num_rows=24\) got 10 rows"):
        layer(x[:, :10], ids[:, :10])
