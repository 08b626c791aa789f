"""Tests for mrcnn/visualize/training.py: loss curves, learning-rate schedule, cache stats."""

import csv

import numpy as np
import pytest
from matplotlib.figure import Figure

from mrcnn.config import Config
from mrcnn.visualize.training import plot_cache_stats, plot_history, plot_lr_schedule
from tests.visualize.picture_helpers import assert_picture


def _star(ax):
    line = [ln for ln in ax.get_lines() if ln.get_marker() == "*"][0]
    return float(line.get_xdata()[0]), float(line.get_ydata()[0])


def test_plot_history_from_dict_history_and_csv(tmp_path):
    logs = {"loss": [3.0, 2.0, 1.5], "val_loss": [3.5, 1.0, 2.0],
            "mrcnn_mask_loss": [0.7, 0.5, 0.4], "val_mrcnn_mask_loss": [0.8, 0.7, 0.6],
            "rpn_class_loss": [0.3, 0.2, 0.1]}
    fig = Figure()
    axes = fig.subplots(1, 3)
    plot_history(logs, ax=axes)
    assert [a.get_title() for a in axes] == ["loss", "mrcnn_mask_loss", "rpn_class_loss"]
    # Best = lowest validation value (epochs counted from 1), else lowest training value.
    assert [_star(a) for a in axes] == [(2, 1.0), (3, 0.6), (3, 0.1)]

    class History:                                    # what keras.Model.fit returns
        history = logs
        epoch = [4, 5, 6]                             # a resumed run: 0-based epochs 4..6
    fig = Figure()
    ax = fig.add_subplot()
    plot_history(History(), metric="loss", ax=ax)
    assert _star(ax) == (6, 1.0)

    # history.csv as written by CSVLogger(append=True); epoch 1 logged twice
    # (resumed run): the later row wins.
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "loss", "val_loss"])
        writer.writerows([[0, 3.0, 3.0], [1, 2.0, 0.5], [1, 2.0, 2.5], [2, 1.0, 1.5]])
    fig = Figure()
    ax = fig.add_subplot()
    plot_history(path, ax=ax)
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [3.0, 2.5, 1.5])
    assert _star(ax) == (3, 1.5)
    out = plot_history(path, figsize=(5, 3), save_path=tmp_path / "h.png")
    assert_picture(out, (5, 3))
    out = plot_history(logs, save_path=tmp_path / "all.png")
    assert_picture(out, (15, 3.6))

    with pytest.raises(ValueError, match="history has no"):
        plot_history(logs, metric="mrcnn_bbox_loss")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        plot_history(tmp_path / "nope.csv")
    with pytest.raises(TypeError, match="keras History"):
        plot_history([1, 2, 3])


def test_plot_lr_schedule_warmup_and_decay(tmp_path):
    class Warm(Config):
        NAME = "warm"
        NUM_CLASSES = 2
        LEARNING_RATE = 0.01
        N_WARMUP_STEPS = 10
        LR_SCHEDULE = False
        STEPS_PER_EPOCH = 20

    fig = Figure()
    ax = fig.add_subplot()
    plot_lr_schedule(Warm(), epochs=3, ax=ax)
    x, lr = ax.get_lines()[0].get_xdata(), ax.get_lines()[0].get_ydata()
    assert len(lr) == 60
    # Linear warm-up: lr(step) = 0.01 * (step + 1) / 10, then constant.
    np.testing.assert_allclose(lr[[0, 4, 9, 10, 59]], [0.001, 0.005, 0.01, 0.01, 0.01],
                               rtol=1e-6)
    np.testing.assert_allclose(x[[0, 19, 59]], [0.05, 1.0, 3.0])
    assert "warm-up: 10 steps" in [t.get_text() for t in ax.get_legend().get_texts()]

    class Cosine(Warm):
        LR_SCHEDULE = "cosine"
    fig = Figure()
    ax = fig.add_subplot()
    plot_lr_schedule(Cosine(), epochs=3, steps=10, ax=ax)
    lr = ax.get_lines()[0].get_ydata()
    # After warm-up t = (step - 10) / 20; factor 0.01 + 0.99 * 0.5 * (1 + cos(pi t)).
    t = (np.arange(10, 30) - 10) / 20
    np.testing.assert_allclose(lr[10:], 0.01 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * t))),
                               rtol=1e-5)
    path = plot_lr_schedule(Cosine(), epochs=3, figsize=(6, 3),
                            save_path=tmp_path / "lr.png")
    assert_picture(path, (6, 3))


