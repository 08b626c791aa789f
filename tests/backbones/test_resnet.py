"""Tests for backbones.resnet (Matterport-named ResNet-50/101)."""

import json
import pathlib
import re

import keras
import numpy as np
import pytest

import backbones
from mrcnn.training.trainable import set_trainable
from backbones.resnet import keras_resnet_to_matterport

LAYOUT = pathlib.Path("/work/shared/data/matterport_coco_weights_layout.json")


def _build(name, shape, first_stride=2):
    inputs = keras.Input(shape)
    outputs = backbones.get(name).build(inputs, first_stride=first_stride)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def resnet101():
    return _build("resnet101", (None, None, 3))


@pytest.fixture(scope="module")
def resnet50():
    return _build("resnet50", (None, None, 3))


@pytest.mark.parametrize("name", ["resnet50", "resnet101"])
@pytest.mark.parametrize("height,width", [(128, 128), (128, 192)])
def test_static_shapes_and_declared_channels(name, height, width):
    backbone = backbones.get(name)
    model = _build(name, (height, width, 3))
    assert backbone.strides() == (4, 8, 16, 32)
    assert backbone.channels == (256, 512, 1024, 2048)
    for out, stride, ch in zip(model.outputs, (4, 8, 16, 32),
                               (256, 512, 1024, 2048)):
        assert tuple(out.shape) == (None, height // stride, width // stride,
                                    ch)


def test_concrete_forward_shapes(resnet50):
    # Run real data through the dynamic-shape model: 128x192 -> /4../32.
    outs = resnet50.predict(np.zeros((1, 128, 192, 3), "float32"), verbose=0)
    assert [o.shape for o in outs] == [(1, 32, 48, 256), (1, 16, 24, 512),
                                       (1, 8, 12, 1024), (1, 4, 6, 2048)]


@pytest.mark.parametrize("name", ["resnet50", "resnet101"])
def test_first_stride_one_halves_strides(name):
    backbone = backbones.get(name)
    assert backbone.strides(first_stride=1) == (2, 4, 8, 16)
    model = _build(name, (128, 192, 3), first_stride=1)
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, 64, 96, 256), (None, 32, 48, 512), (None, 16, 24, 1024),
        (None, 8, 12, 2048)]
    assert model.get_layer("conv1").strides == (1, 1)


def test_stage4_block_counts(resnet50, resnet101):
    def blocks(model):
        return sorted({m.group(1) for l in model.layers
                       if (m := re.fullmatch(r"res4([a-z])_branch2a",
                                             l.name))})
    assert blocks(resnet50) == list("abcdef")
    assert blocks(resnet101) == [chr(c) for c in range(ord("a"),
                                                       ord("w") + 1)]
    for model, blocks_4 in ((resnet50, 6), (resnet101, 23)):
        counts = {s: sum(1 for l in model.layers
                         if re.fullmatch(rf"res{s}[a-z]_branch2a", l.name))
                  for s in (2, 3, 4, 5)}
        assert counts == {2: 3, 3: 4, 4: blocks_4, 5: 3}


def test_matches_matterport_weight_layout(resnet101):
    layout = json.loads(LAYOUT.read_text())
    expected = [l for l in layout["layers"]
                if re.fullmatch(r"conv1|bn_conv1|res.*|bn.*", l["name"])]
    assert len(expected) == 208
    for entry in expected:
        layer = resnet101.get_layer(entry["name"])
        got = [(w.path.split("/")[-1], tuple(w.shape)) for w in layer.weights]
        want = [(w["name"].split("/")[-1].split(":")[0], tuple(w["shape"]))
                for w in entry["weights"]]
        assert got == want, entry["name"]
    # Same weighted layers, in the same (topological) order, so even a
    # load without by_name lines up.
    weighted = [l.name for l in resnet101.layers if l.weights]
    assert weighted == [l["name"] for l in expected]
    # Parameter count equals the sum over the json's backbone weights.
    n_json = sum(int(np.prod(w["shape"])) for l in expected
                 for w in l["weights"])
    assert resnet101.count_params() == n_json == 42658176


