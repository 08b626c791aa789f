"""The graphs built from plain values (mrcnn/graph.py)."""

import dataclasses

import numpy as np
import pytest

from model_helpers import make_config
from mrcnn import graph


def test_spec_holds_the_config_values():
    config = make_config(BACKBONE_FIRST_STRIDE=1, MASK_SHAPE=[56, 56], MINI_MASK_SHAPE=(56, 56))
    spec = graph.spec_from_config(config)
    assert spec.image_shape == (64, 64, 3) and spec.batch_size == 2 and spec.num_classes == 4
    assert spec.strides == (2, 4, 8, 16, 32) and spec.first_stride == 1
    assert spec.backbone.name == "small-cnn"
    assert spec.mask_size == 56 and spec.mask_pool_size == 14 and spec.mask_head == "standard"
    assert spec.gt_mask_shape == (56, 56) and spec.use_mini_mask
    assert spec.positive_rois == int(16 * 0.33)
    assert spec.rpn_bbox_std_dev == (0.1, 0.1, 0.2, 0.2)
    assert spec.meta_size == config.IMAGE_META_SIZE == 12 + 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.batch_size = 3
    no_mini = graph.spec_from_config(make_config(USE_MINI_MASK=False))
    assert no_mini.gt_mask_shape == (64, 64)


def test_building_leaves_the_config_as_it_was():
    config = make_config(BACKBONE_FIRST_STRIDE=1)
    before = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
              for k, v in config.to_dict().items()}
    graph.build_inference_graph(graph.spec_from_config(config))
    after = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
             for k, v in config.to_dict().items()}
    assert after == before


def test_training_and_inference_graphs():
    spec = graph.spec_from_config(make_config())
    train = graph.build("training", spec)
    assert sorted(train.input) == sorted([
        "input_image", "input_image_meta", "input_rpn_match", "input_rpn_bbox",
        "input_gt_class_ids", "input_gt_boxes", "input_gt_masks"])
    n_anchors = train.get_layer("anchors").num_anchors
    assert tuple(train.input["input_rpn_match"].shape) == (2, n_anchors)
    assert tuple(train.output["mrcnn_mask_logits"].shape) == (2, spec.positive_rois, 28, 28, 4)
    infer = graph.build("inference", spec)
    assert len(infer.outputs) == len(graph.INFERENCE_OUTPUTS)
    assert tuple(infer.outputs[0].shape) == (2, spec.detection_max_instances, 6)
    assert tuple(infer.outputs[3].shape) == (2, spec.detection_max_instances, 28, 28, 4)
    counts = graph.parameter_counts(infer)
    assert counts["total"] == infer.count_params()
    with pytest.raises(ValueError, match="mode must be 'training' or 'inference', got 'test'"):
        graph.build("test", spec)
