"""End-to-end tests of MaskRCNN: build, train with fit, checkpoints, resume, detect."""

import math
import os

import numpy as np
import pytest

import mrcnn.model as modellib
from model_helpers import make_config, shapes
from mrcnn.training.trainer import LOSS_NAMES


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("logs")
    config = make_config()
    model = modellib.MaskRCNN("training", config, str(model_dir))
    history = model.train(shapes(8, seed=1), shapes(4, seed=2), config.LEARNING_RATE,
                          epochs=2, layers="all", verbose=0)
    return model, history, model_dir, config


def test_history_losses_are_weighted_sums(trained):
    model, history, _, config = trained
    h = history.history
    assert history.epoch == [0, 1]
    for prefix in ("", "val_"):
        for name in LOSS_NAMES:
            assert prefix + name in h, sorted(h)
        for e in range(2):
            parts = sum(config.LOSS_WEIGHTS[n] * h[prefix + n][e] for n in LOSS_NAMES)
            assert math.isfinite(h[prefix + "loss"][e])
            assert h[prefix + "loss"][e] == pytest.approx(parts, rel=1e-4, abs=1e-5)


def test_checkpoints_and_logs(trained):
    model, _, model_dir, _ = trained
    last = model.find_last()
    assert last.endswith("mask_rcnn_tiny_0002.h5")
    files = os.listdir(os.path.dirname(last))
    assert "mask_rcnn_tiny_0001.h5" in files and "history.csv" in files
    assert not [f for f in files if f.startswith(".tmp-")]
    header = open(os.path.join(os.path.dirname(last), "history.csv")).readline()
    assert "mrcnn_mask_loss" in header and "val_rpn_class_loss" in header


def test_resume_continues_epoch_count(trained):
    _, _, model_dir, config = trained
    model = modellib.MaskRCNN("training", config, str(model_dir))
    last = model.find_last()
    report = model.load_weights(last)
    assert model.epoch == 2 and not report["missing"]
    history = model.train(shapes(8, seed=1), None, config.LEARNING_RATE, epochs=3,
                          layers="heads", verbose=0)
    assert history.epoch == [2]
    assert model.find_last().endswith("mask_rcnn_tiny_0003.h5")


def test_detect_on_other_sizes(trained):
    model, _, model_dir, _ = trained
    config = make_config(IMAGES_PER_GPU=2)
    infer = modellib.MaskRCNN("inference", config, str(model_dir))
    report = infer.load_weights(model.find_last())
    assert not report["missing"] and not report["shape_mismatch"]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (50, 90, 3), dtype=np.uint8),
              rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
              rng.integers(0, 255, (100, 40, 3), dtype=np.uint8)]
    results = infer.detect(images)
    assert len(results) == 3
    for image, r in zip(images, results):
        n = r["rois"].shape[0]
        assert r["masks"].shape == image.shape[:2] + (n,)
        assert r["masks"].dtype == bool
        assert r["class_ids"].shape == (n,) and r["scores"].shape == (n,)
        assert n <= config.DETECTION_MAX_INSTANCES
        if n:
            assert r["rois"][:, 2].max() <= image.shape[0]
            assert r["rois"][:, 3].max() <= image.shape[1]
            assert np.all(r["class_ids"] >= 1)


def test_train_rejects_done_epochs(trained):
    model, _, _, config = trained
    with pytest.raises(ValueError, match="already trained"):
        model.train(shapes(4), None, 0.01, epochs=1, layers="heads", verbose=0)
    with pytest.raises(ValueError, match="layers must be one of"):
        model.layer_regex(3)


def test_heads_mode_freezes_backbone():
    config = make_config()
    model = modellib.MaskRCNN("training", config, "unused")
    trained = model.set_trainable("heads")
    assert trained and all(n.startswith(("mrcnn_", "rpn_", "fpn_")) for n in trained)
    assert not any(l.trainable for l in model.keras_model.layers if l.name.startswith("scnn_"))
    model.set_trainable("4+")
    names = {l.name for l in model.keras_model.layers if l.trainable and l.weights}
    assert "scnn_s4_conv1" in names and "scnn_s3_conv1" not in names
    # TRAIN_BN False: batch norms stay frozen
    assert "scnn_s4_bn1" not in names


@pytest.mark.parametrize("name, cls", [("SGD", "SGD"), ("adamw", "AdamW")])
def test_optimizer_from_config(name, cls):
    import keras
    config = make_config(OPTIMIZER=name, WEIGHT_DECAY=1e-4, GRADIENT_CLIP_NORM=5.0,
                         LEARNING_MOMENTUM=0.8)
    model = modellib.MaskRCNN("training", config, "unused")
    optimizer = model.compile(0.01, config.LEARNING_MOMENTUM, total_steps=10)
    assert isinstance(optimizer, getattr(keras.optimizers, cls))  # a subclass on PyTorch
    assert optimizer.clipnorm == 5.0 and optimizer.weight_decay == 1e-4
    assert (optimizer.momentum if cls == "SGD" else optimizer.beta_1) == 0.8


@pytest.mark.parametrize("channels", [512, 64])
def test_rpn_conv_channels(channels):
    config = make_config(RPN_CONV_CHANNELS=channels)
    counts = modellib.MaskRCNN("inference", config, "unused").parameter_counts()
    p, a = config.TOP_DOWN_PYRAMID_SIZE, config.RPN_ANCHORS_PER_LOCATION
    # shared 3x3 conv p -> channels, then 1x1 convs to 2 and 4 values per anchor
    expected = (9 * p * channels + channels) + (channels * 2 * a + 2 * a) \
        + (channels * 4 * a + 4 * a)
    assert counts["rpn"] == expected


