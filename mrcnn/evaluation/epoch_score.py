"""Score the validation set after every epoch: the competition mAP-IoU and COCO mask AP.

Validation losses do not rank checkpoints by what is scored: `EpochScore`
runs `mrcnn.evaluation.evaluate` after each epoch with an inference model
that shares the training weights (built once; the weights are copied by
layer name each time) and adds to the epoch logs, so History,
``history.csv``, TensorBoard and the checkpoint callback (``keep="best"``,
``patience``) see them:

* ``val_map_iou``: the competition score (mAP over IoU 0.50:0.95, mean over images);
* ``val_map_iou_<class>``: the same per class;
* ``val_mask_ap``, ``val_mask_ap50``, ``val_mask_ap75``, ``val_box_ap``: COCO AP.

::

    from mrcnn.evaluation.epoch_score import EpochScore
    from mrcnn.inference import PostprocessConfig
    score = EpochScore(val_set, config=inference_config,
                       postprocess=PostprocessConfig(min_score=0.5, min_area=75))
    model.train(train_set, val_set, lr, epochs=30, layers="all", evaluation=score,
                keep="best", patience=5)       # keep="best" watches val_map_iou
    model.load_weights("best")

The model facade builds the inference model (``MaskRCNN.train`` passes a
factory to `attach`); nothing here imports it.

In a job of several processes (`mrcnn.distribute.cluster`) the chief scores
and the others receive its entries (`cluster.broadcast_from_chief`), so every
process has the same epoch logs and takes the same decisions (best
checkpoint, early stopping); only the chief builds an inference model and
prints.
"""

import re
import time

import keras
import numpy as np

from mrcnn.config import config_variant
from mrcnn.distribute import cluster
from mrcnn.evaluation.coco import DEFAULT_MAX_DETS
from mrcnn.evaluation.report import evaluate
from mrcnn.weights.transfer import shared_variables

__all__ = ["EpochScore", "attach", "inference_config", "shared_variables", "log_entries"]


def inference_config(config):
    """The inference twin of a training config: one image per batch, same settings.

    Raises:
        ValueError: the training config crops (``IMAGE_RESIZE_MODE="crop"``),
            so it says nothing about the whole-image input of inference.
    """
    if config.IMAGE_RESIZE_MODE == "crop":
        raise ValueError(
            "the training config crops its inputs (IMAGE_RESIZE_MODE='crop'); pass the "
            "inference config for whole images: EpochScore(dataset, config=inference_config), "
            "e.g. the training settings with IMAGE_RESIZE_MODE='none' and IMAGE_SHAPE=[576, 704, 3]")
    return config_variant(config, "Inference", IMAGES_PER_GPU=1, GPU_COUNT=1)


def _key(name):
    return re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_").lower()


def log_entries(report, prefix="val_"):
    """The epoch-log entries of an `evaluate` report (floats; NaN where COCO AP is undefined)."""
    out = {f"{prefix}map_iou": float(report["map_iou"])}
    for kind in ("mask", "box"):
        part = report.get(kind) or {}
        for key, name in (("AP", "ap"), ("AP50", "ap50"), ("AP75", "ap75")):
            if key in part:
                out[f"{prefix}{kind}_{name}"] = float(part[key])
    for name, value in report.get("map_iou_per_class", {}).items():
        out[f"{prefix}map_iou_{_key(name)}"] = float(value)
    return out


