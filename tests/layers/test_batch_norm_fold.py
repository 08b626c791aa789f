"""fold_batch_norms: each convolution and its batch norm as one convolution.

The reference is Keras' own computation of the same layers with the same
weights (a second model, not folded): the folded model must give its
outputs, gradients and updates, and fold only the pairs where that holds.
"""

import keras
import numpy as np
import pytest

import mrcnn.layers.batch_norm_fold as bnf
from mrcnn.heads.same_conv import SameConv2D
from mrcnn.heads.window_conv import WindowConv2D
from mrcnn.layers.batch_norm_fold import fold_batch_norms
from mrcnn.layers.walk import leaf_layers

FOLDS = keras.backend.backend() == "tensorflow"     # XLA fuses them itself; PyTorch is eager
L = keras.layers

FOLDABLE = {("conv_a", "bn_a"), ("dw_b", "bn_b"), ("same_c", "bn_c"), ("conv_d", "bn_d"),
            ("window_e", "bn_e"), ("conv_inner", "bn_inner")}


def build(seed=0):
    """Conv -> BN pairs of every kind, and three that must stay apart (comments)."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((12, 12, 3), batch_size=2, name="image")
    a = L.Activation("relu")(L.BatchNormalization(name="bn_a")(
        L.Conv2D(8, 3, padding="same", name="conv_a")(x)))
    b = L.BatchNormalization(center=False, name="bn_b")(          # 16 channels: c * 2 + m
        L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False,
                          name="dw_b")(a))
    c = L.BatchNormalization(scale=False, name="bn_c")(SameConv2D(16, 3, padding="same",
                                                                  name="same_c")(b))
    d = L.BatchNormalization(name="bn_d")(L.Conv2D(16, 1, strides=2, name="conv_d")(c))
    # not folded: the activation sits between the convolution and the batch norm
    r = L.BatchNormalization(name="bn_after_relu")(
        L.Conv2D(16, 3, padding="same", activation="relu", name="conv_relu")(d))
    # not folded: the convolution's output is also read by the Add
    s = L.Conv2D(16, 1, name="conv_twice")(r)
    t = L.Add(name="add")([s, L.BatchNormalization(name="bn_of_twice")(s)])
    # not folded: a batch norm over another axis than the channels
    u = L.BatchNormalization(axis=1, name="bn_axis1")(L.Conv2D(6, 1, name="conv_axis1")(t))
    inner_in = keras.Input((6, 6, 16))
    inner = keras.Model(inner_in, L.BatchNormalization(name="bn_inner")(
        L.Conv2D(16, 3, padding="same", name="conv_inner")(inner_in)), name="inner")
    v = inner(L.Conv2D(16, 1, name="conv_to_inner")(u))
    e = L.BatchNormalization(name="bn_e")(WindowConv2D(5, 6, padding="valid", name="window_e")(v))
    return keras.Model(x, [v, e])


def randomize_batch_norms(model, seed=1):
    """Statistics and affine weights far from the initial identity."""
    rng = np.random.default_rng(seed)
    for layer in leaf_layers(model):
        if isinstance(layer, L.BatchNormalization):
            for var in layer.weights:
                n = var.shape[0]
                value = {"gamma": rng.uniform(0.5, 1.5, n), "beta": rng.uniform(-0.5, 0.5, n),
                         "moving_mean": rng.uniform(-0.5, 0.5, n),
                         "moving_variance": rng.uniform(0.3, 2.0, n)}[var.name]
                var.assign(value.astype("float32"))


def twin_models(seed=0):
    """(reference, folded): the same weights; only the second is folded."""
    reference, folded = build(seed), build(seed)
    randomize_batch_norms(reference)
    folded.set_weights(reference.get_weights())
    return reference, folded


def images(seed=2):
    return np.random.default_rng(seed).normal(0, 1, (2, 12, 12, 3)).astype("float32")


def max_relative(a, b):
    return max(float(np.max(np.abs(x - y)) / (np.max(np.abs(y)) + 1e-12)) for x, y in zip(a, b))


def test_folds_exactly_the_foldable_pairs_and_keeps_every_weight():
    reference, folded = twin_models()
    before = [np.array(w) for w in folded.get_weights()]
    pairs = fold_batch_norms(folded)
    assert set(pairs) == (FOLDABLE if FOLDS else set())
    assert fold_batch_norms(folded) == []                     # linked once
    assert all(np.array_equal(a, b) for a, b in zip(before, folded.get_weights()))
    assert [w.path for w in folded.weights] == [w.path for w in reference.weights]


def test_folded_inference_equals_keras_batch_norm(monkeypatch):
    reference, folded = twin_models()
    pairs = fold_batch_norms(folded)
    calls = []
    original = bnf._folded_conv
    monkeypatch.setattr(bnf, "_folded_conv", lambda conv, bn, x: calls.append(bn.name)
                        or original(conv, bn, x))
    x = images()
    want = reference.predict_on_batch(x)
    got = folded.predict_on_batch(x)                             # traced: the folded path
    assert sorted(calls) == sorted(bn for _, bn in pairs)
    assert max_relative(got, want) < 1e-5
    # a model reading a folded convolution's own output gets that output
    conv_out = keras.Model(folded.inputs, folded.get_layer("conv_d").output)
    ref_out = keras.Model(reference.inputs, reference.get_layer("conv_d").output)
    assert max_relative([conv_out.predict_on_batch(x)], [ref_out.predict_on_batch(x)]) < 1e-5
    # eager calls take the batch norms as they are
    calls.clear()
    eager = [keras.ops.convert_to_numpy(v) for v in folded(x, training=False)]
    assert calls == [] and max_relative(eager, want) < 1e-5


@pytest.mark.parametrize("train_bn", [False, True])
def test_training_steps_equal_keras_batch_norm(train_bn):
    """Frozen batch norms (Matterport's TRAIN_BN False) train folded; trainable ones use the
    batch's statistics and update their moving ones, as Keras does."""
    reference, folded = twin_models()
    fold_batch_norms(folded)
    rng = np.random.default_rng(3)
    targets = [rng.normal(0, 1, (2, 6, 6, 16)).astype("float32"),
               rng.normal(0, 1, (2, 1, 1, 5)).astype("float32")]
    for model in (reference, folded):
        for layer in leaf_layers(model):
            if isinstance(layer, L.BatchNormalization):
                layer.trainable = train_bn
        model.compile(keras.optimizers.SGD(0.005), loss=["mse", "mse"])
    x = images()
    for _ in range(2):
        losses = [m.train_on_batch(x, targets) for m in (reference, folded)]
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert max_relative(folded.get_weights(), reference.get_weights()) < 1e-5
    moved = [not np.allclose(w, v) for w, v in zip(reference.get_weights(),
                                                    twin_models()[0].get_weights())]
    assert any(moved)
    assert max_relative(folded.predict_on_batch(x), reference.predict_on_batch(x)) < 1e-5


def test_mixed_bfloat16_folds_within_its_rounding():
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        reference, folded = twin_models()
    finally:
        keras.config.set_dtype_policy("float32")
    fold_batch_norms(folded)
    x = images()
    want = [np.asarray(v, "float32") for v in reference.predict_on_batch(x)]
    got = [np.asarray(v, "float32") for v in folded.predict_on_batch(x)]
    assert got[0].dtype == want[0].dtype
    # bfloat16 keeps 8 bits: one rounding more or less per layer, over six layers
    assert max_relative(got, want) < 0.05


def test_maskrcnn_folds_by_default_and_detects_as_unfolded(tmp_path):
    """Config.FOLD_BATCH_NORMS: the same detections from the same file, folded or not."""
    import mrcnn.model as modellib
    from model_helpers import make_config, shapes

    keras.utils.set_random_seed(0)
    config = make_config(IMAGES_PER_GPU=1)
    folded = modellib.MaskRCNN("inference", config, str(tmp_path))
    randomize_batch_norms(folded.keras_model)
    path = str(tmp_path / "w.h5")
    folded.save_weights(path)
    plain = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=1, FOLD_BATCH_NORMS=False),
                              str(tmp_path))
    plain.load_weights(path)
    linked = [l for l in leaf_layers(folded.keras_model) if hasattr(l, "_mrcnn_folded_into")]
    bns = [l for l in leaf_layers(folded.keras_model) if isinstance(l, L.BatchNormalization)]
    assert len(linked) == (len(bns) if FOLDS else 0) and len(bns) >= 10
    assert not any(hasattr(l, "_mrcnn_folded_into") for l in leaf_layers(plain.keras_model))
    image = shapes(1, seed=4).load_image(0)
    a, b = folded.detect([image])[0], plain.detect([image])[0]
    assert len(a["scores"]) == len(b["scores"]) > 0
    np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-4)
    np.testing.assert_allclose(a["rois"], b["rois"], atol=1)
