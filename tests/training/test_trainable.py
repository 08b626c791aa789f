"""Which layers train (mrcnn/training/trainable.py)."""

import keras
import pytest

import backbones
from mrcnn.heads.names import HEADS_REGEX
from mrcnn.training.trainable import layer_regex, set_trainable, trainable_layers


def nested_model():
    inner_in = keras.Input((4,))
    x = keras.layers.Dense(3, name="rpn_inner")(inner_in)
    x = keras.layers.BatchNormalization(name="rpn_bn")(x)
    inner = keras.Model(inner_in, keras.layers.Dense(2, name="other_inner")(x), name="rpn_model")
    inputs = keras.Input((4,))
    y = keras.layers.Dense(4, name="res2a_branch2a")(inputs)
    y = keras.layers.BatchNormalization(name="bn2a_branch2a")(y)
    y = keras.layers.Dense(4, name="res4a_branch2a")(y)
    y = inner(y)
    return keras.Model(inputs, keras.layers.Dense(1, name="mrcnn_class_logits")(y))


def flags(model):
    out = {}
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            out[layer.name] = layer.trainable
            out.update(flags(layer))
        elif layer.weights:
            out[layer.name] = layer.trainable
    return out


def test_set_trainable_walks_nested_models_and_freezes_batch_norm():
    model = nested_model()
    trained = set_trainable(model, r"(res4.*)|(rpn_.*)|(mrcnn_.*)", train_bn=False)
    assert trained == ["res4a_branch2a", "rpn_inner", "mrcnn_class_logits"]
    assert flags(model) == {"res2a_branch2a": False, "bn2a_branch2a": False,
                            "res4a_branch2a": True, "rpn_model": True, "rpn_inner": True,
                            "rpn_bn": False, "other_inner": False, "mrcnn_class_logits": True}
    assert [l.name for l in trainable_layers(model)] == trained
    trained = set_trainable(model, r"(bn.*)|(rpn_bn)", train_bn=True)
    assert trained == ["bn2a_branch2a", "rpn_bn"]
    assert set_trainable(model, r"mrcnn_.*") == ["mrcnn_class_logits"]
    assert flags(model)["rpn_model"] is False          # nothing inside trains: frozen whole
    assert set_trainable(model, None) == []


def test_layer_regex_modes_and_user_regexes():
    resnet = backbones.get("resnet50")
    assert layer_regex("heads", resnet) == HEADS_REGEX
    assert layer_regex("4+", resnet) == f"({resnet.layer_regex('4+')})|{HEADS_REGEX}"
    assert layer_regex(r"res5.*", resnet) == r"res5.*"
    with pytest.raises(ValueError, match=r"layers must be one of .* or a regex; '\(res' is neither"):
        layer_regex("(res", resnet)
    with pytest.raises(ValueError, match="layers must be one of"):
        layer_regex(3, resnet)


class _FakeLayer:
    def __init__(self, name, layers=None):
        self.name = name
        self.trainable = None
        if layers is not None:
            self.layers = layers


def test_set_trainable_walks_nested_models():
    inner = [_FakeLayer("stem_conv"), _FakeLayer("block4a_conv"),
             _FakeLayer("top_bn")]
    nested = _FakeLayer("effnet", inner)
    model = _FakeLayer("outer", [_FakeLayer("input"), nested,
                                 _FakeLayer("fpn_c5p5"),
                                 _FakeLayer("rpn_model_x")])
    trained = set_trainable(model, r"(block4.*)|(top_.*)|(fpn\_.*)")
    assert trained == ["block4a_conv", "top_bn", "fpn_c5p5"]
    assert [l.trainable for l in inner] == [False, True, True]
    assert nested.trainable is True
    assert [l.trainable for l in model.layers if l is not nested] == [
        False, True, False]
    # Nothing inside matches: the nested model itself is frozen.
    assert set_trainable(model, r"fpn\_.*") == ["fpn_c5p5"]
    assert nested.trainable is False
    assert set_trainable(model, None) == []