class EpochScore(keras.callbacks.Callback):
    """After every `every` epochs (and the last), score a dataset and add it to the epoch logs.

    Args:
        dataset: a prepared Dataset with ground truth (the validation set).
        config: the inference Config (e.g. whole images where training
            crops); default: the training config with one image per batch
            (`inference_config`).
        postprocess: None, a `mrcnn.inference.PostprocessConfig` or a
            callable, as `mrcnn.evaluation.evaluate` takes (score what you submit).
        image_ids: the dataset's image ids to score (default: all).
        every: evaluate after every this many epochs (and after the last one).
        prefix: of the log entries (``val_map_iou``, ...).
        verbose: print one line per evaluation.
        max_dets: COCO detections kept per image and class.
        detector: an inference model to use (with ``keras_model`` and
            ``detect``), instead of one built by `attach`'s factory.

    Attributes:
        scores: ``[(epoch 1-based, {entry: value})]`` of this object's evaluations.
    """

    def __init__(self, dataset, config=None, postprocess=None, image_ids=None, every=1,
                 prefix="val_", verbose=1, max_dets=DEFAULT_MAX_DETS, detector=None):
        super().__init__()
        if not hasattr(dataset, "image_ids") or not hasattr(dataset, "load_mask"):
            raise TypeError(f"dataset must be a prepared Dataset with ground truth, got "
                            f"{type(dataset).__name__}")
        if int(every) != every or every < 1:
            raise ValueError(f"every must be a positive number of epochs, got {every!r}")
        self.dataset, self.config, self.postprocess = dataset, config, postprocess
        self.image_ids = image_ids
        self.every, self.prefix, self.verbose, self.max_dets = int(every), prefix, verbose, max_dets
        self.detector = detector
        self._build = None
        self._pairs = None
        self.scores = []

    def bind(self, build_detector, training_config):
        """Give the factory ``fn(config) -> inference model`` and the training config (facade)."""
        self._build = build_detector
        if self.config is None:
            self.config = inference_config(training_config)
        return self

    def _detector(self):
        if self.detector is None:
            if self._build is None:
                raise ValueError("EpochScore has no inference model: pass it to "
                                 "MaskRCNN.train(..., evaluation=...) or give detector=")
            self.detector = self._build(self.config)
        if self._pairs is None:
            self._pairs = shared_variables(self.model, self.detector.keras_model)
        return self.detector

    def due(self, epoch):
        """Whether the 0-based `epoch` is scored."""
        last = (self.params or {}).get("epochs")
        return (epoch + 1) % self.every == 0 or (last is not None and epoch + 1 == last)

    def on_epoch_end(self, epoch, logs=None):
        if not self.due(epoch):
            return
        chief = cluster.is_chief()
        entries = self._score(epoch) if chief else None
        entries = cluster.broadcast_from_chief(entries)       # as is with one process
        self.scores.append((epoch + 1, entries))
        if logs is not None:
            logs.update(entries)

    def _score(self, epoch):
        """Evaluate the current weights; returns the log entries (and prints them)."""
        start = time.time()
        detector = self._detector()
        for source, target in self._pairs:
            target.assign(keras.ops.convert_to_numpy(source))
        report = evaluate(detector, self.dataset, self.image_ids, self.postprocess, verbose=0,
                          max_dets=self.max_dets)
        entries = log_entries(report, self.prefix)
        if self.verbose:
            p = self.prefix
            print(f"epoch {epoch + 1}: {p}map_iou={entries[p + 'map_iou']:.4f} "
                  f"{p}mask_ap={entries.get(p + 'mask_ap', np.nan):.4f} "
                  f"({report['n_images']} images, {time.time() - start:.1f}s)")
        return entries


def attach(evaluation, val_dataset, training_config, build_detector):
    """The epoch-metric callbacks of ``MaskRCNN.train(..., evaluation=...)``.

    Args:
        evaluation: None/False (none), True (an `EpochScore` of `val_dataset`)
            or an `EpochScore`.
        val_dataset: the validation set of the train call.
        training_config: the training Config (for the default inference config).
        build_detector: ``fn(config) -> inference model``.

    Returns:
        a list of callbacks ([] or [the EpochScore]).
    """
    if evaluation is None or evaluation is False:
        return []
    if evaluation is True:
        if val_dataset is None:
            raise ValueError("evaluation=True scores the validation set, but val_dataset is None")
        evaluation = EpochScore(val_dataset)
    if not isinstance(evaluation, EpochScore):
        raise TypeError(f"evaluation must be None, True or an EpochScore, got "
                        f"{type(evaluation).__name__}")
    return [evaluation.bind(build_detector, training_config)]
