"""Matterport's notebook-level API, as its inspect_data / inspect_model notebooks call it.

``modellib.load_image_gt``, ``modellib.log``, ``modellib.mold_image``,
``modellib.data_generator``, ``model.get_imagenet_weights()``,
``model.run_graph``, ``model.ancestor``, ``model.find_trainable_layer``,
``model.get_trainable_layers``, ``model.get_anchors`` and
``model.keras_model.save_weights("*.h5")``, each checked against what
Matterport documents.
"""

import os

import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from mrcnn import graph
from model_helpers import make_config, shapes
from mrcnn import utils
from mrcnn.data.masks import expand_mask


@pytest.fixture(scope="module")
def data():
    return shapes(4, seed=11)


@pytest.fixture(scope="module")
def inference(tmp_path_factory):
    model = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=1),
                              str(tmp_path_factory.mktemp("logs")))
    return model


def test_load_image_gt_full_masks_as_matterport(data):
    config = make_config()
    image, meta, class_ids, bbox, mask = modellib.load_image_gt(data, config, 0,
                                                                use_mini_mask=False)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert meta.shape == (config.IMAGE_META_SIZE,)
    assert mask.shape == (64, 64, class_ids.shape[0]) and mask.dtype == bool
    # Matterport: boxes are the masks' tight boxes, y2/x2 exclusive
    np.testing.assert_array_equal(bbox, utils.extract_bboxes(mask))
    parsed = utils.parse_image_meta(meta)
    assert parsed["image_id"] == 0 and tuple(parsed["window"]) == (0, 0, 64, 64)
    # the same image and masks the dataset holds (64x64: no resize)
    np.testing.assert_array_equal(image, data.load_image(0))
    gt_masks, gt_ids = data.load_mask(0)
    order = [int(np.argmax([np.array_equal(mask[..., k], gt_masks[..., j])
                            for j in range(gt_masks.shape[-1])])) for k in range(mask.shape[-1])]
    for k, j in enumerate(order):
        np.testing.assert_array_equal(mask[..., k], gt_masks[..., j])
        assert class_ids[k] == gt_ids[j]


def test_load_image_gt_mini_masks_and_matterport_augment_flag(data):
    config = make_config()
    image, _, class_ids, bbox, mini = modellib.load_image_gt(data, config, 1,
                                                             use_mini_mask=True)
    assert mini.shape == (28, 28, class_ids.shape[0])
    _, _, _, _, full = modellib.load_image_gt(data, config, 1)
    restored = expand_mask(bbox, mini, image.shape)
    inter = (restored & full).sum(axis=(0, 1))
    union = (restored | full).sum(axis=(0, 1))
    assert (inter / union).min() > 0.8                    # 28x28 resampling of the shapes
    # augment=True flips left-right half of the time (Matterport's old flag)
    flipped = [modellib.load_image_gt(data, config, 1, augment=True, rng=seed)[0]
               for seed in range(12)]
    n_flipped = sum(np.array_equal(f, image[:, ::-1]) and not np.array_equal(f, image)
                    for f in flipped)
    assert 2 <= n_flipped <= 10


def test_log_prints_shape_min_max_dtype(capsys):
    line = modellib.log("image", np.array([[1.5, -2.0], [3.0, 0.0]], np.float32))
    assert line == ("image".ljust(25) + "shape: " + "(2, 2)".ljust(20) + "  min:   -2.00000"
                    "  max:    3.00000  float32")
    assert capsys.readouterr().out == line + "\n"
    assert modellib.log("empty", np.zeros((0, 3))).endswith("min:             max:             float64")
    assert modellib.log("just text") == "just text"


def test_mold_image_subtracts_the_mean_pixel():
    config = make_config()
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    molded = modellib.mold_image(image, config)
    assert molded.dtype == np.float32
    np.testing.assert_allclose(molded, image - np.array([123.7, 116.8, 103.9]), rtol=1e-6)
    np.testing.assert_array_equal(modellib.unmold_image(molded, config), image)


def test_data_generator_yields_matterports_layout(data):
    config = make_config()
    gen = modellib.data_generator(data, config, shuffle=False, batch_size=3)
    inputs, outputs = next(gen)
    images, metas, rpn_match, rpn_bbox, gt_ids, gt_boxes, gt_masks = inputs
    n_anchors = len(modellib.MaskRCNN("inference", make_config(), "unused").get_anchors())
    assert outputs == []
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.float32
    assert metas.shape == (3, config.IMAGE_META_SIZE)
    assert rpn_match.shape == (3, n_anchors, 1) and rpn_match.dtype == np.int32
    assert set(np.unique(rpn_match)) <= {-1, 0, 1}
    assert rpn_bbox.shape == (3, config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4)
    assert gt_ids.shape == (3, config.MAX_GT_INSTANCES)
    assert gt_boxes.shape == (3, config.MAX_GT_INSTANCES, 4) and gt_boxes.dtype == np.int32
    assert gt_masks.shape == (3, 28, 28, config.MAX_GT_INSTANCES)
    for j in range(3):
        # pixel boxes, as load_image_gt gives them (shuffle=False: images 0, 1, 2)
        _, _, ids, bbox, _ = modellib.load_image_gt(data, config, j, use_mini_mask=True)
        n = ids.shape[0]
        np.testing.assert_array_equal(gt_boxes[j, :n], bbox)
        assert not gt_boxes[j, n:].any() and not gt_ids[j, n:].any()
        np.testing.assert_allclose(images[j], modellib.mold_image(data.load_image(j), config))
    # endless: the fourth image, then the first again
    second, _ = next(gen)
    assert second[0].shape == (3, 64, 64, 3)
    with pytest.raises(ValueError, match="random_rois=2000.*not supported"):
        next(modellib.data_generator(data, config, random_rois=2000, detection_targets=True))


