"""The custom-backbone example in README.md registers a backbone that trains and detects."""

import numpy as np
import pytest

import backbones
import mrcnn.model as modellib
from helpers import readme_block
from model_helpers import make_config, shapes


def test_readme_backbone_registers_trains_and_detects(tmp_path):
    code = readme_block("readme-backbone")
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    name = "tiny-net"
    try:
        check_registered_backbone(name, tmp_path)
    finally:
        backbones.unregister(name)  # leave the registry as other tests expect it
    assert name not in backbones.available()
    with pytest.raises(ValueError, match="available"):
        backbones.unregister(name)


def check_registered_backbone(name, tmp_path):
    spec = backbones.get(name)
    assert spec.channels == (16, 32, 64, 128)

    config = make_config(BACKBONE=name, STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    trained = model.set_trainable("4+")
    assert "tiny_s4" in trained and "tiny_s3" not in trained
    model.train(shapes(2), None, 0.01, epochs=1, layers="all", verbose=0)
    infer = modellib.MaskRCNN("inference", make_config(BACKBONE=name), str(tmp_path))
    infer.load_weights(model.find_last())
    r = infer.detect([np.zeros((64, 64, 3), np.uint8)])[0]
    assert r["masks"].shape[:2] == (64, 64)
