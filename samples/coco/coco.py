"""Matterport's ``samples/coco/coco.py`` on mrcnn: its classes, functions and command line.

Train and evaluate on MS COCO in Matterport's folder layout
(``annotations/instances_<subset><year>.json``, ``<subset><year>/``; see
`mrcnn.datasets.coco_layout`), with Matterport's commands::

    python3 samples/coco/coco.py train --dataset=/path/to/coco/ --model=coco
    python3 samples/coco/coco.py train --dataset=/path/to/coco/ --model=imagenet
    python3 samples/coco/coco.py train --dataset=/path/to/coco/ --model=/path/to/weights.h5
    python3 samples/coco/coco.py train --dataset=/path/to/coco/ --model=last
    python3 samples/coco/coco.py evaluate --dataset=/path/to/coco/ --model=last

and its notebooks' habit (Matterport's ``demo.ipynb``)::

    sys.path.append(os.path.join(ROOT_DIR, "samples/coco/"))
    import coco
    class InferenceConfig(coco.CocoConfig):
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1

What is Matterport's: `CocoConfig` (81 classes, 2 images per GPU, the base
`Config`'s ResNet-101 at 1024x1024), `CocoDataset.load_coco(dataset_dir,
subset, year, class_ids, class_map, return_coco, auto_download)` (the 2014
training set is "train" + "valminusminival", its validation set "minival";
images without an annotation of the loaded classes are left out),
`build_coco_results`, `evaluate_coco` (pycocotools' COCOeval on the first
``--limit`` validation images, 500 by default) and the training schedule:
40 epochs of the heads, up to 120 of ResNet stage 4 and up, up to 160 of
all layers at a tenth of the learning rate, with left-right flips.

Added: ``--model none`` (random weights; every stage then trains all layers),
``--download=False`` means False (Matterport's ``type=bool`` read any text as
True), ``--eval-type segm`` (mask AP; Matterport's command scores boxes), and
for small runs ``--epochs H,F,A`` (the three stages' last epochs),
``--steps-per-epoch``, ``--validation-steps``, ``--backbone`` and
``--image-size`` (square inputs of that side). Weight files that cannot be
found, and bad arguments, end the command with a message instead of a
traceback.
"""

import argparse
import os
import sys
import time

import numpy as np

# This checkout's library first, installed or not (Matterport's samples append their
# ROOT_DIR the same way): `python3 samples/...` then runs the code beside the script.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mrcnn import model as modellib
from mrcnn.cli_settings import run_size_settings, stage_epochs
from mrcnn.config import Config
from mrcnn.data.augment import Fliplr
from mrcnn.datasets import coco as coco_files
from mrcnn.datasets.coco_layout import coco_paths, download_coco
from mrcnn.evaluation.coco import coco_rles
from mrcnn.evaluation.inputs import as_sparse_masks
from mrcnn.weights import load_sample_weights, sample_weights_line

DEFAULT_LOGS_DIR = os.path.join(ROOT, "logs")
DEFAULT_DATASET_YEAR = "2014"
# Where Matterport kept the COCO-trained weights; found there first by --model=coco.
COCO_MODEL_PATH = os.path.join(ROOT, "mask_rcnn_coco.h5")
STAGE_EPOCHS = (40, 120, 160)


class CocoConfig(Config):
    """Matterport's configuration for training on MS COCO."""

    NAME = "coco"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 80     # background + 80 COCO classes


