r"""Matterport's ``samples/nucleus/nucleus.py`` on mrcnn: DSB 2018 nuclei, its module and commands.

The Kaggle layout under ``--dataset``: ``stage1_train/<id>/images/<id>.png`` with
``masks/*.png``, ``stage1_test/``, ``stage2_test/``. Matterport's commands::

    python3 samples/nucleus/nucleus.py train --dataset=/path/to/dataset --subset=train \
        --weights=imagenet
    python3 samples/nucleus/nucleus.py train --dataset=/path/to/dataset --subset=train \
        --weights=last
    python3 samples/nucleus/nucleus.py detect --dataset=/path/to/dataset \
        --subset=stage1_test --weights=last

``detect`` writes ``results/nucleus/submit_<time>/submit.csv`` (``ImageId,EncodedPixels``,
column-major runs, overlaps given to the higher score) and a picture per image. The module
is imported as Matterport's notebooks did (``from samples.nucleus import nucleus``, the
repository root on ``sys.path``): `NucleusConfig`, `NucleusInferenceConfig`,
`NucleusDataset.load_nucleus(dataset_dir, subset)`, `train`, `detect`, `rle_encode`,
`rle_decode`, `mask_to_rle`.

The "val" subset is `VAL_IMAGE_IDS` (set it to Matterport's list of 25 stage1_train ids to
get its split); by default it is 25 ids of stage1_train chosen by a hash of the id (one in
five on a smaller folder), the same on every machine. Matterport's augmentation used
imgaug; here it is flips and 90-degree turns from `mrcnn.data.augment` (pass
``augmentation=`` to `train` for more). ``samples/nucleus/train.py`` is this library's own
recipe for DSB data (scaled inputs, tiled inference).

Added to Matterport's: ``--weights=none``, ``--epochs H,A`` (the heads' and all layers'
last epochs, default 20,40), ``--steps-per-epoch``, ``--backbone`` and ``--image-size`` for
small runs; missing weights and folders end the command with a message.
"""

import argparse
import datetime
import hashlib
import os
import sys

import numpy as np

# This checkout's library first, installed or not (Matterport's samples append their
# ROOT_DIR the same way): `python3 samples/...` then runs the code beside the script.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mrcnn import model as modellib
from mrcnn.cli_settings import run_size_settings, stage_epochs
from mrcnn.config import Config
from mrcnn.data import rle as rle_codec
from mrcnn.data.augment import Compose, Fliplr, Flipud, Rot90
from mrcnn.data.boxes import extract_bboxes
from mrcnn.datasets import nucleus as nucleus_files
from mrcnn.inference.postprocess import remove_overlaps
from mrcnn.inference.submission import submission_rows, write_submission
from mrcnn.inference.tiling import TiledModel
from mrcnn.weights import load_sample_weights, sample_weights_line

DEFAULT_LOGS_DIR = os.path.join(ROOT, "logs")
RESULTS_DIR = os.path.join(ROOT, "results", "nucleus")
# Where Matterport kept the COCO-trained weights; found there first by --weights=coco.
COCO_WEIGHTS_PATH = os.path.join(ROOT, "mask_rcnn_coco.h5")
SUBSETS = ("train", "val", "stage1_train", "stage1_test", "stage2_test")
# The validation ids within stage1_train: None picks VAL_COUNT by a hash of the id.
VAL_IMAGE_IDS = None
VAL_COUNT = 25


class NucleusConfig(Config):
    """Matterport's configuration for training on the nucleus segmentation dataset."""

    NAME = "nucleus"
    IMAGES_PER_GPU = 6
    NUM_CLASSES = 1 + 1          # background + nucleus
    STEPS_PER_EPOCH = (657 - VAL_COUNT) // IMAGES_PER_GPU
    VALIDATION_STEPS = max(1, VAL_COUNT // IMAGES_PER_GPU)
    DETECTION_MIN_CONFIDENCE = 0
    BACKBONE = "resnet50"
    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    IMAGE_MIN_SCALE = 2.0
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 2000
    RPN_NMS_THRESHOLD = 0.9
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    TRAIN_ROIS_PER_IMAGE = 128
    MAX_GT_INSTANCES = 200
    DETECTION_MAX_INSTANCES = 400
    MEAN_PIXEL = np.array([43.53, 39.56, 48.22])
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)


