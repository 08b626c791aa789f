"""RPN_CONV_CHANNELS = "auto": 256 channels, rebuilt at a weight file's width when it loads one."""

import numpy as np
import pytest

import mrcnn.model as modellib
from model_helpers import make_config, shapes
from mrcnn.config import load_config
from mrcnn.heads.rpn import AUTO_CONV_CHANNELS, file_conv_channels
from mrcnn.weights import WeightsMismatchError
from tests.weights.weight_helpers import assert_same, randomize


def rpn_width(model):
    return int(model.keras_model.get_layer("rpn_conv_shared").weights[0].shape[-1])


def saved_wide_model(tmp_path, width=512, mode="inference", seed=3):
    """A model of an explicit RPN width saved by name: (model, path); weights random
    normal with `seed` (to tell layers apart), or as initialised with None."""
    model = modellib.MaskRCNN(mode, make_config(RPN_CONV_CHANNELS=width, IMAGES_PER_GPU=1),
                              str(tmp_path / "wide"))
    if seed is not None:
        randomize(model.keras_model.weights, seed)
    path = str(tmp_path / f"rpn{width}.h5")
    model.save_weights(path)
    return model, path


def test_file_conv_channels_reads_the_width_off_a_report():
    want, got = [(3, 3, 32, 256), (256,)], [(3, 3, 32, 512), (512,)]
    assert file_conv_channels([("mrcnn_mask", [(1, 1, 32, 4)], [(1, 1, 32, 81)]),
                               ("rpn_conv_shared", want, got)]) == 512
    assert file_conv_channels([]) is None
    # another pyramid depth in the file is not a width to adopt
    assert file_conv_channels([("rpn_conv_shared", want, [(3, 3, 64, 512), (512,)])]) is None
    assert file_conv_channels([("rpn_class_raw", [(1, 1, 256, 6)], [(1, 1, 512, 6)])]) is None


def test_auto_builds_the_narrow_rpn_and_a_wide_checkpoint_rebuilds_it(tmp_path):
    wide, path = saved_wide_model(tmp_path)
    config = make_config(IMAGES_PER_GPU=1)
    model = modellib.MaskRCNN("inference", config, str(tmp_path / "logs"))
    assert config.RPN_CONV_CHANNELS == "auto" and rpn_width(model) == AUTO_CONV_CHANNELS == 256
    report = model.load_weights(path)              # strict: every layer must fit
    assert report["rpn_rebuilt"] == 512 and not report["missing"]
    assert not report["shape_mismatch"]
    assert rpn_width(model) == 512 and config.RPN_CONV_CHANNELS == 512
    assert model.spec.rpn_conv_channels == 512
    assert_same(model.keras_model.get_weights(), wide.keras_model.get_weights())
    # the rebuilt model detects as the one that wrote the file
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    a, b = model.detect([image])[0], wide.detect([image])[0]
    np.testing.assert_array_equal(a["rois"], b["rois"])
    np.testing.assert_array_equal(a["masks"], b["masks"])


def test_a_partial_load_keeps_the_layers_it_does_not_touch(tmp_path, caplog):
    _, path = saved_wide_model(tmp_path)
    model = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=1), str(tmp_path / "l"))
    randomize(model.keras_model.get_layer("mrcnn_class_logits").weights, 11)
    before = model.keras_model.get_layer("mrcnn_class_logits").get_weights()
    report = model.load_weights(path, by_name=True, exclude="heads")
    assert report["rpn_rebuilt"] == 512 and "mrcnn_class_logits" in report["excluded"]
    assert_same(model.keras_model.get_layer("mrcnn_class_logits").get_weights(), before)
    # the RPN loaded in the end: no "skipped rpn_conv_shared" warning from the first try
    assert not [r for r in caplog.records if "skipped" in r.getMessage()]


def test_an_explicit_width_is_never_changed(tmp_path, caplog):
    _, path = saved_wide_model(tmp_path)
    model = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=1, RPN_CONV_CHANNELS=256),
                              str(tmp_path / "logs"))
    with pytest.raises(WeightsMismatchError, match=r"rpn_conv_shared \(model \[\(3, 3, 32, 256\)"):
        model.load_weights(path)
    with caplog.at_level("WARNING", logger="mrcnn.weights.loading"):
        report = model.load_weights(path, by_name=True)
    assert "skipped rpn_conv_shared" in caplog.text
    assert "rpn_rebuilt" not in report and rpn_width(model) == 256
    assert "rpn_conv_shared" in [name for name, _, _ in report["shape_mismatch"]]
    assert "fpn_p2" in report["loaded"]


def test_a_training_model_rebuilt_at_512_trains_and_its_run_records_the_width(tmp_path):
    _, path = saved_wide_model(tmp_path, mode="training", seed=None)
    config = make_config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=1)
    model = modellib.MaskRCNN("training", config, str(tmp_path / "logs"))
    model.init_from(path)
    assert rpn_width(model) == 512
    model.train(shapes(4, seed=1), shapes(2, seed=2), config.LEARNING_RATE, epochs=1,
                layers="all", verbose=0)
    saved = load_config(model.log_dir + "/config.json", IMAGES_PER_GPU=1)
    assert saved.RPN_CONV_CHANNELS == 512
    # an inference model from that config takes the run's checkpoint strictly
    infer = modellib.MaskRCNN("inference", saved, str(tmp_path / "logs"))
    report = infer.load_weights(model.find_last())
    assert "rpn_rebuilt" not in report and rpn_width(infer) == 512


def test_a_load_that_fails_after_the_rebuild_leaves_the_model_as_it_was(tmp_path):
    _, path = saved_wide_model(tmp_path)       # NUM_CLASSES 4 in the file
    config = make_config(IMAGES_PER_GPU=1, NUM_CLASSES=3)
    model = modellib.MaskRCNN("inference", config, str(tmp_path / "logs"))
    keras_model = model.keras_model
    with pytest.raises(WeightsMismatchError, match="mrcnn_class_logits"):
        model.load_weights(path)               # strict: the class heads do not fit
    assert model.keras_model is keras_model and rpn_width(model) == 256
    assert config.RPN_CONV_CHANNELS == "auto" and model.spec.rpn_conv_channels == 256
    # Matterport's recipe for another NUM_CLASSES: the heads excluded, the RPN loads
    report = model.load_weights(path, by_name=True, exclude=["mrcnn_class_logits",
                                                             "mrcnn_bbox_fc", "mrcnn_mask"])
    assert report["rpn_rebuilt"] == 512 and not report["shape_mismatch"]
