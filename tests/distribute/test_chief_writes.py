"""In a job of several processes only the chief writes the run folder; all take its decisions.

The job is simulated in this process: `mrcnn.distribute.cluster` answers "not
the chief, one of 2" and `broadcast_from_chief` hands out what the chief
would have sent. The real jobs run in tests/distribute/test_multiprocess.py.
"""

import os

import keras
import numpy as np
import pytest

from mrcnn.distribute import cluster
from mrcnn.evaluation.epoch_score import EpochScore
from mrcnn.training import callbacks as run_callbacks
from mrcnn.training import loop, runs


class Job:
    """The simulated job: this process's role and what the chief broadcasts."""

    def __init__(self, monkeypatch, chief, sent=None):
        self.sent = list(sent or [])          # the chief's values, in order (non-chief)
        self.calls = []                       # what this process passed
        monkeypatch.setattr(cluster, "is_chief", lambda: chief)
        monkeypatch.setattr(cluster, "process_count", lambda: 2)
        monkeypatch.setattr(cluster, "broadcast_from_chief", self.broadcast)
        self.chief = chief

    def broadcast(self, value):
        self.calls.append(value)
        return value if self.chief else self.sent.pop(0)


def small_model():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return model


def files_under(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder)
                  for d, _, names in os.walk(folder) for n in names)


def test_a_non_chief_checkpoint_writes_nothing_and_takes_the_chiefs_stop(tmp_path, monkeypatch):
    job = Job(monkeypatch, chief=False, sent=[False, True])
    saved = []
    callback = run_callbacks.Checkpoint(str(tmp_path / "run" / "mask_rcnn_x_{epoch:04d}.h5"),
                                        on_saved=lambda epoch, path: saved.append(epoch),
                                        keep="best", monitor="val_loss", patience=1)
    model = small_model()
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    assert not model.stop_training and saved == [1]
    callback.on_epoch_end(1, {"loss": 1.0, "val_loss": 3.0})
    assert model.stop_training and callback.stopped_epoch == 2     # the chief said so
    assert saved == [1, 2] and job.calls == [False, False]          # its own flag was ignored
    assert not os.path.exists(tmp_path / "run")                     # nothing written

    # weights gone non-finite: the same error as the chief's, still nothing written
    model.get_layer("dense").bias.assign(np.array([np.nan, 0.0], np.float32))
    model.stop_training = False
    with pytest.raises(FloatingPointError) as err:
        callback.on_epoch_end(2, {"loss": 1.0, "val_loss": 2.0})
    assert "the weights are not finite after epoch 3 (in dense (NaN)" in str(err.value)
    assert "mask_rcnn_x_0003.h5 was not written" in str(err.value) and model.stop_training
    assert not os.path.exists(tmp_path / "run")


def test_the_chief_writes_and_sends_its_stop(tmp_path, monkeypatch):
    job = Job(monkeypatch, chief=True)
    callback = run_callbacks.Checkpoint(str(tmp_path / "mask_rcnn_x_{epoch:04d}.h5"),
                                        keep="best", monitor="val_loss", patience=1)
    model = small_model()
    model.fit(np.zeros((2, 3)), np.zeros((2, 2)), epochs=1, verbose=0)     # builds the optimizer
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_end(0, {"val_loss": 2.0})
    callback.on_epoch_end(1, {"val_loss": 3.0})                      # no better: patience 1
    assert job.calls == [False, True] and model.stop_training
    assert files_under(tmp_path) == ["best.json", "mask_rcnn_x_0001.h5", "mask_rcnn_x_0002.h5",
                                     "train_state_x_0002.h5"]


def test_non_chief_callbacks_and_run_folder(tmp_path, monkeypatch):
    Job(monkeypatch, chief=False)
    log_dir = tmp_path / "cell20250101T000000"
    config = type("C", (), {"NAME": "cell"})()
    assert loop.prepare_run_folder(str(log_dir), config) is False
    assert not log_dir.exists()
    callbacks = loop.standard_callbacks(str(log_dir), str(log_dir / "m_{epoch:04d}.h5"))
    kinds = [type(c).__name__ for c in callbacks]
    assert kinds == ["AllocatorThresholds", "NanGuard", "Checkpoint"]  # no history.csv, no TensorBoard

    # a continued run's later checkpoints are moved by the chief only
    log_dir.mkdir()
    (log_dir / "mask_rcnn_cell_0003.h5").write_bytes(b"x")
    assert runs.set_aside_after(str(log_dir), 1) == (None, [])
    assert files_under(log_dir) == ["mask_rcnn_cell_0003.h5"]


def test_chief_callbacks_keep_history_and_tensorboard(tmp_path, monkeypatch):
    Job(monkeypatch, chief=True)
    callbacks = loop.standard_callbacks(str(tmp_path), str(tmp_path / "m_{epoch:04d}.h5"))
    kinds = [type(c).__name__ for c in callbacks]
    assert kinds[:4] == ["AllocatorThresholds", "NanGuard", "HistoryCSV", "Checkpoint"]
    assert kinds[4:] == (["TensorBoard"] if run_callbacks.tensorboard_available() else [])


def test_a_non_chief_epoch_score_takes_the_chiefs_entries(monkeypatch):
    chief_entries = {"val_map_iou": 0.25, "val_mask_ap": float("nan")}
    job = Job(monkeypatch, chief=False, sent=[chief_entries])

    def never(config):
        raise AssertionError("a process that is not the chief built an inference model")

    dataset = type("D", (), {"image_ids": [0], "load_mask": None})()
    score = EpochScore(dataset, config=object(), verbose=1).bind(never, None)
    logs = {"loss": 1.0}
    score.on_epoch_end(0, logs)
    assert job.calls == [None]
    assert logs["val_map_iou"] == 0.25 and np.isnan(logs["val_mask_ap"])
    assert score.scores == [(1, chief_entries)]


def test_a_non_chief_prints_no_cache_line(monkeypatch):
    Job(monkeypatch, chief=False)
    from mrcnn.data.cache import SampleCache

    printed = []
    logger = run_callbacks.CacheStatsLogger(SampleCache(), print_fn=printed.append)
    logs = {}
    logger.on_epoch_begin(0)
    logger.on_epoch_end(0, logs)
    assert printed == [] and logs["cache_hits"] == 0.0
