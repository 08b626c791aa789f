"""The graphs built from plain values (mrcnn/graph.py)."""

import dataclasses

import types

import keras
import numpy as np
import pytest

from model_helpers import make_config, shapes
from mrcnn import graph
from mrcnn.data.generator import DataGenerator
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.heads.mask import build_mask_head
from mrcnn.heads.registry import register_mask_head, unregister_mask_head
from mrcnn.layers import batching, detection_targets
from mrcnn.training.trainer import compute_losses


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
    # the mask head's ROIs: the batch's positives where sizes may vary (TF, torch), the
    # padded count on JAX (test_mask_head_sees_the_batchs_positive_rois_only)
    mask_rois = (1, None) if keras.backend.backend() != "jax" else (2, spec.positive_rois)
    assert tuple(train.output["mrcnn_mask_logits"].shape) == mask_rois + (28, 28, 4)
    infer = graph.build("inference", spec)
    assert len(infer.outputs) == len(graph.INFERENCE_OUTPUTS)
    assert tuple(infer.outputs[0].shape) == (2, spec.detection_max_instances, 6)
    assert tuple(infer.outputs[3].shape) == (2, spec.detection_max_instances, 28, 28, 4)
    counts = graph.parameter_counts(infer)
    assert counts["total"] == infer.count_params()
    with pytest.raises(ValueError, match="mode must be 'training' or 'inference', got 'test'"):
        graph.build("test", spec)


def _ordered_roi_sampling(monkeypatch):
    """DetectionTargetLayer draws a fixed order instead of noise: every call samples alike."""
    def uniform(shape, seed=None):
        order = 1.0 - keras.ops.arange(shape[1], dtype="float32") / shape[1]
        return keras.ops.broadcast_to(order[None, :], shape)

    names = {n: getattr(keras, n) for n in dir(keras) if not n.startswith("__")}
    names["random"] = types.SimpleNamespace(SeedGenerator=keras.random.SeedGenerator,
                                            uniform=uniform)
    monkeypatch.setattr(detection_targets, "keras", types.SimpleNamespace(**names))


def _losses(model, x):
    out = model(x, training=False)
    return out, {k: float(keras.ops.convert_to_numpy(v))
                 for k, v in compute_losses(x, out).items()}


def test_mask_head_sees_the_batchs_positive_rois_only(monkeypatch):
    """The standard head runs on the positives of the batch where sizes may vary; the
    losses are those of the padded, static head (the padding has weight 0)."""
    _ordered_roi_sampling(monkeypatch)
    config = make_config(TRAIN_ROIS_PER_IMAGE=48, TRAIN_BN=False)
    spec = graph.spec_from_config(config)
    p = spec.positive_rois
    model = graph.build("training", spec)
    x = DataGenerator(shapes(4), config, seed=0)[0]
    x = x[0] if isinstance(x, tuple) else x
    out, varying = _losses(model, x)
    ids = keras.ops.convert_to_numpy(out["target_class_ids"])[:, :p]
    positive = ids > 0
    assert 1 <= positive.sum() < positive.size    # the case that matters: padding rows
    monkeypatch.setattr(batching, "dynamic_shapes_available", lambda: False)
    if keras.backend.backend() == "jax":    # the bucketed head, then forced to every row
        buckets = model.get_layer("mrcnn_mask_buckets")
        assert buckets.buckets == [8, p] and positive.sum(axis=1).max() <= 8
        monkeypatch.setattr(buckets, "buckets", [p])
    padded_out, padded = _losses(model, x)
    padded_logits = keras.ops.convert_to_numpy(padded_out["mrcnn_mask_logits"])
    logits = keras.ops.convert_to_numpy(out["mrcnn_mask_logits"])
    if keras.backend.backend() == "jax":   # static shapes: the padded count, zero past the bucket
        assert logits.shape[:2] == padded_logits.shape[:2] == (2, p)
        np.testing.assert_array_equal(logits[:, 8:], 0.0)
        np.testing.assert_allclose(logits[positive], padded_logits[positive],
                                   rtol=1e-5, atol=1e-5)
    else:
        assert padded_logits.shape[:2] == (1, 2 * p)         # every row, padding included
        assert logits.shape[:2] == (1, positive.sum())       # the positives, in order
        np.testing.assert_allclose(logits[0], padded_logits[0][positive.reshape(-1)],
                                   rtol=1e-5, atol=1e-5)
    assert varying["mrcnn_mask_loss"] > 0
    for name, value in padded.items():
        np.testing.assert_allclose(varying[name], value, rtol=1e-5, atol=1e-7, err_msg=name)


def test_a_head_without_varying_rois_gets_the_static_count():
    @register_mask_head("static-standard")
    def static_head(pooled, *, num_rois, num_classes, mask_size, channels):
        assert num_rois is not None
        return build_mask_head(pooled, num_rois, num_classes, mask_size, channels)

    try:
        spec = graph.spec_from_config(make_config(MASK_HEAD="static-standard"))
        train = graph.build("training", spec)
        assert train.output["mrcnn_mask_logits"].shape[1] == spec.positive_rois
    finally:
        unregister_mask_head("static-standard")


def test_inference_masks_come_from_the_detections_only(monkeypatch):
    """The mask head runs on the detections (not the padding up to the maximum): the masks
    of the detections are those of the padded head, the padding rows are 0.5 (logit 0)."""
    keras.utils.set_random_seed(3)
    config = make_config(IMAGES_PER_GPU=1, DETECTION_MAX_INSTANCES=32)
    model = graph.build("inference", graph.spec_from_config(config))
    image = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype("float32")
    meta = compose_image_meta(0, (64, 64, 3), (64, 64, 3), (0, 0, 64, 64), 1.0,
                              np.ones(config.NUM_CLASSES))[None].astype("float32")
    # the untrained model's scores can all lie below the configured confidence: take them all,
    # then put the threshold between two of them (some detections, some padding)
    detection = model.get_layer("mrcnn_detection")
    detection.min_confidence = 0.0
    scores = keras.ops.convert_to_numpy(model([image, meta])[0])[0, :, 5]
    distinct = np.unique(scores[scores > 0])
    assert len(distinct) >= 2, scores
    keep = min(4, len(distinct) - 1)       # a few detections: the smallest bucket on JAX
    detection.min_confidence = float(distinct[-keep - 1] + distinct[-keep]) / 2
    detections, _, _, masks = (keras.ops.convert_to_numpy(v)
                               for v in model([image, meta])[:4])
    valid = detections[0, :, 4] > 0
    assert 0 < valid.sum() < len(valid), valid       # the case that matters: padding rows
    monkeypatch.setattr(batching, "dynamic_shapes_available", lambda: False)
    if keras.backend.backend() == "jax":    # buckets of 8, 16, 32 rows: forced to all 32
        buckets = model.get_layer("mrcnn_mask_buckets")
        assert buckets.buckets == [8, 16, 32] and valid.sum() <= 8
        monkeypatch.setattr(buckets, "buckets", [32])
        np.testing.assert_array_equal(masks[0, 8:], 0.5)
    padded = keras.ops.convert_to_numpy(model([image, meta])[3])
    np.testing.assert_allclose(masks[0, valid], padded[0, valid], rtol=1e-5, atol=1e-6)
    if keras.backend.backend() != "jax":
        assert model.get_layer("mask_detected_features") is not None
        np.testing.assert_array_equal(masks[0, ~valid], 0.5)