def test_images_without_instances_train(tmp_path):
    from mrcnn.dataset import Dataset

    class Empty(Dataset):
        def __init__(self):
            super().__init__()
            self.add_class("e", 1, "thing")
            for i in range(2):
                self.add_image("e", image_id=i, path=None)

        def load_image(self, image_id):
            return np.full((64, 64, 3), 90, np.uint8)

        def load_mask(self, image_id):
            return np.zeros((64, 64, 0), bool), np.zeros(0, np.int32)

    config = make_config(NUM_CLASSES=2, STEPS_PER_EPOCH=2, VALIDATION_STEPS=1)
    ds = Empty()
    ds.prepare()
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    h = model.train(ds, ds, 0.01, epochs=1, layers="all", verbose=0).history
    for name in ("loss",) + LOSS_NAMES:
        assert math.isfinite(h[name][0]), (name, h[name])
    assert h["mrcnn_mask_loss"][0] == 0.0 and h["rpn_bbox_loss"][0] == 0.0


def test_nan_loss_stops_with_clear_message(tmp_path):
    config = make_config(LEARNING_RATE=1e12, GRADIENT_CLIP_NORM=0.0, STEPS_PER_EPOCH=5)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    with pytest.raises(FloatingPointError) as err:
        model.train(shapes(6), None, 1e12, epochs=1, layers="all", verbose=0)
    msg = str(err.value)
    assert "step" in msg and "rpn_class_loss=" in msg and "mrcnn_mask_loss=" in msg


def test_bad_mode_and_config():
    with pytest.raises(ValueError, match="mode must be"):
        modellib.MaskRCNN("train", make_config(), "logs")
    with pytest.raises(TypeError, match="instance"):
        modellib.MaskRCNN("training", type(make_config()), "logs")


def test_parameter_counts_add_up():
    model = modellib.MaskRCNN("inference", make_config(), "unused")
    counts = model.parameter_counts()
    assert counts["total"] == model.keras_model.count_params()
    assert all(counts[k] > 0 for k in ("backbone", "fpn", "rpn", "heads"))


@pytest.mark.slow
def test_training_with_two_worker_processes_and_disk_cache(tmp_path):
    """The defaults must not hang at 'Epoch 1/N' with data-loader processes."""
    config = make_config(CACHE="disk", STEPS_PER_EPOCH=4, VALIDATION_STEPS=1)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    history = model.train(shapes(6, seed=3), shapes(2, seed=4), 0.01, epochs=2, layers="all",
                          workers=2, use_multiprocessing=True, verbose=0)
    h = history.history
    assert history.epoch == [0, 1] and all(math.isfinite(v) for v in h["loss"])
    # the second epoch hits the disk cache written by the worker processes
    assert h["cache_hits"][1] > 0, h
    cache_files = [f for _, _, fs in os.walk(tmp_path / "cache") for f in fs]
    assert cache_files


# --------------------------------------------- diverged weights are never checkpointed
@pytest.mark.parametrize("validation", [False, True])
def test_diverged_weights_are_not_checkpointed(tmp_path, validation):
    """The update of an epoch's last step is checked too (one step per epoch: no later loss)."""
    import glob
    config = make_config(LEARNING_RATE=float("nan"), STEPS_PER_EPOCH=1, VALIDATION_STEPS=1)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    with pytest.raises(FloatingPointError) as err:
        model.train(shapes(4), shapes(2, seed=2) if validation else None, float("nan"),
                    epochs=2, layers="all", verbose=0)
    msg = str(err.value)
    assert "epoch 1" in msg and "loss=" in msg
    if validation:       # the NaN validation loss stops it, before the checkpoint
        assert "val_loss=nan" in msg
    else:                # the weights are checked before the checkpoint is written
        assert "not written" in msg and "scnn_s1_conv1 (NaN)" in msg   # the first layer
    assert glob.glob(os.path.join(str(tmp_path), "*", "*.h5")) == []
    assert model.epoch == 0
    with pytest.raises(FileNotFoundError):
        model.find_last()


def test_resume_rewrites_history_without_duplicate_epochs(trained, tmp_path):
    import csv
    import shutil
    model, _, model_dir, config = trained
    run = shutil.copytree(os.path.dirname(model.find_last()), tmp_path / "tiny20300101T000000")
    with open(run / "history.csv", newline="") as f:
        before = list(csv.DictReader(f))
    assert [r["epoch"] for r in before][:2] == ["0", "1"]
    # a leftover of a save killed half-way
    (run / ".tmp-x1y2z3.h5").write_bytes(b"partial")
    resumed = modellib.MaskRCNN("training", config, str(tmp_path))
    resumed.load_weights(str(run / "mask_rcnn_tiny_0001.h5"))
    assert resumed.epoch == 1 and resumed.log_dir == str(run)
    resumed.train(shapes(8, seed=1), None, config.LEARNING_RATE, epochs=2, layers="heads",
                  verbose=0)
    with open(run / "history.csv", newline="") as f:
        after = list(csv.DictReader(f))
    assert [r["epoch"] for r in after] == ["0", "1"]
    assert after[0] == before[0]                          # the kept epoch is untouched
    assert after[1]["val_loss"] == "" and math.isfinite(float(after[1]["loss"]))
    assert not [f for f in os.listdir(run) if f.startswith(".tmp-")]
