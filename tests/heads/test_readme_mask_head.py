"""The custom mask-head example in README.md registers a head that trains and detects."""

import math

import numpy as np

import mrcnn.model as modellib
from helpers import readme_block
from model_helpers import make_config, shapes
from mrcnn.heads import available_mask_heads, unregister_mask_head


def test_readme_mask_head_registers_trains_and_detects(tmp_path):
    exec(compile(readme_block("readme-mask-head"), "README.md", "exec"), {})
    try:
        assert "two-conv" in available_mask_heads()
        config = make_config(MASK_HEAD="two-conv", MASK_SHAPE=[56, 56], MINI_MASK_SHAPE=(56, 56),
                             STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)
        model = modellib.MaskRCNN("training", config, str(tmp_path))
        trained = model.set_trainable("heads")
        assert {"mrcnn_mask_two_conv1", "mrcnn_mask_two_up", "mrcnn_mask"} <= set(trained)
        history = model.train(shapes(2), None, 0.01, epochs=1, layers="heads", verbose=0)
        assert math.isfinite(history.history["mrcnn_mask_loss"][0])
        infer = modellib.MaskRCNN("inference", make_config(
            MASK_HEAD="two-conv", MASK_SHAPE=[56, 56], MINI_MASK_SHAPE=(56, 56)), str(tmp_path))
        assert tuple(infer.keras_model.outputs[3].shape[2:4]) == (56, 56)
        infer.load_weights(model.find_last())
        r = infer.detect([np.zeros((64, 64, 3), np.uint8)])[0]
        assert r["masks"].shape[:2] == (64, 64)
    finally:
        unregister_mask_head("two-conv")
    assert "two-conv" not in available_mask_heads()
