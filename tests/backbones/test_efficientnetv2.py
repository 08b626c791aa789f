"""Tests for backbones.efficientnetv2 (nested keras.applications models)."""

import re

import keras
import numpy as np
import pytest

import backbones
from mrcnn.training.trainable import set_trainable
from backbones.efficientnetv2 import VARIANTS

# Endpoint layers from the published stage repeats (B0: 1,2,2,3,5,8 blocks;
# B1/B2/B3 scale the depth by 1.1/1.2/1.4 rounding up; S: 2,4,4,6,9,15;
# M: 3,5,5,7,14,18,5; L: 4,7,7,10,19,25,7): the last block of stage 2 (stride
# 4), stage 3 (stride 8), stage 5 (stride 16) and the top layer (stride 32).
EXPECTED_ENDPOINTS = {
    "b0": ("block2b_add", "block3b_add", "block5e_add", "top_activation"),
    "b1": ("block2c_add", "block3c_add", "block5f_add", "top_activation"),
    "b2": ("block2c_add", "block3c_add", "block5f_add", "top_activation"),
    "b3": ("block2c_add", "block3c_add", "block5g_add", "top_activation"),
    "s": ("block2d_add", "block3d_add", "block5i_add", "top_activation"),
    "m": ("block2e_add", "block3e_add", "block5n_add", "top_activation"),
    "l": ("block2g_add", "block3g_add", "block5s_add", "top_activation"),
}
# Parameter counts of keras.applications EfficientNetV2*(include_top=False).
EXPECTED_PARAMS = {"b0": 5919312, "b1": 6931124, "b2": 8769374,
                   "b3": 12930622, "s": 20331360, "m": 53150388,
                   "l": 117746848}


def _build(variant, shape, **options):
    """Returns (outer model, nested backbone model)."""
    inputs = keras.Input(shape)
    outputs = backbones.get(f"efficientnetv2-{variant}").build(inputs,
                                                               **options)
    model = keras.Model(inputs, outputs)
    return model, model.get_layer(f"efficientnetv2-{variant}")


@pytest.fixture(scope="module")
def b0():
    return _build("b0", (None, None, 3))


# Build times on 2 CPUs: TensorFlow 2-3 s (B0-B3, S), 6-8 s (M), 7-10 s
# (L); JAX 10-20 s each (initializers are compiled per weight shape). B0 and
# S (the two families) run by default, the others are marked slow.
@pytest.mark.parametrize("variant", [
    v if v in ("b0", "s") else pytest.param(v, marks=pytest.mark.slow)
    for v in sorted(VARIANTS)])
def test_variant_endpoints(variant):
    backbone = backbones.get(f"efficientnetv2-{variant}")
    model, nested = _build(variant, (128, 128, 3))
    assert backbone.strides() == (4, 8, 16, 32)
    for out, stride, ch in zip(model.outputs, (4, 8, 16, 32),
                               backbone.channels):
        assert tuple(out.shape) == (None, 128 // stride, 128 // stride, ch)
    assert tuple(t._keras_history[0].name for t in nested.outputs) == \
        EXPECTED_ENDPOINTS[variant]
    assert model.count_params() == EXPECTED_PARAMS[variant]
    # The nested model is the only layer between input and outputs.
    assert [l.name for l in model.layers][1:] == [nested.name]


def test_concrete_forward_shapes(b0):
    model, _ = b0
    outs = model.predict(np.zeros((1, 128, 192, 3), "float32"), verbose=0)
    assert [o.shape for o in outs] == [(1, 32, 48, 32), (1, 16, 24, 48),
                                       (1, 8, 12, 112), (1, 4, 6, 1280)]


def test_rescaling_layer(b0):
    _, nested = b0
    rescale = nested.get_layer("effnetv2_rescale")
    assert rescale.scale == pytest.approx(1 / 128.0)
    assert rescale.offset == 0.0
    # Fed straight from the input, before the stem.
    assert nested.get_layer("stem_conv").input._keras_history[0] is rescale


def test_first_stride_one():
    backbone = backbones.get("efficientnetv2-b0")
    assert backbone.strides(first_stride=1) == (2, 4, 8, 16)
    model, nested = _build("b0", (128, 128, 3), first_stride=1)
    assert nested.get_layer("stem_conv").strides == (1, 1)
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, 64, 64, 32), (None, 32, 32, 48), (None, 16, 16, 112),
        (None, 8, 8, 1280)]
    assert model.count_params() == EXPECTED_PARAMS["b0"]


def _block_strides(nested, size=128):
    """Stride of every layer's block, from Keras' shape inference.

    A block ("block4a", "stem", "top") has the stride of its last layer.
    """
    layers = [l for l in nested.layers[1:]]
    probe = keras.Model(nested.inputs, [l.output for l in layers])
    outs = probe.compute_output_spec(keras.KerasTensor((1, size, size, 3)))
    block_stride = {}
    for layer, out in zip(layers, outs):
        block = re.match(r"(block\d+[a-z]+|[a-z0-9]+)", layer.name).group(1)
        if len(out.shape) == 4:
            block_stride[block] = size // out.shape[1]
    return {l.name: block_stride[re.match(r"(block\d+[a-z]+|[a-z0-9]+)",
                                          l.name).group(1)]
            for l in layers}