class CocoDataset(coco_files.CocoDataset):
    """`mrcnn.datasets.coco.CocoDataset` with Matterport's ``load_coco(dataset_dir, subset)``."""

    def load_coco(self, dataset_dir, subset, year=DEFAULT_DATASET_YEAR, class_ids=None,
                  class_map=None, return_coco=False, auto_download=False):
        """Load a subset of COCO from Matterport's folder layout.

        Args:
            dataset_dir: the COCO root folder.
            subset: "train", "val", and for 2014 "minival" or "valminusminival".
            year: "2014" or "2017".
            class_ids: category ids to load (all by default); images without an
                annotation of them are left out, as in Matterport.
            class_map: unused (as in Matterport).
            return_coco: also return the pycocotools ``COCO`` object (for `evaluate_coco`).
            auto_download: download the images and annotations the folder lacks
                (`mrcnn.datasets.coco_layout.download_coco`).

        Returns:
            the ``COCO`` object if return_coco, else None.

        Raises:
            ValueError: an unknown year or subset (and see
                `mrcnn.datasets.coco.CocoDataset.load_coco`).
            FileNotFoundError: the annotation file or image folder is missing.
        """
        if auto_download:
            download_coco(dataset_dir, subset, year)
        annotation_json, image_dir = coco_paths(dataset_dir, subset, year)
        if not os.path.exists(annotation_json):
            raise FileNotFoundError(
                f"COCO {subset}{year}: annotation file {annotation_json!r} not found (Matterport's "
                f"layout: <dataset>/annotations/instances_<subset><year>.json; auto_download=True "
                f"or --download=True fetches it)")
        first = len(self.image_info)
        coco = super().load_coco(annotation_json, image_dir, class_ids=class_ids,
                                 return_coco=return_coco)
        # Matterport loads the images that hold at least one annotation of the classes.
        self.image_info[first:] = [info for info in self.image_info[first:]
                                   if info["annotations"]]
        return coco

    def image_reference(self, image_id):
        """The image's page on cocodataset.org (Matterport's)."""
        return f"http://cocodataset.org/#explore?id={self.image_info[image_id]['id']}"


def build_coco_results(dataset, image_ids, rois, class_ids, scores, masks):
    """COCO result dicts of one image's detections (Matterport's helper).

    Args:
        dataset: the prepared dataset (its "coco" classes map class ids back to
            category ids).
        image_ids: ``[coco_image_id]``: the image's COCO id in a one-element list,
            as Matterport's `evaluate_coco` passes it.
        rois: ``[N, (y1, x1, y2, x2)]`` pixel boxes, y2 / x2 exclusive (``detect()``'s).
        class_ids: ``[N]`` internal class ids; scores: ``[N]``.
        masks: ``[H, W, N]`` masks (bool or 0/1), or `SparseMasks`.

    Returns:
        list of dicts with "image_id", "category_id", "bbox" ``[x, y, w, h]``,
        "score" and "segmentation" (a pycocotools RLE), for ``COCO.loadRes``.

    Raises:
        ValueError: more than one image id, or arrays of different lengths.
    """
    if rois is None:
        return []
    if len(image_ids) != 1:
        raise ValueError(f"build_coco_results takes one image's detections and its id as a "
                         f"one-element list, got {len(image_ids)} ids")
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    class_ids, scores = np.asarray(class_ids).reshape(-1), np.asarray(scores).reshape(-1)
    sparse = as_sparse_masks(masks, "masks")
    if not rois.shape[0] == class_ids.shape[0] == scores.shape[0] == sparse.count:
        raise ValueError(f"rois, class_ids, scores and masks must hold the same detections, "
                         f"got {rois.shape[0]}, {class_ids.shape[0]}, {scores.shape[0]} and "
                         f"{sparse.count}")
    unknown = sorted({int(c) for c in class_ids if not 0 < int(c) < dataset.num_classes})
    if unknown:
        raise ValueError(f"class ids {unknown} are not classes of the dataset (1.."
                         f"{dataset.num_classes - 1}): the model's NUM_CLASSES differs from "
                         f"the dataset's {dataset.num_classes}")
    rles = coco_rles(sparse)
    results = []
    for roi, class_id, score, rle in zip(np.around(rois, 1), class_ids, scores, rles):
        results.append({
            "image_id": image_ids[0],
            "category_id": dataset.get_source_class_id(int(class_id), "coco"),
            "bbox": [float(roi[1]), float(roi[0]), float(roi[3] - roi[1]),
                     float(roi[2] - roi[0])],
            "score": float(score),
            "segmentation": rle,
        })
    return results


