"""Backbone files: ImageNet files of every layout into the backbone part, declared files."""

import hashlib
import importlib.util
import os

import keras
import numpy as np
import pytest

import backbones
from backbones.resnet import keras_resnet_to_matterport
from mrcnn.weights import backbone as backbone_weights
from mrcnn.weights import catalog, files, h5, load_weights, pretrained_path
from tests.weights.weight_helpers import (assert_same, keras2_layers_of, randomize,
                                          tiny_model, write_keras2_h5)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_imagenet(model, **kwargs):
    return load_weights(model.keras_model, "imagenet", backbone=model.backbone, **kwargs)


def test_imagenet_for_a_backbone_without_one(tmp_path):
    with pytest.raises(ValueError, match="no ImageNet weights are known for backbone 'small-cnn'"):
        load_imagenet(tiny_model(tmp_path))


def test_missing_imagenet_file_names_the_keras_file(offline, tmp_path):
    model = tiny_model(tmp_path, BACKBONE="resnet50")
    with pytest.raises(FileNotFoundError,
                       match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        load_imagenet(model)
    with pytest.raises(FileNotFoundError,
                       match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        pretrained_path(model.backbone)


@pytest.fixture(scope="module")
def resnet50_model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("r50"), BACKBONE="resnet50")


def test_imagenet_resnet50_file_with_matterport_names(offline, resnet50_model):
    model = resnet50_model
    rng = np.random.default_rng(6)
    names = backbone_weights.backbone_weight_layers(model.keras_model)
    assert len(names) == catalog.get_entry("imagenet-resnet50")["weighted_layers"]
    layers = [("input_1", [])]
    expected = {}
    for name in names:
        layer = model.keras_model.get_layer(name)
        arrays = [rng.normal(size=tuple(v.shape)).astype("float32") for v in layer.weights]
        expected[name] = arrays
        layers.append((name, [(f"{name}/{v.name}:0", a) for v, a in zip(layer.weights, arrays)]))
    path = offline["weights_dir"] / catalog.get_entry("imagenet-resnet50")["file"]
    write_keras2_h5(path, layers)
    # a generated file, not the published one: the manifest check is skipped
    assert pretrained_path(model.backbone, verify=False) == str(path)
    head_before = model.keras_model.get_layer("fpn_c5p5").get_weights()
    report = load_imagenet(model, verify=False)
    assert report["method"] == "by name" and report["backbone_not_loaded"] == []
    for name in ("conv1", "bn_conv1", "res4f_branch2c", "bn5a_branch1"):
        assert_same(model.keras_model.get_layer(name).get_weights(), expected[name])
    assert_same(model.keras_model.get_layer("fpn_c5p5").get_weights(), head_before)


def test_imagenet_resnet50_file_with_keras_applications_names(offline, resnet50_model):
    reference = keras.applications.ResNet50(include_top=False, weights=None,
                                            input_shape=(64, 64, 3))
    randomize(reference.weights, seed=7)
    (offline["keras_home"] / "models").mkdir()
    write_keras2_h5(offline["keras_home"] / "models" /
                    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                    keras2_layers_of(reference))
    report = load_imagenet(resnet50_model, verify=False)
    assert report["method"] == "by name (renamed)"
    assert report["backbone_not_loaded"] == [] and not report["shape_mismatch"]
    pairs = {"conv1": "conv1_conv", "bn_conv1": "conv1_bn",
             "res2a_branch1": "conv2_block1_0_conv", "bn2a_branch1": "conv2_block1_0_bn",
             "res3b_branch2b": "conv3_block2_2_conv", "bn4f_branch2c": "conv4_block6_3_bn",
             "res5c_branch2a": "conv5_block3_1_conv"}
    for ours, theirs in pairs.items():
        assert keras_resnet_to_matterport(theirs) == ours
        assert_same(resnet50_model.keras_model.get_layer(ours).get_weights(),
                    reference.get_layer(theirs).get_weights())


def test_backbone_file_of_another_network_is_rejected(tmp_path, resnet50_model):
    small = tiny_model(tmp_path)
    path = h5.save_weights(small.keras_model, str(tmp_path / "small.h5"))
    with pytest.raises(ValueError, match="holds none of the 106 weight layers of backbone "
                                         "'resnet50'"):
        backbone_weights.load_backbone_weights(resnet50_model.keras_model,
                                               resnet50_model.backbone, path)


@pytest.fixture(scope="module")
def effnet_b0(tmp_path_factory):
    """(mrcnn b0 model, keras.applications B0 with random weights)."""
    model = tiny_model(tmp_path_factory.mktemp("b0"), BACKBONE="efficientnetv2-b0")
    # As Keras downloads it: with the preprocessing layers (which hold no weights).
    reference = keras.applications.EfficientNetV2B0(include_top=False, weights=None,
                                                    input_shape=(64, 64, 3),
                                                    include_preprocessing=True)
    randomize(reference.weights, seed=8)
    return model, reference


def inner_layers_match(model, reference):
    sub = model.keras_model.get_layer("efficientnetv2-b0")
    count = 0
    for layer in sub.layers:
        if layer.weights:
            assert_same(layer.get_weights(), reference.get_layer(layer.name).get_weights())
            count += 1
    return count


def test_imagenet_efficientnet_file_loads_into_the_nested_backbone(offline, effnet_b0):
    model, reference = effnet_b0
    randomize(model.keras_model.weights, seed=9)
    write_keras2_h5(offline["weights_dir"] / "efficientnetv2-b0_notop.h5",
                    keras2_layers_of(reference))
    fpn_before = model.keras_model.get_layer("fpn_c3p3").get_weights()
    report = load_imagenet(model, verify=False)
    assert report["method"] == "by name" and report["backbone_not_loaded"] == []
    assert inner_layers_match(model, reference) == 150
    assert_same(model.keras_model.get_layer("fpn_c3p3").get_weights(), fpn_before)


def test_backbone_file_with_other_names_loads_by_layer_order(tmp_path, effnet_b0):
    model, reference = effnet_b0
    randomize(model.keras_model.weights, seed=10)
    layers = [(f"automl_{i}", [(f"automl_{i}/w{j}:0", a) for j, (_, a) in enumerate(items)])
              for i, (_, items) in enumerate(keras2_layers_of(reference))]
    path = write_keras2_h5(tmp_path / "efficientnetv2-b0-imagenet21k.h5", layers)
    report = backbone_weights.load_backbone_weights(model.keras_model, model.backbone, path)
    assert report["method"] == "by order"
    assert inner_layers_match(model, reference) == 150

    short = write_keras2_h5(tmp_path / "short.h5", layers[:-3])
    with pytest.raises(ValueError, match="does not match backbone 'efficientnetv2-b0'"):
        backbone_weights.load_backbone_weights(model.keras_model, model.backbone, short)


def test_backbone_keras3_weights_file(tmp_path, effnet_b0):
    model, _ = effnet_b0
    source = tiny_model(tmp_path, BACKBONE="efficientnetv2-b0")
    sub = source.keras_model.get_layer("efficientnetv2-b0")
    randomize(sub.weights, seed=11)
    path = str(tmp_path / "b0.weights.h5")
    sub.save_weights(path)
    report = backbone_weights.load_backbone_weights(model.keras_model, "efficientnetv2-b0",
                                                    path)
    assert report["method"] == "structure" and report["path"] == path
    assert_same(model.keras_model.get_layer("efficientnetv2-b0").get_weights(),
                sub.get_weights())


# ------------------------------------------- a new backbone declares its file
MINI_CHANNELS = (8, 16, 16, 32)


def mini_net(inputs, *, first_stride=2):
    """A 4-conv backbone whose layers are named ``mini_s{stage}``."""
    x = keras.layers.Rescaling(1 / 128.0, name="mini_rescale")(inputs)
    outputs = []
    for stage, width in zip((2, 3, 4, 5), MINI_CHANNELS):
        stride = first_stride * 2 if stage == 2 else 2
        x = keras.layers.Conv2D(width, 3, strides=stride, padding="same", activation="relu",
                                name=f"mini_s{stage}")(x)
        outputs.append(x)
    return outputs


def from_other_implementation(layer_name):
    """Layer names of the same network saved by another implementation: ``stage2_conv``."""
    if layer_name.startswith("stage") and layer_name.endswith("_conv"):
        return f"mini_s{layer_name[5]}"
    return None


@pytest.fixture
def mini_backbone(offline):
    """Registers "mini-net" declaring an ImageNet file generated in $MRCNN_WEIGHTS_DIR.

    Returns:
        (file path, {layer name: [kernel, bias]} stored in the file).
    """
    inputs = keras.Input((None, None, 3))
    standalone = keras.Model(inputs, mini_net(inputs))
    randomize(standalone.weights, seed=12)
    path = h5.save_weights(standalone, str(offline["weights_dir"] / "mini-net_notop.h5"))
    stored = {l.name: l.get_weights() for l in standalone.layers if l.weights}
    md5 = hashlib.md5(open(path, "rb").read()).hexdigest()
    backbones.register("mini-net", channels=MINI_CHANNELS,
                       layer_groups={"all": r"mini_.*", "4+": r"mini_s[45]"},
                       pretrained={"imagenet": {
                           "file": "mini-net_notop.h5", "md5": md5, "weighted_layers": 4,
                           "url": "https://example.invalid/mini-net_notop.h5",
                           "description": "mini-net on ImageNet (generated by the test)"}},
                       rename=from_other_implementation)(mini_net)
    try:
        yield path, stored
    finally:
        backbones.unregister("mini-net")


def test_a_new_backbone_declares_its_imagenet_file(mini_backbone, tmp_path):
    path, stored = mini_backbone
    assert files.verify_file(path, "imagenet-mini-net")["ok"]
    model = tiny_model(tmp_path, BACKBONE="mini-net")
    assert pretrained_path(model.backbone) == path == model.get_imagenet_weights()
    report = load_imagenet(model)
    assert report["method"] == "by name" and report["path"] == path
    assert sorted(report["loaded"])[:4] == ["mini_s2", "mini_s3", "mini_s4", "mini_s5"]
    assert report["backbone_not_loaded"] == []
    for name, arrays in stored.items():
        assert_same(model.keras_model.get_layer(name).get_weights(), arrays)

    # weights/download.py knows the new file too
    spec = importlib.util.spec_from_file_location(
        "weights_download", os.path.join(REPO, "weights", "download.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert "imagenet-mini-net" in script.expand_names(["imagenet"])
    assert script.main(["imagenet-mini-net", "--verify"]) == 0


def test_a_file_of_another_implementation_loads_through_rename(mini_backbone, tmp_path):
    _, stored = mini_backbone
    other = [("input", [])] + [
        (f"stage{name[-1]}_conv", [(f"stage{name[-1]}_conv/w{i}:0", a)
                                    for i, a in enumerate(arrays)])
        for name, arrays in stored.items()]
    path = write_keras2_h5(tmp_path / "other.h5", other)
    model = tiny_model(tmp_path, BACKBONE="mini-net")
    report = backbone_weights.load_backbone_weights(model.keras_model, model.backbone, path)
    assert report["method"] == "by name (renamed)" and report["backbone_not_loaded"] == []
    for name, arrays in stored.items():
        assert_same(model.keras_model.get_layer(name).get_weights(), arrays)


def test_a_declared_sha256_is_checked_before_loading(offline, tmp_path):
    inputs = keras.Input((None, None, 3))
    standalone = keras.Model(inputs, mini_net(inputs))
    path = h5.save_weights(standalone, str(offline["weights_dir"] / "mini-sha_notop.h5"))
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    for declared, ok in (("ef" * 32, False), (sha, True)):
        backbones.register("mini-sha", channels=MINI_CHANNELS, layer_groups={"all": r"mini_.*"},
                           pretrained={"imagenet": {"file": "mini-sha_notop.h5",
                                                    "sha256": declared}})(mini_net)
        try:
            model = tiny_model(tmp_path, BACKBONE="mini-sha")
            if ok:
                assert load_imagenet(model)["backbone_not_loaded"] == []
            else:
                with pytest.raises(ValueError) as err:
                    load_imagenet(model)
                for part in (path, f"sha256 {sha}, expected {'ef' * 32}", "verify=False"):
                    assert part in str(err.value)
                assert load_imagenet(model, verify=False)["backbone_not_loaded"] == []
        finally:
            backbones.unregister("mini-sha")