class NucleusInferenceConfig(NucleusConfig):
    """Matterport's inference settings, for a fixed model input.

    Matterport ran each image whole at its own size ("pad64": at least 512 px on the short
    side and at least twice the original, i.e. x2 for every DSB 2018 size); here every image
    is scaled x2 (`IMAGE_SCALE`) and runs through a 1024 x 1024 input, in overlapping tiles
    when it is larger (`detect` wraps the model in `mrcnn.inference.tiling.TiledModel`).
    """

    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "none"
    IMAGE_MIN_DIM = None
    IMAGE_MIN_SCALE = 0
    IMAGE_SCALE = 2.0
    IMAGE_MAX_DIM = 1024
    IMAGE_SHAPE = [1024, 1024, 3]
    RPN_NMS_THRESHOLD = 0.7


def val_image_ids(image_ids):
    """The validation ids among stage1_train's `image_ids` (`VAL_IMAGE_IDS` when set)."""
    if VAL_IMAGE_IDS is not None:
        return list(VAL_IMAGE_IDS)
    count = min(VAL_COUNT, max(1, len(image_ids) // 5))
    ranked = sorted(image_ids, key=lambda i: hashlib.sha1(str(i).encode()).hexdigest())
    return sorted(ranked[:count])


class NucleusDataset(nucleus_files.NucleusDataset):
    """`mrcnn.datasets.nucleus.NucleusDataset` with Matterport's ``load_nucleus(dir, subset)``."""

    def load_nucleus(self, dataset_dir, subset):
        """Load a subset: "train" / "val" (stage1_train without / with the validation ids),
        "stage1_train", "stage1_test" or "stage2_test" under `dataset_dir`.

        Raises:
            ValueError: an unknown subset, or a `VAL_IMAGE_IDS` id not in stage1_train.
            FileNotFoundError: the subset's folder is missing.
        """
        if subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
        root = os.path.join(os.fspath(dataset_dir), "stage1_train" if subset in ("train", "val")
                            else subset)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"nucleus subset {subset!r}: folder {root!r} not found "
                                    f"(the Kaggle layout: <dataset>/stage1_train/<id>/images/)")
        ids = sorted(name for name in os.listdir(root)
                     if not name.startswith(".") and os.path.isdir(os.path.join(root, name)))
        if subset in ("train", "val"):
            val = set(val_image_ids(ids))
            unknown = sorted(val - set(ids))
            if unknown:
                raise ValueError(f"VAL_IMAGE_IDS holds ids that are not in {root}: {unknown[:5]}")
            ids = [i for i in ids if (i in val) == (subset == "val")]
        super().load_nucleus(root, image_ids=ids)


def train(model, dataset_dir, subset, epochs=(20, 40), augmentation=None):
    """Train on `subset` ("train") validating on "val": the heads to epoch 20, then all layers
    to epoch 40 (Matterport's schedule), with flips and 90-degree turns by default."""
    dataset_train = NucleusDataset()
    dataset_train.load_nucleus(dataset_dir, subset)
    dataset_train.prepare()
    dataset_val = NucleusDataset()
    dataset_val.load_nucleus(dataset_dir, "val")
    dataset_val.prepare()
    if augmentation is None:
        augmentation = Compose([Fliplr(0.5), Flipud(0.5), Rot90()])
    heads, everything = epochs
    stages = (("Train network heads", heads, "heads"), ("Train all layers", everything, "all"))
    for title, end, layers in stages:
        if end <= model.epoch:          # resumed past this stage
            print(f"{title}: done (the model has trained {model.epoch} epochs)")
            continue
        print(title)
        model.train(dataset_train, dataset_val, learning_rate=model.config.LEARNING_RATE,
                    epochs=end, layers=layers, augmentation=augmentation)


# ------------------------------------------------------------------- encoding
def rle_encode(mask):
    """Column-major run-length string of a 2-D mask (DSB 2018's format)."""
    return rle_codec.rle_encode(mask, order="F")


def rle_decode(rle, shape):
    """Bool mask of `shape` from a column-major run-length string."""
    return rle_codec.rle_decode(rle, shape, order="F")


def _rows(image_id, mask, scores):
    """Submission rows of one image, each pixel given to its highest-scored instance."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be [H, W, N], got shape {mask.shape}")
    n = mask.shape[-1]
    kept = remove_overlaps({"rois": extract_bboxes(mask), "class_ids": np.ones(n, np.int32),
                            "scores": np.asarray(scores, np.float32), "masks": mask})
    return submission_rows(image_id, kept["masks"], order="F")


def mask_to_rle(image_id, mask, scores):
    """Submission lines ``"<id>,<rle>"`` of one image's masks (Matterport's helper): one per
    instance, overlapping pixels given to the higher score; ``"<id>,"`` for none."""
    return "\n".join(f"{i},{r}" for i, r in _rows(image_id, mask, scores))


def detect(model, dataset_dir, subset):
    """Predict `subset` and write ``submit.csv`` and a picture per image into a new folder of
    `RESULTS_DIR`; return that folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mrcnn import visualize

    print(f"Running on {dataset_dir}")
    dataset = NucleusDataset()
    dataset.load_nucleus(dataset_dir, subset)
    dataset.prepare()
    submit_dir = os.path.join(RESULTS_DIR, f"submit_{datetime.datetime.now():%Y%m%dT%H%M%S}")
    os.makedirs(submit_dir)
    predictor = TiledModel(model)          # images of any size, in tiles of the model input
    rows = []
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        r = predictor.detect([image], verbose=0)[0]
        source_id = dataset.image_info[image_id]["id"]
        rows.extend(_rows(source_id, r["masks"], r["scores"]))
        visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"],
                                    dataset.class_names, r["scores"], show_bbox=False,
                                    show_mask=False, title="Predictions")
        plt.savefig(os.path.join(submit_dir, f"{source_id}.png"))
        plt.close("all")
    write_submission(os.path.join(submit_dir, "submit.csv"), rows, order="F")
    print("Saved to", submit_dir)
    return submit_dir


