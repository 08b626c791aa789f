"""Config.FOREGROUND_LOSS end to end: the sixth loss trains, logs, and stays out of inference."""

import math

import numpy as np
import pytest

import mrcnn.model as modellib
from model_helpers import make_config, shapes
from mrcnn.config import Config
from mrcnn.training.trainer import FOREGROUND_LOSS, LOSS_NAMES


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("logs")
    weights = dict(Config.LOSS_WEIGHTS, mrcnn_foreground_loss=0.5)
    config = make_config(FOREGROUND_LOSS=True, FOREGROUND_STRIDE=2, LOSS_WEIGHTS=weights)
    model = modellib.MaskRCNN("training", config, str(model_dir))
    history = model.train(shapes(8, seed=1), shapes(4, seed=2), config.LEARNING_RATE,
                          epochs=2, layers="all", verbose=0)
    return model, history, config


def test_the_sixth_loss_is_logged_and_weighted(trained):
    model, history, config = trained
    h = history.history
    names = LOSS_NAMES + (FOREGROUND_LOSS,)
    assert model.keras_model.loss_names == names
    for prefix in ("", "val_"):
        for e in range(2):
            parts = sum(config.LOSS_WEIGHTS[n] * h[prefix + n][e] for n in names)
            assert math.isfinite(h[prefix + FOREGROUND_LOSS][e])
            assert h[prefix + "loss"][e] == pytest.approx(parts, rel=1e-4, abs=1e-5)
    # the head's output is the target's grid: the 64x64 input read every 2 pixels
    out = model.keras_model.get_layer("foreground_target").output
    assert tuple(out.shape[1:]) == (32, 32, 1)


def test_an_inference_model_loads_the_checkpoint_without_the_head(trained, tmp_path):
    model, _, config = trained
    inference = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=1), str(tmp_path))
    assert not [layer for layer in inference.keras_model.layers
                if "foreground" in layer.name]
    report = inference.load_weights(model.find_last())
    assert not report["missing"]
    image = shapes(1, seed=5).load_image(0)
    result = inference.detect([image])[0]
    assert result["masks"].shape[:2] == image.shape[:2]


def test_the_five_losses_without_it():
    model = modellib.MaskRCNN("training", make_config(), "/tmp/unused")
    assert model.keras_model.loss_names == LOSS_NAMES
    assert not [layer for layer in model.keras_model.layers if "foreground" in layer.name]


@pytest.mark.parametrize("attrs, message", [
    ({"FOREGROUND_LOSS": True, "FOREGROUND_STRIDE": 3},
     r"FOREGROUND_STRIDE must divide P2's stride 4 .*got 3"),
    ({"FOREGROUND_LOSS": "yes"}, r"FOREGROUND_LOSS must be True or False, got 'yes'"),
    ({"FOREGROUND_STRIDE": 0}, r"FOREGROUND_STRIDE must be >= 1, got 0"),
    ({"LOSS_WEIGHTS": {"mrcnn_foreground": 1.0}}, r"LOSS_WEIGHTS has unknown keys "
                                                   r"\['mrcnn_foreground'\]"),
])
def test_bad_settings_are_named(attrs, message):
    with pytest.raises(ValueError, match=message):
        make_config(**attrs)


def test_the_default_stride_fits_every_backbone_stride():
    np.testing.assert_array_equal(make_config(FOREGROUND_LOSS=True).BACKBONE_STRIDES,
                                  [4, 8, 16, 32, 64])
    make_config(FOREGROUND_LOSS=True, FOREGROUND_STRIDE=4)      # P2's own stride
