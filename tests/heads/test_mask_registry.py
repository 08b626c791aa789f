"""The mask-head registry: register a head, train a step with it, detect with it."""

import math

import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from model_helpers import make_config, shapes
from mrcnn.heads import (available_mask_heads, get_mask_head, register_mask_head,
                         unregister_mask_head)
from mrcnn.heads.mask import build_mask_head
from mrcnn.heads.roi_reshape import MergeRoiBatch, SplitRoiBatch


def light_head(pooled, *, num_rois, num_classes, mask_size, channels):
    """One 3x3 conv and one transposed conv to 2x: a user's mask head."""
    x = MergeRoiBatch(name="mrcnn_mask_merge")(pooled)
    x = keras.layers.Conv2D(channels // 2, 3, padding="same", activation="relu",
                            name="mrcnn_mask_light_conv")(x)
    factor = mask_size // pooled.shape[2]
    x = keras.layers.Conv2DTranspose(channels // 2, factor, strides=factor, activation="relu",
                                     name="mrcnn_mask_light_up")(x)
    x = keras.layers.Conv2D(num_classes, 1, name="mrcnn_mask", dtype="float32")(x)
    return SplitRoiBatch(num_rois, name="mrcnn_mask_logits", dtype="float32")(x)


@pytest.fixture
def light():
    register_mask_head("light")(light_head)
    yield "light"
    unregister_mask_head("light")


def test_standard_head_is_registered():
    assert "standard" in available_mask_heads()
    assert get_mask_head("standard") is build_mask_head
    assert get_mask_head("STANDARD") is build_mask_head


def test_registry_rejects_duplicates_unknown_names_and_bad_builders(light):
    with pytest.raises(ValueError, match="'light' is already registered"):
        register_mask_head("light")(light_head)
    with pytest.raises(ValueError, match=r"unknown mask head 'heavy'; available: \["):
        get_mask_head("heavy")
    with pytest.raises(TypeError, match=r"lacks \['num_classes', 'mask_size', 'channels'\]"):
        register_mask_head("bad")(lambda pooled, num_rois: pooled)
    with pytest.raises(TypeError, match="registered name or a callable"):
        get_mask_head(3)
    with pytest.raises(ValueError, match="unknown mask head 'nope'"):
        unregister_mask_head("nope")


def test_a_registered_head_trains_a_step_and_detects(light, tmp_path):
    config = make_config(MASK_HEAD="light", MASK_SHAPE=[28, 28], MINI_MASK_SHAPE=(28, 28),
                         IMAGES_PER_GPU=1, STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    names = {layer.name for layer in model.keras_model.layers}
    assert {"mrcnn_mask_light_conv", "mrcnn_mask_light_up", "mrcnn_mask"} <= names
    assert "mrcnn_mask_conv1" not in names                  # not the standard head
    before = model.keras_model.get_layer("mrcnn_mask_light_conv").get_weights()[0].copy()
    history = model.train(shapes(2, seed=3), None, 0.01, epochs=1, layers="heads", verbose=0)
    assert math.isfinite(history.history["mrcnn_mask_loss"][0])
    after = model.keras_model.get_layer("mrcnn_mask_light_conv").get_weights()[0]
    assert np.abs(after - before).max() > 0                 # "heads" trained the new head

    infer = modellib.MaskRCNN("inference", make_config(MASK_HEAD="light", IMAGES_PER_GPU=1),
                              str(tmp_path))
    report = infer.load_weights(model.find_last())
    assert "mrcnn_mask_light_conv" in report["loaded"] and not report["missing"]
    result = infer.detect([shapes(1, seed=3).load_image(0)])[0]
    assert result["masks"].shape[:2] == (64, 64)


def test_a_callable_mask_head_in_the_config(tmp_path):
    config = make_config(MASK_HEAD=light_head, IMAGES_PER_GPU=1)
    assert config.MASK_HEAD is light_head                   # not bound to the config
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    assert model.keras_model.get_layer("mrcnn_mask_light_up").output.shape[1:3] == (28, 28)