# ------------------------------------------------------------------- command line
def build_parser():
    p = argparse.ArgumentParser(description="Mask R-CNN for nuclei counting and segmentation")
    p.add_argument("command", metavar="<command>", choices=("train", "detect"),
                   help="'train' or 'detect'")
    p.add_argument("--dataset", required=True, metavar="/path/to/dataset/",
                   help="root directory of the dataset")
    p.add_argument("--weights", required=True, metavar="/path/to/weights.h5",
                   help="path to a weights .h5 file, or 'coco', 'imagenet', 'last', 'none'")
    p.add_argument("--logs", default=DEFAULT_LOGS_DIR, metavar="/path/to/logs/",
                   help="logs and checkpoints directory (default=logs/)")
    p.add_argument("--subset", metavar="Dataset sub-directory",
                   help="subset of the dataset to run prediction on")
    p.add_argument("--epochs", type=stage_epochs(2), default=(20, 40), metavar="H,A",
                   help="train: the heads' and all layers' last epochs (default 20,40)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="Config.STEPS_PER_EPOCH (default 105)")
    p.add_argument("--backbone", default=None, help="Config.BACKBONE (default resnet50)")
    p.add_argument("--image-size", type=int, default=None,
                   help="training crops (default 512) and the inference input (default 1024) "
                        "of this side")
    return p


def make_config(args, inference=False):
    attrs = run_size_settings(args)
    if args.image_size is not None and inference:
        attrs.update(IMAGE_MAX_DIM=args.image_size, IMAGE_SHAPE=[args.image_size] * 2 + [3])
    elif args.image_size is not None:
        attrs.update(IMAGE_MIN_DIM=args.image_size, IMAGE_MAX_DIM=args.image_size)
    base = NucleusInferenceConfig if inference else NucleusConfig
    return type("RunConfig", (base,), attrs)()


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "detect" and not args.subset:
        raise SystemExit("detect needs --subset (e.g. stage1_test)")
    subset = args.subset or "train"
    print("Weights:", args.weights, "\nDataset:", args.dataset, "\nSubset:", subset,
          "\nLogs:", args.logs)
    # The data first: a wrong --dataset or --subset ends the command before a model is built.
    try:
        for name in ((subset, "val") if args.command == "train" else (subset,)):
            NucleusDataset().load_nucleus(args.dataset, name)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"--dataset={args.dataset} --subset={subset}: {error}") from None
    inference = args.command == "detect"
    config = make_config(args, inference=inference)
    config.display()
    model = modellib.MaskRCNN(mode="inference" if inference else "training", config=config,
                              model_dir=args.logs)
    try:
        print(sample_weights_line(load_sample_weights(model, args.weights,
                                                      coco_path=COCO_WEIGHTS_PATH)))
    except (FileNotFoundError, ValueError, OSError) as error:
        raise SystemExit(f"--weights={args.weights}: {error}") from None
    if inference:
        return detect(model, args.dataset, subset)
    return train(model, args.dataset, subset, epochs=args.epochs)


if __name__ == "__main__":
    main()
