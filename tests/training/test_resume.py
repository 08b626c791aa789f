"""Initialise from weights vs resume a run, exactly (MaskRCNN.init_from / resume / load_weights)."""

import os
import warnings

import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from mrcnn.weights.integrity import WeightsMismatchError
from model_helpers import make_config, shapes


def build(config, model_dir):
    keras.utils.set_random_seed(0)
    return modellib.MaskRCNN("training", config, str(model_dir))


def fit(model, config, epochs):
    return model.train(shapes(8, seed=1), shapes(4, seed=2), config.LEARNING_RATE,
                       epochs=epochs, layers="all", verbose=0)


def max_difference(a, b):
    return max(float(np.max(np.abs(x - y))) if x.size else 0.0
               for x, y in zip(a.keras_model.get_weights(), b.keras_model.get_weights()))


@pytest.fixture
def deterministic_ops():
    """TensorFlow's CPU kernels reduce in thread-dependent order unless told not to; AdamW
    turns such 1e-7 differences into whole learning-rate steps (m / sqrt(v) of a gradient
    near zero), so exactness is only testable with deterministic kernels."""
    if keras.backend.backend() != "tensorflow":
        yield
        return
    from tensorflow.python.framework import config as tf_config
    was = tf_config.is_op_determinism_enabled()
    tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if not was:
            tf_config.disable_op_determinism()


@pytest.mark.parametrize("optimizer", ["SGD", pytest.param("AdamW", marks=pytest.mark.slow)])
def test_one_epoch_plus_resume_is_two_epochs_straight(tmp_path, optimizer, deterministic_ops):
    config = make_config(OPTIMIZER=optimizer, LEARNING_RATE=0.01 if optimizer == "SGD" else 1e-3)
    straight = build(config, tmp_path / "straight")
    fit(straight, config, 2)
    first = build(config, tmp_path / "split")
    fit(first, config, 1)
    resumed = build(config, tmp_path / "split")           # a new object, as a new process
    report = resumed.resume()
    assert resumed.epoch == 1 and report["path"].endswith("mask_rcnn_tiny_0001.h5")
    assert os.path.basename(resumed.log_dir) == os.path.basename(first.log_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)    # no "without its training state"
        fit(resumed, config, 2)
    # Without the optimizer state the difference is 0.026 (SGD) / 0.0045 (AdamW).
    assert max_difference(straight, resumed) <= 1e-6
    files = sorted(os.listdir(resumed.log_dir))
    # only the newest checkpoint keeps its training state
    assert "train_state_tiny_0002.h5" in files and "train_state_tiny_0001.h5" not in files
    if optimizer == "SGD":
        # without the saved optimizer state (momentum from zero) it is another run
        fresh = build(config, tmp_path / "fresh")
        fresh.load_weights(os.path.join(first.log_dir, "mask_rcnn_tiny_0001.h5"), init=True)
        fresh.epoch = 1
        fit(fresh, config, 2)
        assert max_difference(straight, fresh) > 1e-4


def test_init_from_a_checkpoint_starts_a_new_run_and_resume_sets_aside_later_ones(tmp_path):
    config = make_config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=1)
    pre = build(config, tmp_path / "pre")
    fit(pre, config, 2)
    pre_config = open(os.path.join(pre.log_dir, "config.json")).read()
    checkpoint = pre.find_last()

    # initialise: new folder under its own model_dir, epoch 0, the whole schedule ahead
    tuned_config = make_config(NAME="tuned", STEPS_PER_EPOCH=1, VALIDATION_STEPS=1)
    tuned = build(tuned_config, tmp_path / "tuned")
    report = tuned.init_from(checkpoint)
    assert tuned.epoch == 0 and not report["missing"]
    assert tuned.log_dir.startswith(str(tmp_path / "tuned")) and tuned.resume_state is None
    history = fit(tuned, tuned_config, 2)                  # --epochs 2 after a 2-epoch run
    assert history.epoch == [0, 1]
    assert tuned.find_last().endswith(os.path.join("tuned", os.path.basename(tuned.log_dir),
                                                   "mask_rcnn_tuned_0002.h5"))
    assert open(os.path.join(pre.log_dir, "config.json")).read() == pre_config
    # Matterport's load_weights(path) still adopts the epoch and the run folder
    matterport = build(config, tmp_path / "elsewhere")
    matterport.load_weights(checkpoint)
    assert matterport.epoch == 2 and matterport.log_dir == pre.log_dir

    # resume from the older checkpoint: the newer one is moved aside, "last" never sees it
    back = build(config, tmp_path / "pre")
    back.resume(os.path.join(pre.log_dir, "mask_rcnn_tiny_0001.h5"))
    assert back.epoch == 1
    with pytest.warns(RuntimeWarning, match=r"without its training state \(no training state "
                                            r"train_state_tiny_0001\.h5"):
        fit(back, config, 2)                              # only the newest keeps its state
    aside = [d for d in os.listdir(pre.log_dir) if d.startswith("abandoned-after-0001-")]
    assert len(aside) == 1
    assert sorted(os.listdir(os.path.join(pre.log_dir, aside[0]))) == [
        "mask_rcnn_tiny_0002.h5", "train_state_tiny_0002.h5"]
    assert back.find_last() == checkpoint                 # the new epoch 2
    with pytest.raises(ValueError, match=r"cannot resume from .*weights\.h5.*init_from"):
        back.save_weights(str(tmp_path / "weights.h5"))
        back.resume(str(tmp_path / "weights.h5"))
    # a model of another shape (other mask-head channels) cannot resume the run: it would
    # restart those layers from random weights while the rest continues
    narrow = build(make_config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=1,
                               MASK_HEAD_CHANNELS=config.MASK_HEAD_CHANNELS // 2), tmp_path / "pre")
    with pytest.raises(WeightsMismatchError, match=r"mask_rcnn_tiny_0002\.h5 does not match "
                                                   r"the model \(different shapes: mrcnn_mask_conv1"):
        narrow.resume("last")


def test_keep_best_by_val_loss_and_load_best(tmp_path):
    config = make_config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=1)
    model = build(config, tmp_path)
    history = model.train(shapes(8, seed=1), shapes(4, seed=2), config.LEARNING_RATE,
                          epochs=3, layers="all", verbose=0, keep="best")
    losses = history.history["val_loss"]
    best_epoch = int(np.argmin(losses)) + 1
    files = sorted(f for f in os.listdir(model.log_dir) if f.startswith("mask_rcnn_"))
    assert files == sorted({f"mask_rcnn_tiny_{best_epoch:04d}.h5", "mask_rcnn_tiny_0003.h5"})
    inference = modellib.MaskRCNN("inference", make_config(IMAGES_PER_GPU=1), str(tmp_path))
    report = inference.load_weights("best")
    assert report["path"].endswith(f"mask_rcnn_tiny_{best_epoch:04d}.h5")
    with pytest.raises(ValueError, match=r"keep must be one of .*'every'"):
        model.train(shapes(8, seed=1), None, config.LEARNING_RATE, epochs=4, layers="all",
                    verbose=0, keep="every")