def test_plot_lr_schedule_step_decay(tmp_path):
    class Step(Config):
        NAME = "step"
        NUM_CLASSES = 2
        LEARNING_RATE = 0.02
        N_WARMUP_STEPS = 4
        LR_SCHEDULE = "step"
        LR_DECAY_EPOCHS = (2, 3)
        LR_DECAY_GAMMA = 0.5
        STEPS_PER_EPOCH = 5

    fig = Figure()
    ax = fig.add_subplot()
    plot_lr_schedule(Step(), epochs=4, ax=ax)
    line = ax.get_lines()[0]
    x, lr = line.get_xdata(), line.get_ydata()
    assert len(lr) == 20
    # Ramp 0.02 * (step + 1) / 4, then 0.02; x0.5 from step 2 * 5 = 10, x0.25 from step 15.
    want = [0.02 * min((s + 1) / 4, 1) * 0.5 ** ((s >= 10) + (s >= 15)) for s in range(20)]
    np.testing.assert_allclose(lr, want, rtol=1e-6)
    np.testing.assert_allclose(x[[9, 10, 14, 15]], [2.0, 2.2, 3.0, 3.2])
    # The drops are marked at epochs 2 and 3 (dotted), and named in the title.
    marks = [ln for ln in ax.get_lines()[1:] if ln.get_linestyle() == ":"]
    assert sorted(float(m.get_xdata()[0]) for m in marks) == [2.0, 3.0]
    assert ax.get_title() == ("Learning rate: step (x0.5 at epochs 2, 3) after 4 warm-up "
                              "steps, 20 steps in all")
    # steps= overrides STEPS_PER_EPOCH for the drops too: epoch 2 ends at step 20.
    fig = Figure()
    ax = fig.add_subplot()
    plot_lr_schedule(Step(), epochs=3, steps=10, ax=ax)
    lr = ax.get_lines()[0].get_ydata()
    np.testing.assert_allclose(lr[[18, 19, 20, 29]], [0.02, 0.02, 0.01, 0.01], rtol=1e-6)
    # A drop after the plotted epochs is not drawn.
    assert [float(m.get_xdata()[0]) for m in ax.get_lines()[1:]] == [2.0]
    path = plot_lr_schedule(Step(), epochs=4, figsize=(6, 3), save_path=tmp_path / "step.png")
    assert_picture(path, (6, 3))


def test_readme_step_decay_settings():
    """README: LR_DECAY_EPOCHS = (20, 25), LR_DECAY_GAMMA = 0.1, plot_lr_schedule(30)."""
    class Readme(Config):
        NAME = "readme"
        NUM_CLASSES = 2
        LEARNING_RATE = 0.001
        LR_SCHEDULE = "step"
        LR_DECAY_EPOCHS = (20, 25)
        LR_DECAY_GAMMA = 0.1
        STEPS_PER_EPOCH = 4

    fig = Figure()
    ax = fig.add_subplot()
    plot_lr_schedule(Readme(), 30, ax=ax)
    lr = ax.get_lines()[0].get_ydata()
    # Epochs 1-20 at 1e-3, 21-25 at 1e-4, 26-30 at 1e-5 (4 steps each).
    np.testing.assert_allclose(lr, [1e-3] * 80 + [1e-4] * 20 + [1e-5] * 20, rtol=1e-6)


def test_plot_cache_stats(tmp_path):
    stats = [{"hits": 0, "misses": 4, "bytes_stored": 2 * 2 ** 20, "compression_ratio": 3.0},
             {"hits": 3, "misses": 1, "bytes": 3 * 2 ** 20, "ratio": 2.5}]
    fig = Figure()
    axes = fig.subplots(1, 3)
    plot_cache_stats(stats, ax=axes)
    assert [t.get_text() for t in axes[0].texts] == ["0%", "75%"]
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), [2, 3])
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), [3.0, 2.5])
    path = plot_cache_stats(stats, figsize=(9, 3), save_path=tmp_path / "c.png")
    assert_picture(path, (9, 3))
    fig = Figure()
    axes = fig.subplots(1, 3)
    plot_cache_stats([{"hits": 1, "misses": 1}], ax=axes)
    assert axes[2].texts[0].get_text() == "compression_ratio not reported"
    # CacheStats snapshots taken after each epoch: running totals.
    from mrcnn.data.cache import CacheStats
    snaps = [CacheStats(hits=0, misses=8, write_bytes=100, write_raw=300, size_bytes=2 ** 20),
             CacheStats(hits=6, misses=10, write_bytes=100, write_raw=300, read_bytes=60,
                        read_raw=120, size_bytes=2 ** 21)]
    fig = Figure()
    axes = fig.subplots(1, 3)
    plot_cache_stats(snaps, cumulative=True, ax=axes)
    # Epoch 2: 6 hits, 2 misses -> 75 %; ratio (300 + 120) / (100 + 60) = 2.625.
    assert [t.get_text() for t in axes[0].texts] == ["0%", "75%"]
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), [1, 2])
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), [3.0, 2.625])
    # The training history with CacheStatsLogger's columns (here the CSV file).
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "cache_hits", "cache_hit_rate", "cache_mb", "cache_misses",
                         "cache_ratio", "loss"])
        writer.writerows([[0, 0, 0.0, 1.5, 5, 0.0, 2.0], [1, 4, 0.8, 1.5, 1, 2.0, 1.0]])
    fig = Figure()
    axes = fig.subplots(1, 3)
    plot_cache_stats(path, ax=axes)
    assert [t.get_text() for t in axes[0].texts] == ["0%", "80%"]
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), [1.5, 1.5])
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), [np.nan, 2.0])
    with pytest.raises(ValueError, match=r"history has no \['cache_hits', 'cache_misses'\]"):
        plot_cache_stats({"loss": [1.0], "cache_ratio": [2.0], "cache_hit": [1]})
    with pytest.raises(TypeError, match=r"stats\[0\] must be a dict or a CacheStats"):
        plot_cache_stats([3])
    with pytest.raises(ValueError, match=r"stats\[1\] lacks \['misses'\]"):
        plot_cache_stats([{"hits": 1, "misses": 0}, {"hits": 2}])


def test_plot_history_reads_keras_na_cells_as_missing(tmp_path):
    """Keras' CSVLogger wrote "NA" for a val_* column of an epoch without validation."""
    from mrcnn.visualize.training import _history_columns

    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,2.0,NA\n1,1.5,1.25\n")
    epochs, cols = _history_columns(str(path))
    np.testing.assert_array_equal(epochs, [1, 2])
    np.testing.assert_array_equal(cols["loss"], [2.0, 1.5])
    assert np.isnan(cols["val_loss"][0]) and cols["val_loss"][1] == 1.25