def evaluate_coco(model, dataset, coco, eval_type="bbox", limit=0, image_ids=None):
    """COCO AP of `model` on `dataset` with pycocotools' COCOeval (Matterport's function).

    Args:
        model: an inference-mode `MaskRCNN` (one image per batch).
        dataset: the prepared dataset `coco` was loaded with.
        coco: the ``COCO`` object (``load_coco(..., return_coco=True)``).
        eval_type: "bbox" or "segm".
        limit: evaluate the first `limit` images (0: all).
        image_ids: internal image ids to evaluate (default: all of the dataset's).

    Returns:
        the ``COCOeval`` after ``summarize()`` (``.stats``: AP, AP50, AP75, ...),
        or None when the model detected nothing (pycocotools cannot load an
        empty result list; every AP is then 0).
    """
    from pycocotools.cocoeval import COCOeval

    if eval_type not in ("bbox", "segm"):
        raise ValueError(f"eval_type must be 'bbox' or 'segm', got {eval_type!r}")
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    if limit:
        image_ids = image_ids[:limit]
    coco_image_ids = [dataset.image_info[i]["id"] for i in image_ids]
    t_prediction, t_start, results = 0.0, time.time(), []
    for i, image_id in enumerate(image_ids):
        image = dataset.load_image(image_id)
        t = time.time()
        r = model.detect([image], verbose=0)[0]
        t_prediction += time.time() - t
        results.extend(build_coco_results(dataset, coco_image_ids[i:i + 1], r["rois"],
                                          r["class_ids"], r["scores"], r["masks"]))
    per_image = t_prediction / max(1, len(image_ids))
    print(f"Prediction time: {t_prediction:.1f}s. Average {per_image:.2f}s/image")
    if not results:
        print(f"no detections on the {len(image_ids)} images: every AP is 0")
        return None
    coco_eval = COCOeval(coco, coco.loadRes(results), eval_type)
    coco_eval.params.imgIds = coco_image_ids
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    print(f"Total time: {time.time() - t_start:.1f}s")
    return coco_eval


