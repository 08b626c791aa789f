"""28N x 28N mask heads (28, 56, 112): layers, shapes, a training step, detect masks.

The 56 head (seed 000's MASK_SHAPE) runs in the fast suite; 28 (also covered
by test_model.py) and 112 train in the slow suite (about 10 s each on 2 cores).
"""

import math

import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from model_helpers import make_config, shapes
from mrcnn.heads.mask import build_mask_head, mask_upsampling_stages
from mrcnn.layers.walk import leaf_layers
from mrcnn.training.trainer import LOSS_NAMES

SIZES = [pytest.param(28, marks=pytest.mark.slow), 56, pytest.param(112, marks=pytest.mark.slow)]


@pytest.mark.parametrize("size, stages", [(28, 0), (56, 1), (112, 2)])
def test_mask_head_layers_shapes_and_parameters(size, stages):
    rois, channels, classes = 3, 16, 4
    pooled = keras.Input((rois, 14, 14, channels), batch_size=2)
    head = keras.Model(pooled, build_mask_head(pooled, rois, classes, size))
    names = {layer.name for layer in head.layers}
    convs = {f"mrcnn_mask_conv{k}" for k in range(1, 5 + stages)}
    deconvs = {"mrcnn_mask_deconv"} | {f"mrcnn_mask_deconv{j}" for j in range(2, 2 + stages)}
    assert convs | deconvs | {"mrcnn_mask"} <= names
    assert f"mrcnn_mask_conv{5 + stages}" not in names
    assert f"mrcnn_mask_deconv{2 + stages}" not in names

    # 3x3 convs (+BN: 4 values per channel), 2x2 stride-2 deconvs, 1x1 to classes.
    conv_bn = lambda cin: 9 * cin * 256 + 256 + 4 * 256  # noqa: E731
    deconv = 4 * 256 * 256 + 256
    expected = (conv_bn(channels) + 3 * conv_bn(256) + deconv
                + stages * (conv_bn(256) + deconv) + 256 * classes + classes)
    assert head.count_params() == expected

    x = np.random.default_rng(0).normal(size=(2, rois, 14, 14, channels)).astype("float32")
    y = keras.ops.convert_to_numpy(head(x))
    assert y.shape == (2, rois, size, size, classes) and np.all(np.isfinite(y))
    # each ROI is processed on its own: changing ROI 0 leaves ROI 1 unchanged
    x2 = x.copy()
    x2[:, 0] += 1.0
    y2 = keras.ops.convert_to_numpy(head(x2))
    np.testing.assert_allclose(y2[:, 1:], y[:, 1:], rtol=1e-5, atol=1e-5)
    assert np.abs(y2[:, 0] - y[:, 0]).max() > 0


@pytest.mark.parametrize("size", [0, 14, 42, 84, 224 + 28])
def test_mask_sizes_other_than_28_times_a_power_of_two_are_rejected(size):
    with pytest.raises(ValueError, match=f"got {size}"):
        mask_upsampling_stages(size)


@pytest.mark.parametrize("size", SIZES)
def test_mask_head_trains_and_detects_at_image_resolution(size, tmp_path):
    config = make_config(MASK_SHAPE=[size, size], MINI_MASK_SHAPE=(size, size),
                         IMAGES_PER_GPU=1, STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    outputs = model.keras_model.output
    positives = max(1, int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO))
    # the batch's positive ROIs where sizes may vary (TF, torch: [1, M]); padded to a static
    # count on JAX (tests/test_graph.py checks the count)
    positives = positives if keras.backend.backend() == "jax" else None
    assert tuple(outputs["mrcnn_mask_logits"].shape) == (1, positives, size, size,
                                                         config.NUM_CLASSES)
    assert tuple(outputs["target_mask"].shape) == (1, positives, size, size)
    last_deconv = model.keras_model.get_layer(
        "mrcnn_mask_deconv" if size == 28 else f"mrcnn_mask_deconv{size // 28 // 2 + 1}")
    before = [w.copy() for w in last_deconv.get_weights()]

    history = model.train(shapes(2, seed=3), None, config.LEARNING_RATE, epochs=1,
                          layers="heads", verbose=0)
    for name in ("loss",) + LOSS_NAMES:
        assert math.isfinite(history.history[name][0]), (name, history.history)
    assert history.history["mrcnn_mask_loss"][0] > 0
    assert any(np.abs(a - b).max() > 0 for a, b in zip(last_deconv.get_weights(), before))

    infer = modellib.MaskRCNN("inference", config, str(tmp_path))
    assert tuple(infer.keras_model.outputs[3].shape) == (
        1, config.DETECTION_MAX_INSTANCES, size, size, config.NUM_CLASSES)
    report = infer.load_weights(model.find_last())
    assert not report["missing"] and not report["shape_mismatch"]
    image = np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    # After one step the class head may still call every ROI background; bias it
    # towards class 1 so that detections (and their masks) exist.
    logits = infer.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    bias[:] = 0.0
    bias[1] = 20.0
    logits.set_weights([kernel * 0.0, bias])
    deltas = infer.keras_model.get_layer("mrcnn_bbox_fc")  # zero deltas: no degenerate boxes
    deltas.set_weights([np.zeros_like(w) for w in deltas.get_weights()])
    r = infer.detect([image])[0]
    n = r["rois"].shape[0]
    assert n > 0 and r["masks"].shape == (50, 70, n) and r["masks"].dtype == bool
    # every mask lies inside its box (masks are pasted into the boxes)
    ys, xs = np.mgrid[:50, :70]
    for i, (y1, x1, y2, x2) in enumerate(r["rois"]):
        inside = (ys >= y1) & (ys < y2) & (xs >= x1) & (xs < x2)
        assert not np.any(r["masks"][:, :, i] & ~inside)


@pytest.mark.parametrize("pool, size, stages", [(7, 28, 1), (7, 56, 2), (28, 56, 0)])
def test_mask_pool_size_changes_the_upsampling(pool, size, stages, tmp_path):
    config = make_config(MASK_POOL_SIZE=pool, MASK_SHAPE=[size, size],
                         MINI_MASK_SHAPE=(max(size, 28),) * 2, IMAGES_PER_GPU=1)
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    km = model.keras_model
    assert tuple(km.get_layer("roi_align_mask").output.shape[2:4]) == (pool, pool)
    names = {layer.name for layer in leaf_layers(km)}   # on JAX inside mrcnn_mask_buckets
    assert {f"mrcnn_mask_deconv{j}" for j in range(2, 2 + stages)} <= names
    assert f"mrcnn_mask_deconv{2 + stages}" not in names
    assert tuple(km.outputs[3].shape) == (1, config.DETECTION_MAX_INSTANCES, size, size, 4)
    assert mask_upsampling_stages(size, pool) == stages