def test_layer_groups(resnet50):
    groups = backbones.get("resnet50").layer_groups
    assert set(groups) == {"3+", "4+", "5+", "all"}
    names = [l.name for l in resnet50.layers]

    def stage(name):  # independent classification by name
        if name.startswith(("conv1", "bn_conv1", "pool1")):
            return 1
        m = re.match(r"(?:res|bn)([2-5])", name)
        return int(m.group(1)) if m else None

    def matched(mode):
        return {n for n in names if re.fullmatch(groups[mode], n)}

    for mode, first in (("3+", 3), ("4+", 4), ("5+", 5)):
        want = {n for n in names if stage(n) is not None and stage(n) >= first}
        assert matched(mode) == want, mode
    assert not any(stage(n) == 3 for n in matched("5+"))
    trainable = {l.name for l in resnet50.layers if l.trainable_weights}
    assert len(trainable) == 1 + 1 + 2 * (3 + 4 + 6 + 3) * 3 + 2 * 4
    assert trainable <= matched("all")
    assert not matched("all") & {"fpn_c5p5", "rpn_conv_shared",
                                 "mrcnn_mask"}


def test_set_trainable_4plus(resnet50):
    pattern = backbones.get("resnet50").layer_groups["4+"] + r"|(fpn\_.*)"
    # Trainable parameters of each layer while everything is trainable.
    per_layer = {l.name: sum(int(np.prod(w.shape))
                             for w in l.trainable_weights)
                 for l in resnet50.layers}
    try:
        set_trainable(resnet50, pattern, train_bn=True)
        got = sum(int(np.prod(w.shape)) for w in resnet50.trainable_weights)
        want = sum(n for name, n in per_layer.items()
                   if name.startswith(("res4", "bn4", "res5", "bn5")))
        assert got == want > 0
        assert not any(w.path.startswith(("res3", "bn3", "conv1"))
                       for w in resnet50.trainable_weights)
    finally:
        set_trainable(resnet50, ".*", train_bn=True)


def test_keras_applications_names_to_matterport():
    assert keras_resnet_to_matterport("conv1_conv") == "conv1"
    assert keras_resnet_to_matterport("conv1_bn") == "bn_conv1"
    assert keras_resnet_to_matterport("conv2_block1_0_conv") == "res2a_branch1"
    assert keras_resnet_to_matterport("conv4_block23_3_bn") == "bn4w_branch2c"
    assert keras_resnet_to_matterport("pool1_pad") is None


# torchvision's published parameter counts (docs: resnet18 11,689,512; resnet34
# 21,797,672) include the 512 -> 1000 classifier; the convs have no bias and the
# batch norms' running statistics are buffers there.
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672}
BASIC_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_basic_resnets_match_torchvision_parameter_count(name):
    model = _build(name, (128, 192, 3))
    # Output channels of every conv (= of every batch norm): the stem, two 3x3 convs
    # per block and one projection in stages 3-5.
    conv_out = 64 + sum(2 * n * c + (c if stage > 2 else 0) for stage, n, c in
                        zip((2, 3, 4, 5), BASIC_BLOCKS[name], (64, 128, 256, 512)))
    without_fc = TORCHVISION_PARAMS[name] - (512 * 1000 + 1000)
    # + a bias per conv channel (Matterport's convs) + moving mean and variance.
    assert model.count_params() == without_fc + conv_out + 2 * conv_out
    for out, stride, ch in zip(model.outputs, (4, 8, 16, 32), (64, 128, 256, 512)):
        assert tuple(out.shape) == (None, 128 // stride, 192 // stride, ch)
    assert backbones.get(name).channels == (64, 128, 256, 512)
    blocks = {l.name[:5] for l in model.layers if re.fullmatch(r"res\d[a-z]_branch2a", l.name)}
    assert len(blocks) == sum(BASIC_BLOCKS[name])
    assert backbones.get(name).pretrained == {}


def test_resnet18_first_stride_one_and_layer_groups():
    backbone = backbones.get("resnet18")
    model = _build("resnet18", (128, 192, 3), first_stride=1)
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, 64, 96, 64), (None, 32, 48, 128), (None, 16, 24, 256), (None, 8, 12, 512)]
    names = {l.name for l in model.layers if l.weights}
    five = {n for n in names if re.fullmatch(backbone.layer_groups["5+"], n)}
    assert five == {n for n in names if n.startswith(("res5", "bn5"))}
    assert len(five) == 2 * 2 * 2 + 2          # two blocks of conv + bn twice, projection
    assert {n for n in names if re.fullmatch(backbone.layer_groups["all"], n)} == names