# ------------------------------------------------------------------- command line
def _bool(text):
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes", "y"):
        return True
    if lowered in ("false", "0", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def build_parser():
    p = argparse.ArgumentParser(description="Train Mask R-CNN on MS COCO (Matterport's sample).")
    p.add_argument("command", metavar="<command>", choices=("train", "evaluate"),
                   help="'train' or 'evaluate' on MS COCO")
    p.add_argument("--dataset", required=True, metavar="/path/to/coco/",
                   help="directory of the MS-COCO dataset")
    p.add_argument("--year", default=DEFAULT_DATASET_YEAR, metavar="<year>",
                   help="year of the MS-COCO dataset (2014 or 2017) (default=2014)")
    p.add_argument("--model", required=True, metavar="/path/to/weights.h5",
                   help="path to a weights .h5 file, or 'coco', 'imagenet', 'last', 'none'")
    p.add_argument("--logs", default=DEFAULT_LOGS_DIR, metavar="/path/to/logs/",
                   help="logs and checkpoints directory (default=logs/)")
    p.add_argument("--limit", type=int, default=500, metavar="<image count>",
                   help="images to use for evaluation (default=500)")
    p.add_argument("--download", type=_bool, default=False, metavar="<True|False>",
                   help="automatically download and unzip MS-COCO files (default=False)")
    p.add_argument("--eval-type", choices=("bbox", "segm"), default="bbox",
                   help="evaluate: box AP (Matterport's) or mask AP")
    p.add_argument("--epochs", type=stage_epochs(3), default=STAGE_EPOCHS, metavar="H,F,A",
                   help="train: the last epoch of the heads, 4+ and all-layers stages "
                        "(default 40,120,160)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="Config.STEPS_PER_EPOCH (default 1000)")
    p.add_argument("--validation-steps", type=int, default=None,
                   help="Config.VALIDATION_STEPS (default 50)")
    p.add_argument("--backbone", default=None, help="Config.BACKBONE (default resnet101)")
    p.add_argument("--image-size", type=int, default=None,
                   help="square inputs of this side (IMAGE_MIN_DIM = IMAGE_MAX_DIM; "
                        "default 800/1024)")
    return p


def make_config(args, inference=False, num_classes=CocoConfig.NUM_CLASSES):
    """CocoConfig with the command line's settings and the data's class count (one image per
    batch to evaluate)."""
    attrs = dict(run_size_settings(args), NUM_CLASSES=num_classes)
    if args.image_size is not None:
        attrs.update(IMAGE_MIN_DIM=args.image_size, IMAGE_MAX_DIM=args.image_size)
    if inference:     # Matterport's evaluation settings
        attrs.update(GPU_COUNT=1, IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0)
    return type("InferenceConfig" if inference else "TrainConfig", (CocoConfig,), attrs)()


def load_start_weights(model, spec):
    """--model: 'coco', 'imagenet', 'last', 'none' or a path (see load_sample_weights)."""
    try:
        print(sample_weights_line(load_sample_weights(model, spec, coco_path=COCO_MODEL_PATH)))
    except (FileNotFoundError, ValueError, OSError) as error:
        raise SystemExit(f"--model={spec}: {error}") from None


def load_subsets(dataset_dir, subsets, year, download, return_coco=False):
    """The prepared dataset of `subsets` (and the last one's COCO object if return_coco)."""
    dataset = CocoDataset()
    coco = None
    try:
        for subset in subsets:
            coco = dataset.load_coco(dataset_dir, subset, year=year, return_coco=return_coco,
                                     auto_download=download)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"--dataset={dataset_dir} --year={year}: {error}") from None
    dataset.prepare()
    return dataset, coco


def main(argv=None):
    args = build_parser().parse_args(argv)
    print("Command:", args.command, "\nModel:", args.model, "\nDataset:", args.dataset,
          "\nYear:", args.year, "\nLogs:", args.logs, "\nAuto Download:", args.download)
    year = str(args.year)
    val_subset = "val" if year == "2017" else "minival"
    inference = args.command == "evaluate"
    # The data first: a wrong --dataset ends the command before a model is built.
    if inference:
        dataset_val, coco = load_subsets(args.dataset, (val_subset,), year, args.download,
                                         return_coco=True)
    else:
        train_subsets = ("train", "valminusminival") if year == "2014" else ("train",)
        dataset_train, _ = load_subsets(args.dataset, train_subsets, year, args.download)
        dataset_val, _ = load_subsets(args.dataset, (val_subset,), year, args.download)
        if dataset_train.class_names != dataset_val.class_names:
            raise SystemExit(f"--dataset={args.dataset}: the training and validation files "
                             f"have other categories: {dataset_train.class_names[1:]} and "
                             f"{dataset_val.class_names[1:]}")
    # CocoConfig's 81 classes are COCO's; a COCO-format set of other categories sets its own.
    num_classes = dataset_val.num_classes
    if num_classes != CocoConfig.NUM_CLASSES:
        print(f"NUM_CLASSES = {num_classes}: the data's {num_classes - 1} categories "
              f"(CocoConfig has COCO's 80)")
    config = make_config(args, inference=inference, num_classes=num_classes)
    config.display()
    model = modellib.MaskRCNN(mode="inference" if inference else "training", config=config,
                              model_dir=args.logs)
    load_start_weights(model, args.model)

    if inference:
        count = min(args.limit, dataset_val.num_images) if args.limit else dataset_val.num_images
        print(f"Running COCO evaluation on {count} images.")
        return evaluate_coco(model, dataset_val, coco, args.eval_type, limit=args.limit)
    augmentation = Fliplr(0.5)
    random_start = args.model.lower() == "none"
    lr = config.LEARNING_RATE
    stages = (("Training network heads", "heads", lr),
              ("Fine tune Resnet stage 4 and up", "4+", lr),
              ("Fine tune all layers", "all", lr / 10))
    for (title, layers, rate), end in zip(stages, args.epochs):
        if end <= model.epoch:     # resumed past this stage (Keras' fit did nothing there)
            print(f"{title}: done (the model has trained {model.epoch} epochs)")
            continue
        print(title)
        model.train(dataset_train, dataset_val, learning_rate=rate, epochs=end,
                    layers="all" if random_start else layers, augmentation=augmentation)
    return model

if __name__ == "__main__":
    main()