@pytest.mark.parametrize("variant", [
    "b0", pytest.param("m", marks=pytest.mark.slow)])  # M: 7 blocks
def test_layer_groups_follow_strides(variant):
    backbone = backbones.get(f"efficientnetv2-{variant}")
    groups = backbone.layer_groups
    assert set(groups) == {"3+", "4+", "5+", "all"}
    _, nested = _build(variant, (None, None, 3))
    strides = _block_strides(nested)
    # Blocks end at the strides the regexes assume.
    assert strides["stem_conv"] == 2 and strides["top_conv"] == 32
    for mode, min_stride in (("3+", 8), ("4+", 16), ("5+", 32)):
        matched = {n for n in strides if re.fullmatch(groups[mode], n)}
        want = {n for n, s in strides.items() if s >= min_stride}
        assert matched == want, mode
        assert re.fullmatch(groups[mode], nested.name)
    assert not any(n.startswith("block3")
                   for n in strides if re.fullmatch(groups["5+"], n))
    weighted = [l.name for l in nested.layers if l.trainable_weights]
    assert len(weighted) > 100
    assert all(re.fullmatch(groups["all"], n) for n in weighted)
    assert all(re.fullmatch(groups["all"], l.name) for l in nested.layers)
    assert re.fullmatch(groups["all"], nested.name)


def test_layer_groups_seven_blocks():
    # Pure regex check for M/L (block7 runs at stride 32, like block6).
    groups = backbones.get("efficientnetv2-l").layer_groups
    names = {"stem_conv": 2, "block1a_project_conv": 2,
             "block2g_add": 4, "block3a_expand_conv": 8,
             "block4j_se_reduce": 16, "block5s_add": 16,
             "block6y_dwconv2": 32, "block7a_project_bn": 32,
             "block7g_add": 32, "top_activation": 32}
    for mode, min_stride in (("3+", 8), ("4+", 16), ("5+", 32)):
        for name, stride in names.items():
            assert (re.fullmatch(groups[mode], name) is not None) == (
                stride >= min_stride), (mode, name)
        assert re.fullmatch(groups[mode], "efficientnetv2-l")
        assert not re.fullmatch(groups[mode], "efficientnetv2-m")
    assert all(re.fullmatch(groups["all"], n) for n in names)
    assert not re.fullmatch(groups["all"], "fpn_c5p5")


def test_set_trainable_on_nested_backbone(b0):
    model, nested = b0
    pattern = (backbones.get("efficientnetv2-b0").layer_groups["4+"]
               + r"|(fpn\_.*)")
    per_layer = {l.name: sum(int(np.prod(w.shape))
                             for w in l.trainable_weights)
                 for l in nested.layers}
    try:
        set_trainable(model, pattern, train_bn=True)
        assert nested.trainable
        got = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        want = sum(n for name, n in per_layer.items()
                   if re.match(r"block[4-6]|top_", name))
        assert got == want > 0
        set_trainable(model, r"fpn\_.*", train_bn=True)  # "heads"
        assert not nested.trainable and not model.trainable_weights
    finally:
        set_trainable(model, ".*", train_bn=True)


def test_weights_from_file(tmp_path, b0):
    _, nested = b0
    rng = np.random.default_rng(0)
    values = [rng.normal(size=w.shape).astype("float32")
              for w in nested.weights]
    nested.set_weights(values)
    path = tmp_path / "b0.weights.h5"
    nested.save_weights(path)
    _, loaded = _build("b0", (None, None, 3), weights=str(path))
    for a, b in zip(values, loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_loads_keras_applications_legacy_h5(tmp_path):
    # ImageNet files are legacy .h5 saved from the keras.applications model
    # (no rescale layer, single output): they load into the sub-model.
    app = keras.applications.EfficientNetV2B0(
        include_top=False, weights=None, input_shape=(None, None, 3),
        include_preprocessing=False)
    rng = np.random.default_rng(1)
    values = [rng.normal(size=w.shape).astype("float32") for w in app.weights]
    app.set_weights(values)
    path = tmp_path / "efficientnetv2-b0_notop.h5"
    app.save(path)
    _, nested = _build("b0", (None, None, 3))
    nested.load_weights(str(path))
    for a, b in zip(values, nested.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_options():
    inputs = keras.Input((64, 64, 3))
    backbone = backbones.get("efficientnetv2-b0")
    with pytest.raises(ValueError, match="weights"):
        backbone.build(inputs, weights=3)
    with pytest.raises(ValueError, match="does not exist"):
        backbone.build(inputs, weights="/nonexistent/file.h5")
    with pytest.raises(ValueError, match="variant"):
        backbones.efficientnetv2.efficientnetv2(inputs, variant="x9")