def test_get_anchors_are_the_normalized_model_anchors(inference):
    anchors = inference.get_anchors()
    layer = inference.keras_model.get_layer("anchors")
    np.testing.assert_allclose(anchors, layer.anchors, atol=1e-6)
    assert anchors.shape == (layer.num_anchors, 4)
    with pytest.raises(ValueError, match="for its input"):
        inference.get_anchors((128, 128, 3))


def test_run_graph_and_ancestor(inference, data):
    km = inference.keras_model
    image = data.load_image(2)
    out = inference.run_graph([image], [
        ("proposals", km.get_layer("ROI").output),
        ("detections", km.get_layer("mrcnn_detection").output),
        ("masks", km.get_layer("mrcnn_mask_probs").output),
    ])
    assert list(out) == ["proposals", "detections", "masks"]
    molded, metas, _ = inference.mold_inputs([image])
    full = km.predict_on_batch([molded, metas])
    np.testing.assert_allclose(out["detections"], keras.ops.convert_to_numpy(full[0]), atol=1e-5)
    np.testing.assert_allclose(out["proposals"], keras.ops.convert_to_numpy(full[4]), atol=1e-5)
    assert out["masks"].shape == tuple(full[3].shape)
    # ancestor: Matterport's name of the proposals' NMS tensor finds the proposals
    detections = km.get_layer("mrcnn_detection").output
    assert inference.ancestor(detections, "ROI") is km.get_layer("ROI").output
    assert inference.ancestor(detections, "ROI/rpn_non_max_suppression:0") is \
        km.get_layer("ROI").output
    assert inference.ancestor(detections, "no_such_layer") is None
    with pytest.raises(ValueError, match="mode='inference'"):
        modellib.MaskRCNN("training", make_config(), "unused").run_graph([image], [])


def test_trainable_layers_and_find_trainable_layer(tmp_path):
    model = modellib.MaskRCNN("training", make_config(), str(tmp_path))
    model.set_trainable("heads")
    names = [layer.name for layer in model.get_trainable_layers()]
    assert names and all(n.startswith(("mrcnn_", "rpn_", "fpn_")) for n in names)
    assert "rpn_conv_shared" in names                       # inside the nested RPN model
    dense = keras.layers.Dense(2)
    assert model.find_trainable_layer(dense) is dense
    assert model.find_trainable_layer(keras.layers.TimeDistributed(dense)) is dense


def test_keras_model_save_weights_with_a_matterport_h5_name(inference, tmp_path):
    km = inference.keras_model
    path = str(tmp_path / "mask_rcnn_tiny.h5")
    km.save_weights(path)
    other = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=1), str(tmp_path))
    report = other.keras_model.load_weights(path, by_name=True)
    assert not report["missing"] and not report["shape_mismatch"]
    for a, b in zip(km.weights, other.keras_model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))
    # also through MaskRCNN.load_weights (by name), and Keras' own format still works
    assert other.load_weights(path)["loaded"]
    km.save_weights(str(tmp_path / "model.weights.h5"))
    other.keras_model.load_weights(str(tmp_path / "model.weights.h5"))
    with pytest.raises(FileExistsError):
        km.save_weights(path, overwrite=False)
    with pytest.raises(ValueError, match=r"'\.h5' \(by layer name.*'\.weights\.h5'"):
        km.save_weights(str(tmp_path / "model.keras"))
    assert not os.path.exists(tmp_path / "model.keras")


def test_get_imagenet_weights(tmp_path, monkeypatch):
    model = modellib.MaskRCNN("inference", make_config(), str(tmp_path))
    with pytest.raises(ValueError, match="small-cnn"):
        model.get_imagenet_weights()


def test_plot_lr_schedule_as_seed_000_calls_it(inference):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = inference.plot_lr_schedule(3)
    assert fig is not None
    plt.close(fig)


def test_settings_assigned_after_construction_are_checked_and_derived_again(tmp_path):
    """Notebook habit: `config.X = ...` after `config = MyConfig()`. Two sizes per level
    double the anchors per location; the model is built for them (it was built for the
    stale count and failed in a Reshape deep in the graph), and a bad value is named."""
    config = make_config()
    config.RPN_ANCHOR_SCALES = ((8, 12), (16, 23), (32, 45), (64, 91), (128, 181))
    model = modellib.MaskRCNN("inference", config, str(tmp_path))
    assert config.RPN_ANCHORS_PER_LOCATION == 2 * len(config.RPN_ANCHOR_RATIOS)
    assert len(model.get_anchors(config.IMAGE_SHAPE)) == \
        int(model.keras_model.get_layer("rpn_class").output.shape[1])
    result = model.detect([np.zeros((64, 64, 3), np.uint8)])[0]
    assert result["masks"].shape[:2] == (64, 64)
    config.IMAGES_PER_GPU = 3                     # BATCH_SIZE follows it too
    assert graph.spec_from_config(config).batch_size == 3 * config.GPU_COUNT == config.BATCH_SIZE
    config.RPN_ANCHOR_SCALES = ((8, 12), 16, 32, 64, 128)
    with pytest.raises(ValueError, match="RPN_ANCHOR_SCALES entries must all have the same "
                                         "number of sizes"):
        modellib.MaskRCNN("inference", config, str(tmp_path))
