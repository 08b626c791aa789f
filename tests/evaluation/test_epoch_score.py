"""Per-epoch validation score (mrcnn/evaluation/epoch_score.py) and checkpoints ranked by it."""

import csv
import json
import os

import keras
import numpy as np
import pytest

import mrcnn.model as modellib
from model_helpers import make_config, shapes
from mrcnn.evaluation import evaluate
from mrcnn.evaluation.epoch_score import (EpochScore, inference_config, log_entries,
                                          shared_variables)


class Oracle:
    """A detector answering the ground truth (or nothing), with a weightless keras_model."""

    def __init__(self, dataset, empty=False):
        self.dataset, self.empty = dataset, empty
        inputs = keras.Input((2,))
        self.keras_model = keras.Model(inputs, keras.layers.ReLU(name="relu")(inputs))
        self.calls = 0

    def detect(self, images, verbose=0):
        out = []
        for image in images:
            image_id = next(i for i in self.dataset.image_ids
                            if np.array_equal(self.dataset.load_image(i), image))
            masks, class_ids = self.dataset.load_mask(image_id)
            if self.empty:
                masks, class_ids = masks[..., :0], class_ids[:0]
            ys, xs = np.nonzero(masks.any(-1)) if masks.size else ([], [])
            boxes = np.array([[*np.argwhere(m).min(0), *(np.argwhere(m).max(0) + 1)]
                              for m in np.moveaxis(masks, -1, 0)], np.int32).reshape(-1, 4)
            out.append({"rois": boxes, "class_ids": class_ids.astype(np.int32),
                        "scores": np.ones(len(class_ids), np.float32), "masks": masks})
        self.calls += 1
        return out


def test_log_entries_name_every_score():
    report = {"map_iou": 0.5, "map_iou_per_class": {"shsy5y": 0.25, "Cort (2)": 0.75},
              "mask": {"AP": 0.4, "AP50": 0.6, "AP75": 0.3, "AR": 0.9},
              "box": {"AP": np.nan, "AP50": 0.7}}
    entries = log_entries(report)
    assert entries == pytest.approx({"val_map_iou": 0.5, "val_map_iou_shsy5y": 0.25,
                                     "val_map_iou_cort_2": 0.75, "val_mask_ap": 0.4,
                                     "val_mask_ap50": 0.6, "val_mask_ap75": 0.3,
                                     "val_box_ap": np.nan, "val_box_ap50": 0.7}, nan_ok=True)
    assert log_entries({"map_iou": 0.1}, prefix="fold0_") == {"fold0_map_iou": 0.1}


@pytest.mark.parametrize("empty, expected", [(False, 1.0), (True, 0.0)])
def test_epoch_score_adds_the_competition_score_to_the_logs(empty, expected):
    dataset = shapes(3, seed=4)
    oracle = Oracle(dataset, empty=empty)
    score = EpochScore(dataset, detector=oracle, every=2, verbose=0)
    score.set_model(keras.Sequential([keras.Input((2,)), keras.layers.ReLU(name="relu")]))
    score.set_params({"epochs": 3})
    logs = {"loss": 1.0}
    score.on_epoch_end(0, logs)                       # epoch 1 of 3, every 2: not due
    assert logs == {"loss": 1.0} and oracle.calls == 0
    score.on_epoch_end(1, logs)                       # epoch 2
    assert logs["val_map_iou"] == expected and logs["val_mask_ap"] == pytest.approx(
        expected if not empty else 0.0)
    for name in dataset.class_names[1:]:
        if f"val_map_iou_{name}" in logs:
            assert logs[f"val_map_iou_{name}"] == expected
    score.on_epoch_end(2, {})                         # the last epoch is always scored
    assert [epoch for epoch, _ in score.scores] == [2, 3]


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match=r"prepared Dataset with ground truth, got list"):
        EpochScore([1, 2])
    with pytest.raises(ValueError, match=r"every must be a positive number of epochs, got 0"):
        EpochScore(shapes(2), every=0)
    with pytest.raises(ValueError, match=r"IMAGE_RESIZE_MODE='crop'"):
        inference_config(make_config(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64))
    twin = inference_config(make_config())
    assert twin.BATCH_SIZE == 1 and twin.NUM_CLASSES == 4 and twin.NAME == "tiny"
    with pytest.raises(TypeError, match=r"evaluation must be None, True or an EpochScore, got str"):
        modellib.MaskRCNN("training", make_config(), "logs").train(
            shapes(2), shapes(2), 0.01, 1, "all", evaluation="map")


def test_shared_variables_pair_training_and_inference_layers_by_name(tmp_path):
    config = make_config()
    training = modellib.MaskRCNN("training", config, str(tmp_path))
    inference = modellib.MaskRCNN("inference", inference_config(config), str(tmp_path))
    pairs = shared_variables(training.keras_model, inference.keras_model)
    names = {target.path for _, target in pairs}
    assert len(pairs) == len(inference.keras_model.weights) == len(names)
    for source, target in pairs:
        target.assign(source)
    layer = "mrcnn_mask"
    for a, b in zip(training.keras_model.get_layer(layer).get_weights(),
                    inference.keras_model.get_layer(layer).get_weights()):
        np.testing.assert_array_equal(a, b)
    other = modellib.MaskRCNN("inference", inference_config(make_config(NUM_CLASSES=3)),
                              str(tmp_path))
    with pytest.raises(ValueError, match=r"layer 'mrcnn_class_logits': training weights"):
        shared_variables(training.keras_model, other.keras_model)


def test_train_with_evaluation_logs_scores_and_keeps_the_best(tmp_path):
    config = make_config(STEPS_PER_EPOCH=2, VALIDATION_STEPS=1)
    val = shapes(3, seed=2)
    keras.utils.set_random_seed(0)
    model = modellib.MaskRCNN("training", config, str(tmp_path))
    score = EpochScore(val, verbose=0)
    history = model.train(shapes(8, seed=1), val, config.LEARNING_RATE, epochs=2,
                          layers="all", verbose=0, evaluation=score, keep="best")
    h = history.history
    assert len(h["val_map_iou"]) == 2 and "val_mask_ap" in h and "val_mask_ap50" in h
    with open(os.path.join(model.log_dir, "history.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_map_iou"]) for r in rows] == pytest.approx(h["val_map_iou"])
    best = json.load(open(os.path.join(model.log_dir, "best.json")))
    values = h["val_map_iou"]
    assert best["monitor"] == "val_map_iou" and best["mode"] == "max"
    assert best["epoch"] == int(np.argmax(values)) + 1 and best["value"] == pytest.approx(
        max(values))
    # the logged score is the score of the checkpoint: evaluate it independently
    inference = modellib.MaskRCNN("inference", inference_config(config), str(tmp_path))
    inference.load_weights(model.find_last())
    again = evaluate(inference, val, verbose=0)
    assert values[-1] == pytest.approx(again["map_iou"], abs=1e-6)
    assert h["val_mask_ap"][-1] == pytest.approx(again["mask"]["AP"], abs=1e-6, nan_ok=True)
    assert score.detector.keras_model is not model.keras_model      # built once, kept
    assert [e for e, _ in score.scores] == [1, 2]
