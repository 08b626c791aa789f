"""MASK_BOX_SCALE: the mask head's boxes grown about their centres (mrcnn/layers/mask_boxes.py),
in the layer, both graphs and detect()."""

import keras
import numpy as np
import pytest

from helpers import run_layer_test
from model_helpers import confident_heads, make_config, shapes
from mrcnn import graph
from mrcnn.data.boxes import scale_boxes
from mrcnn.data.generator import DataGenerator
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.layers.mask_boxes import MaskBoxes
from mrcnn.training.trainer import compute_losses


def test_layer_hand_case_padding_and_config():
    boxes = np.array([[[0.2, 0.1, 0.4, 0.5], [0, 0, 0, 0]]], np.float32)
    out = run_layer_test(MaskBoxes(1.5), boxes, expected_output_shape=(1, 2, 4))
    # centre (0.3, 0.3), 0.2 x 0.4 -> 0.3 x 0.6
    np.testing.assert_allclose(out, [[[0.15, 0.0, 0.45, 0.6], [0, 0, 0, 0]]], atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(MaskBoxes()(boxes)), boxes)
    for bad in (0.9, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="scale must be a finite number >= 1"):
            MaskBoxes(bad)


def test_config_checks_the_setting():
    assert make_config().MASK_BOX_SCALE == 1.0
    with pytest.raises(ValueError, match="MASK_BOX_SCALE must be a finite number >= 1, got 0.8"):
        make_config(MASK_BOX_SCALE=0.8)
    with pytest.raises(TypeError, match="MASK_BOX_SCALE must be a number, got '1.2'"):
        make_config(MASK_BOX_SCALE="1.2")


def test_both_graphs_pool_the_mask_over_the_grown_boxes():
    plain = graph.spec_from_config(make_config())
    assert plain.mask_box_scale == 1.0
    names = {layer.name for layer in graph.build("training", plain).layers}
    assert "mask_boxes" not in names           # Matterport's graph unchanged
    spec = graph.spec_from_config(make_config(MASK_BOX_SCALE=1.5, IMAGES_PER_GPU=1))
    train = graph.build("training", spec)
    assert train.get_layer("proposal_targets").mask_box_scale == 1.5
    assert train.get_layer("mask_boxes").scale == 1.5
    config = make_config(MASK_BOX_SCALE=1.5, IMAGES_PER_GPU=1)
    x = DataGenerator(shapes(2), config, seed=0)[0]
    x = x[0] if isinstance(x, tuple) else x
    probe = keras.Model(train.input, [train.get_layer("mask_rois").output,
                                      train.get_layer("mask_boxes").output])
    rois, grown = (keras.ops.convert_to_numpy(v) for v in probe(x))
    assert rois[0].any(-1).sum() > 0
    np.testing.assert_allclose(grown[0], scale_boxes(rois[0], 1.5), atol=1e-5)
    losses = compute_losses(x, train(x, training=False))
    values = {k: float(keras.ops.convert_to_numpy(v)) for k, v in losses.items()}
    assert all(np.isfinite(v) for v in values.values()) and values["mrcnn_mask_loss"] > 0
    infer = graph.build("inference", spec)
    head = infer.get_layer("mrcnn_class_logits")     # every ROI a class-1 detection
    kernel, _ = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.array([0, 3, 0, 0], np.float32)])
    probe = keras.Model(infer.inputs, [infer.get_layer("detection_boxes").output,
                                       infer.get_layer("mask_boxes").output])
    image = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype("float32")
    meta = compose_image_meta(0, (64, 64, 3), (64, 64, 3), (0, 0, 64, 64), 1.0,
                              np.ones(4))[None].astype("float32")
    boxes, grown = (keras.ops.convert_to_numpy(v) for v in probe([image, meta]))
    assert (boxes[0].any(-1)).sum() > 0
    np.testing.assert_allclose(grown[0], scale_boxes(boxes[0], 1.5), atol=1e-5)


def test_detect_pastes_each_mask_into_its_grown_box(tmp_path):
    """Heads pinned so every ROI is a detection whose mask is 0.88 everywhere: each mask is
    its detection box grown 1.5x (clipped to the image), reaching past ``rois``."""
    import mrcnn.model as modellib
    config = make_config(MASK_BOX_SCALE=1.5, IMAGES_PER_GPU=1, IMAGE_RESIZE_MODE="none",
                         IMAGE_SHAPE=[64, 64, 3], DETECTION_MASK_PASTE="centers")
    model = confident_heads(modellib.MaskRCNN("inference", config, str(tmp_path)))
    image = shapes(1).load_image(0)
    r = model.detect([image])[0]
    assert len(r["rois"]) > 0
    beyond = 0
    for k, box in enumerate(r["rois"]):
        mask = r["masks"][..., k]
        ys, xs = np.nonzero(mask)
        tight = np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])
        assert mask.sum() == (tight[2] - tight[0]) * (tight[3] - tight[1])     # a full rectangle
        # the detection box grown 1.5x in the graph's frame (rois are rounded: 1 px slack)
        norm = (box.astype(np.float64) - [0, 0, 1, 1]) / 63
        grown = np.clip(scale_boxes(norm[None], 1.5)[0] * 63 + [0, 0, 1, 1], 0, 64)
        np.testing.assert_allclose(tight, grown, atol=1.0, err_msg=str(k))
        assert tight[0] <= box[0] and tight[1] <= box[1] and tight[2] >= box[2] \
            and tight[3] >= box[3]
        inside = np.zeros((64, 64), bool)
        inside[box[0]:box[2], box[1]:box[3]] = True
        beyond += int((mask & ~inside).any())
    assert beyond == len(r["rois"])
