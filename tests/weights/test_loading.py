"""load_weights by spec: "coco", "imagenet", "last" or a path, on a keras.Model and its backbone."""

import os
import time
import urllib.error

import numpy as np
import pytest

from mrcnn.weights import WEIGHTS_DIR_ENV, backbone_weight_layers, files, h5, load_weights
from tests.weights.weight_helpers import (assert_same, randomize, tiny_model,
                                          write_keras2_h5)


def load(model, spec, **kwargs):
    """`load_weights` with a model's parts, as the model class calls it."""
    return load_weights(model.keras_model, spec, backbone=model.backbone,
                        find_last=model.find_last, **kwargs)


def test_missing_coco_weights_error_is_immediate_and_says_what_to_do(offline, tmp_path,
                                                                     monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(files, "_fetch", no_network)
    model = tiny_model(tmp_path)
    for allow in (False, True):
        start = time.perf_counter()
        with pytest.raises(FileNotFoundError) as info:
            load(model, "coco", exclude="heads", allow_download=allow)
        assert time.perf_counter() - start < 10
        msg = str(info.value)
        for part in ("mask_rcnn_coco.h5", str(offline["weights_dir"]),
                     str(offline["keras_home"] / "models"), str(offline["cwd"]),
                     WEIGHTS_DIR_ENV, "allow_download=True",
                     "python weights/download.py coco",
                     "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/"):
            assert part in msg, (part, msg)
        assert ("Connection refused" in msg) == allow
    assert os.listdir(offline["weights_dir"]) == []


def test_coco_by_name_into_another_num_classes(offline, tmp_path):
    coco_model = tiny_model(tmp_path, NUM_CLASSES=81)
    randomize(coco_model.keras_model.weights, seed=1)
    h5.save_weights(coco_model.keras_model, str(offline["weights_dir"] / "mask_rcnn_coco.h5"))
    model = tiny_model(tmp_path, NUM_CLASSES=4)
    before = model.keras_model.get_layer("mrcnn_class_logits").get_weights()
    report = load(model, "COCO", exclude="heads", verify=False)   # a tiny model's file
    assert report["path"] == str(offline["weights_dir"] / "mask_rcnn_coco.h5")
    # the class-specific layers that hold weights ("mrcnn_bbox" is a reshape)
    assert sorted(report["excluded"]) == ["mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"]
    assert not report["missing"] and not report["shape_mismatch"]
    for name in ("fpn_c4p4", "mrcnn_class_conv1", "mrcnn_mask_conv3", "scnn_s2_conv1"):
        assert_same(model.keras_model.get_layer(name).get_weights(),
                    coco_model.keras_model.get_layer(name).get_weights())
    assert_same(model.keras_model.get_layer("rpn_model").get_weights(),
                coco_model.keras_model.get_layer("rpn_model").get_weights())
    assert_same(model.keras_model.get_layer("mrcnn_class_logits").get_weights(), before)

    # "heads" means the class-specific layers the caller names
    report = load(model, "coco", exclude="heads", class_specific_layers=("mrcnn_mask",),
                  verify=False)
    assert report["excluded"] == ["mrcnn_mask"]
    assert {n for n, _, _ in report["shape_mismatch"]} == {"mrcnn_class_logits",
                                                          "mrcnn_bbox_fc"}


def test_coco_file_without_matching_layers_is_rejected(offline, tmp_path):
    write_keras2_h5(offline["weights_dir"] / "mask_rcnn_coco.h5",
                    [("something_else", [("something_else/kernel:0", np.ones((2, 2)))])])
    with pytest.raises(ValueError, match="no layer of the model"):
        load(tiny_model(tmp_path), "coco", verify=False)


def test_last_loads_the_newest_checkpoint(tmp_path):
    model = tiny_model(tmp_path)
    logs = tmp_path / "logs"
    randomize(model.keras_model.weights, seed=2)
    old = h5.save_weights(model.keras_model,
                          str(logs / "tiny20240101T0000" / "mask_rcnn_tiny_0009.h5"))
    randomize(model.keras_model.weights, seed=3)
    expected = model.keras_model.get_weights()
    new = h5.save_weights(model.keras_model,
                          str(logs / "tiny20250101T0000" / "mask_rcnn_tiny_0002.h5"))
    randomize(model.keras_model.weights, seed=4)
    report = load(model, "last")
    assert report["path"] == new != old
    assert not report["missing"] and not report["shape_mismatch"]
    assert_same(model.keras_model.get_weights(), expected)
    with pytest.raises(ValueError, match="find_last"):
        load_weights(model.keras_model, "last", backbone=model.backbone)


def test_keras3_weights_file_path_loads_by_structure(tmp_path):
    a, b = tiny_model(tmp_path), tiny_model(tmp_path)
    randomize(a.keras_model.weights, seed=5)
    path = str(tmp_path / "model.weights.h5")
    a.keras_model.save_weights(path)
    report = load(b, path)
    assert report["path"] == path
    assert_same(b.keras_model.get_weights(), a.keras_model.get_weights())


def test_spec_must_be_a_name_or_path(tmp_path):
    model = tiny_model(tmp_path)
    with pytest.raises(TypeError, match="'coco', 'imagenet', 'last' or a file path, got 3"):
        load(model, 3)


def test_model_load_weights_accepts_names(offline, tmp_path):
    """MaskRCNN.load_weights delegates "coco"/"imagenet"/"last"/paths to mrcnn.weights."""
    coco_model = tiny_model(tmp_path, NUM_CLASSES=81)
    h5.save_weights(coco_model.keras_model, str(offline["weights_dir"] / "mask_rcnn_coco.h5"))
    model = tiny_model(tmp_path, mode="training")
    report = model.load_weights("coco", exclude="heads", verify=False)   # a tiny model's file
    assert sorted(report["excluded"]) == ["mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"]
    assert model.epoch == 0
    with pytest.raises(FileNotFoundError, match="mask_rcnn_coco.h5"):
        os.remove(offline["weights_dir"] / "mask_rcnn_coco.h5")
        model.load_weights("coco", exclude="heads", verify=False)


def test_backbone_weight_layers_of_a_model(tmp_path):
    """The backbone's weight layers of a whole model (tests/test_backbones_in_model.py uses it)."""
    model = tiny_model(tmp_path, BACKBONE="efficientnetv2-b0")
    assert len(backbone_weight_layers(model.keras_model)) == 150


def test_last_skips_a_damaged_newest_checkpoint(tmp_path):
    model = tiny_model(tmp_path, mode="training")
    run = tmp_path / "logs" / "tiny20250101T000000"
    randomize(model.keras_model.weights, seed=6)
    good = model.keras_model.get_weights()
    h5.save_weights(model.keras_model, str(run / "mask_rcnn_tiny_0001.h5"))
    randomize(model.keras_model.weights, seed=7)
    damaged = h5.save_weights(model.keras_model, str(run / "mask_rcnn_tiny_0002.h5"))
    with open(damaged, "r+b") as f:                  # killed while copying: truncated
        f.truncate(os.path.getsize(damaged) // 3)
    randomize(model.keras_model.weights, seed=8)
    with pytest.warns(RuntimeWarning, match=r"mask_rcnn_tiny_0002\.h5.*truncated"):
        report = model.load_weights("last")
    assert report["path"] == str(run / "mask_rcnn_tiny_0001.h5")
    assert [p for p, _ in report["skipped"]] == [damaged]
    assert_same(model.keras_model.get_weights(), good)
    assert model.epoch == 1                          # training resumes after the good one

    # every checkpoint damaged: an error naming each, not a silent fallback to nothing
    with open(str(run / "mask_rcnn_tiny_0001.h5"), "r+b") as f:
        f.truncate(100)
    with pytest.warns(RuntimeWarning):
        with pytest.raises(h5.WeightsFileError) as err:
            model.load_weights("last")
    assert "mask_rcnn_tiny_0001.h5" in str(err.value) and damaged in str(err.value)