def test_basic_resnet_forward_is_finite_and_residual():
    # A concrete run: features finite, non-negative (ReLU outputs), and the identity
    # path carries the input through (zeroed convs -> output = relu(input)).
    model = _build("resnet18", (None, None, 3))
    x = np.random.default_rng(0).normal(size=(1, 64, 96, 3)).astype("float32")
    outs = model.predict(x, verbose=0)
    assert [o.shape for o in outs] == [(1, 16, 24, 64), (1, 8, 12, 128), (1, 4, 6, 256),
                                       (1, 2, 3, 512)]
    assert all(np.isfinite(o).all() and (o >= 0).all() for o in outs)
    block = model.get_layer("res2b_branch2b")
    block.kernel.assign(np.zeros(block.kernel.shape, "float32"))
    block.bias.assign(np.zeros(block.bias.shape, "float32"))
    bn = model.get_layer("bn2b_branch2b")
    bn.beta.assign(np.zeros(bn.beta.shape, "float32"))
    bn.moving_mean.assign(np.zeros(bn.moving_mean.shape, "float32"))
    probe = keras.Model(model.inputs, [model.get_layer("res2a_out").output,
                                       model.get_layer("res2b_out").output])
    a, b = probe.predict(x, verbose=0)
    np.testing.assert_allclose(b, np.maximum(a, 0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,last", [("resnet18", "2b"), ("resnet50", "2c")])
def test_zero_init_residual_starts_every_block_as_its_shortcut(name, last):
    inputs = keras.Input((None, None, 3))
    outputs = backbones.get(name).build(inputs, zero_init_residual=True)
    model = keras.Model(inputs, outputs)
    plain = _build(name, (None, None, 3))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            want = 0.0 if layer.name.endswith("_branch" + last) else 1.0
            assert np.all(np.asarray(layer.gamma) == want), layer.name
    assert all(np.all(np.asarray(l.gamma) == 1.0) for l in plain.layers
               if isinstance(l, keras.layers.BatchNormalization))
    # At initialisation (inference-mode norms) a block without a projection is the
    # identity on its (non-negative) input; a projection block is relu(shortcut).
    x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype("float32")
    blocks = sorted({l.name[:5] for l in model.layers if l.name.endswith("_add")})
    probe = keras.Model(inputs, [model.get_layer(b + "_out").output for b in blocks])
    outs = dict(zip(blocks, probe.predict(x, verbose=0)))
    identity = [b for b in blocks if b[-1] != "a"]
    assert len(identity) == len(blocks) - 4
    for b in identity:
        before = b[:4] + chr(ord(b[4]) - 1)
        np.testing.assert_array_equal(outs[b], outs[before])


def test_zero_init_residual_goes_from_config_to_the_model():
    import sys
    sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))
    from model_helpers import make_config
    from mrcnn import graph
    config = make_config(BACKBONE="resnet18", BACKBONE_ZERO_INIT_RESIDUAL=True)
    spec = graph.spec_from_config(config)
    assert spec.zero_init_residual is True
    model = graph.build("inference", spec)
    gammas = {l.name: np.asarray(l.gamma) for l in model.layers
              if isinstance(l, keras.layers.BatchNormalization) and "branch2b" in l.name}
    assert len(gammas) == 8 and all(np.all(g == 0) for g in gammas.values())
    with pytest.raises(ValueError, match="'small-cnn' does not"):
        make_config(BACKBONE="small-cnn", BACKBONE_ZERO_INIT_RESIDUAL=True)
    with pytest.raises(TypeError, match="BACKBONE_ZERO_INIT_RESIDUAL must be True or False"):
        make_config(BACKBONE="resnet18", BACKBONE_ZERO_INIT_RESIDUAL="yes")
