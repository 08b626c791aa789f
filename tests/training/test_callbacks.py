"""Training callbacks (mrcnn/training/callbacks.py): NaN guard, checkpoints, history.csv."""

import csv
import math
import os
import warnings

import h5py
import keras
import numpy as np
import pytest

from mrcnn.training.callbacks import Checkpoint, HistoryCSV, NanGuard
from mrcnn.training.trainer import LOSS_NAMES


def small_model():
    """A model with a nested sub-model ("inner": conv_a) and a dense layer, random weights."""
    inner_in = keras.Input((4, 4, 2))
    inner = keras.Model(inner_in, keras.layers.Conv2D(3, 1, name="conv_a")(inner_in),
                        name="inner")
    inputs = keras.Input((4, 4, 2))
    x = keras.layers.Flatten(name="flat")(inner(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(x))
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(rng.normal(size=tuple(v.shape)).astype("float32"))
    return model


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    model = small_model()
    saved = []
    callback = Checkpoint(str(tmp_path / "mask_rcnn_x_{epoch:04d}.h5"),
                          on_saved=lambda epoch, path: saved.append(epoch))
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": 1.5, "val_loss": 2.25})
    assert os.listdir(tmp_path) == ["mask_rcnn_x_0001.h5"] and saved == [1]

    # the update of the epoch's last step made one weight NaN, another inf
    kernel = model.get_layer("dense").kernel
    kernel.assign(np.where(np.arange(kernel.shape[0])[:, None] == 3, np.nan,
                           keras.ops.convert_to_numpy(kernel)).astype("float32"))
    conv = model.get_layer("inner").get_layer("conv_a").bias
    conv.assign(np.array([0.0, np.inf, 0.0], np.float32))
    with pytest.raises(FloatingPointError) as err:
        callback.on_epoch_end(1, {"loss": 1.25, "val_loss": 2.0})
    msg = str(err.value)
    assert "epoch 2" in msg and "mask_rcnn_x_0002.h5" in msg and "not written" in msg
    assert "dense" in msg and "conv_a" in msg and "flat" not in msg
    # the loss history so far: both epochs
    assert "epoch 1: loss=1.5, val_loss=2.25" in msg and "epoch 2: loss=1.25, val_loss=2" in msg
    assert model.stop_training
    # nothing written: no checkpoint 2, no temporary file; the last good one is intact
    assert os.listdir(tmp_path) == ["mask_rcnn_x_0001.h5"] and saved == [1]
    with h5py.File(tmp_path / "mask_rcnn_x_0001.h5") as f:
        assert np.isfinite(f["dense"]["dense/kernel:0"][()]).all()


def test_nan_guard_checks_the_epoch_and_validation_losses():
    guard = NanGuard(LOSS_NAMES)
    guard.set_model(small_model())
    finite = {"loss": 2.0, "val_loss": 1.0, **{f"val_{n}": 0.2 for n in LOSS_NAMES}}
    guard.on_epoch_begin(0)
    guard.on_epoch_end(0, finite)                                   # fine
    guard.on_epoch_begin(1)
    with pytest.raises(FloatingPointError) as err:
        guard.on_epoch_end(1, {**finite, "val_loss": math.nan, "val_mrcnn_mask_loss": math.inf})
    msg = str(err.value)
    assert "epoch 2" in msg and "validation" in msg
    assert "val_loss=nan" in msg and "val_mrcnn_mask_loss=inf" in msg
    assert "epoch 1: loss=2, val_loss=1" in msg                     # the history so far
    assert guard.model.stop_training
    # the epoch's mean training loss is checked too
    guard.on_epoch_begin(2)
    with pytest.raises(FloatingPointError, match="loss=inf"):
        guard.on_epoch_end(2, {"loss": math.inf})


# --------------------------------------------------------------- history.csv
def keras_csv(path, epochs):
    """history.csv as keras.callbacks.CSVLogger(append=True) writes it (the reference)."""
    logger = keras.callbacks.CSVLogger(str(path), append=True)
    logger.set_model(small_model())
    logger.on_train_begin()
    for epoch, logs in epochs:
        logger.on_epoch_end(epoch, dict(logs))
    logger.on_train_end()


def rows_of(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        return next(reader), list(reader)


def test_history_csv_writes_what_keras_csv_logger_writes(tmp_path):
    logs = [(0, {"loss": 3.25, "val_loss": 2.5, "rpn_class_loss": 0.125}),
            (1, {"loss": 2.0, "val_loss": 1.5, "rpn_class_loss": 0.0625})]
    keras_csv(tmp_path / "keras.csv", logs)
    ours = HistoryCSV(str(tmp_path / "history.csv"))
    ours.on_train_begin()
    for epoch, values in logs:
        ours.on_epoch_begin(epoch)
        ours.on_epoch_end(epoch, dict(values))
    assert rows_of(tmp_path / "history.csv") == rows_of(tmp_path / "keras.csv")


def test_a_resumed_run_drops_the_epochs_it_repeats(tmp_path):
    path = tmp_path / "history.csv"
    first = [(e, {"loss": 4.0 - e, "val_loss": 5.0 - e}) for e in range(4)]
    keras_csv(path, first)                       # a run killed after epoch 4 (index 3)
    header, rows = rows_of(path)
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]

    # resumed from checkpoint 2 (two epochs done): epochs 2 and 3 are trained again
    resumed = HistoryCSV(str(path))
    resumed.on_train_begin()
    resumed.on_epoch_begin(2)
    # dropped before training appends anything (a crash now loses no kept row)
    assert rows_of(path) == (header, rows[:2])
    resumed.on_epoch_end(2, {"loss": 1.75, "val_loss": 2.75})
    resumed.on_epoch_begin(3)
    resumed.on_epoch_end(3, {"loss": 0.5})      # no validation this time
    header2, rows2 = rows_of(path)
    assert header2 == header == ["epoch", "loss", "val_loss"]
    assert rows2 == rows[:2] + [["2", "1.75", "2.75"], ["3", "0.5", ""]]
    assert sorted(os.listdir(tmp_path)) == ["history.csv"]          # written atomically


def test_new_columns_rewrite_the_header_instead_of_shifting_values(tmp_path):
    path = tmp_path / "history.csv"
    keras_csv(path, [(0, {"loss": 2.0})])
    logger = HistoryCSV(str(path))
    logger.on_train_begin()
    logger.on_epoch_begin(1)
    logger.on_epoch_end(1, {"loss": 1.0, "val_loss": 1.5, "cache_hits": 3.0})
    header, rows = rows_of(path)
    assert header == ["epoch", "cache_hits", "loss", "val_loss"]
    # Keras wrote "NA" for the validation it did not have; kept as it was
    assert rows == [["0", "", "2.0", "NA"], ["1", "3.0", "1.0", "1.5"]]


# ------------------------------------------------------------ best checkpoint, early stop
def test_checkpoint_keeps_the_best_and_the_last_and_stops_when_the_score_stalls(tmp_path):
    import json
    model = small_model()
    run = tmp_path / "x20261129T100000"
    run.mkdir()
    model.stop_training = False
    callback = Checkpoint(str(run / "mask_rcnn_x_{epoch:04d}.h5"), keep="best",
                          monitor="val_map_iou", patience=2)
    callback.set_model(model)
    callback.on_train_begin()
    scores = [0.1, 0.3, 0.2, 0.25, 0.9]
    for epoch, value in enumerate(scores):
        callback.on_epoch_end(epoch, {"loss": 1.0, "val_map_iou": value})
        if model.stop_training:
            break
    assert callback.stopped_epoch == 4                # best at 2, no gain at 3 and 4
    assert sorted(os.listdir(run)) == ["best.json", "mask_rcnn_x_0002.h5",
                                       "mask_rcnn_x_0004.h5"]
    assert json.load(open(run / "best.json")) == {
        "epoch": 2, "monitor": "val_map_iou", "mode": "max", "value": 0.3,
        "checkpoint": "mask_rcnn_x_0002.h5"}
    # a resumed run reads the record: 0.28 at epoch 5 is no gain
    model.stop_training = False
    again = Checkpoint(str(run / "mask_rcnn_x_{epoch:04d}.h5"), keep="last", monitor="val_map_iou")
    again.set_model(model)
    again.on_train_begin()
    assert again.best["epoch"] == 2
    again.on_epoch_end(4, {"val_map_iou": 0.28})
    assert sorted(os.listdir(run)) == ["best.json", "mask_rcnn_x_0005.h5"]


def test_checkpoint_loss_monitors_minimise_and_bad_settings_are_named(tmp_path):
    model = small_model()
    callback = Checkpoint(str(tmp_path / "mask_rcnn_x_{epoch:04d}.h5"), keep="best",
                          monitor="val_loss")
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate([2.0, 1.0, float("nan"), 1.5]):
        callback.on_epoch_end(epoch, {"val_loss": value})
    assert callback.best["epoch"] == 2 and callback.mode == "min"
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".h5")) == [
        "mask_rcnn_x_0002.h5", "mask_rcnn_x_0004.h5"]
    with pytest.raises(ValueError, match=r"keep='best' needs a metric"):
        Checkpoint(str(tmp_path / "m_{epoch:04d}.h5"), keep="best")
    with pytest.raises(ValueError, match=r"patience must be a positive number of epochs or None, "
                                         r"got 0"):
        Checkpoint(str(tmp_path / "m_{epoch:04d}.h5"), monitor="val_loss", patience=0)
    with pytest.raises(ValueError, match=r"patience needs a monitor"):
        Checkpoint(str(tmp_path / "m_{epoch:04d}.h5"), patience=3)
    with pytest.raises(ValueError, match=r"mode must be 'max', 'min' or 'auto', got 'up'"):
        Checkpoint(str(tmp_path / "m_{epoch:04d}.h5"), monitor="val_loss", mode="up")
    warned = Checkpoint(str(tmp_path / "w" / "mask_rcnn_x_{epoch:04d}.h5"), monitor="val_map_iou")
    os.makedirs(tmp_path / "w")
    warned.set_model(model)
    warned.on_train_begin()
    warned.on_epoch_end(0, {"val_loss": 1.0})
    with pytest.warns(RuntimeWarning, match=r"ranked by 'val_map_iou', which no epoch's logs held "
                                            r"\(those of epoch 1 hold \['val_loss'\]\)"):
        warned.on_train_end()
    scored_later = Checkpoint(str(tmp_path / "w" / "mask_rcnn_x_{epoch:04d}.h5"),
                              monitor="val_map_iou")       # scored every 2nd epoch: no warning
    scored_later.set_model(model)
    scored_later.on_train_begin()
    scored_later.on_epoch_end(0, {"val_loss": 1.0})
    scored_later.on_epoch_end(1, {"val_loss": 1.0, "val_map_iou": 0.2})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        scored_later.on_train_end()
