"""Train Mask R-CNN for cell instance segmentation (Sartorius 2021 format).

With no arguments it runs on an embedded default: a generated data set in the
Sartorius format (grayscale 520x704 PNGs + train.csv with RLE annotations and
three cell types), written once to a cache folder, and ends by printing the
validation mAP-IoU (the competition metric) next to an untrained model's:

    python samples/cell/train.py                      # ~10 minutes on 2 CPU cores

On the Kaggle data (train.csv, train/*.png, optional train_semi_supervised/):

    python samples/cell/train.py --data /kaggle/input/sartorius-cell-instance-segmentation \\
        --backbone efficientnetv2-b0 --weights imagenet --epochs 30 --image-mode pad

Checkpoints, config.json and logs go to --model-dir; rerun with --weights last
to resume. samples/cell/predict.py turns a checkpoint into submission.csv.
"""

import argparse
import os
import sys
import time

import numpy as np

from mrcnn.config import Config
from mrcnn.datasets.folds import kfold_split
from mrcnn.datasets.sartorius import SartoriusDataset, read_sartorius_csv
from mrcnn.datasets.synthetic_cells import ensure_synthetic_sartorius
from mrcnn.evaluation import evaluate
from mrcnn.inference import SARTORIUS_MIN_AREA, PostprocessConfig
import mrcnn.model as modellib

DEFAULT_CACHE = os.path.join(os.environ.get("MRCNN_CACHE_DIR", os.path.expanduser("~/.cache/mrcnn")),
                             "synthetic_sartorius")


class CellConfig(Config):
    """Sartorius cells: 520x704 grayscale images, up to ~790 cells each."""
    NAME = "cell"
    NUM_CLASSES = 1 + 3  # astro, cort, shsy5y
    IMAGES_PER_GPU = 1
    BACKBONE = "small-cnn"
    # Two sizes per level, 4-6x the level's stride: 72% of the synthetic cells
    # get an anchor at IoU >= 0.7 (9% with Matterport-style 8..128, one per
    # level); see mrcnn.data.anchors.anchor_coverage.
    RPN_ANCHOR_SCALES = ((16, 23), (32, 45), (64, 91), (128, 181), (256, 362))
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    PRE_NMS_LIMIT = 3000
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 1000
    TRAIN_ROIS_PER_IMAGE = 128
    ROI_POSITIVE_RATIO = 0.33
    MAX_GT_INSTANCES = 256
    DETECTION_MAX_INSTANCES = 400
    DETECTION_MIN_CONFIDENCE = 0.5
    DETECTION_NMS_THRESHOLD = 0.3
    MASK_SHAPE = [28, 28]
    MINI_MASK_SHAPE = (56, 56)
    TOP_DOWN_PYRAMID_SIZE = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    MEAN_PIXEL = np.array([128.0, 128.0, 128.0])
    OPTIMIZER = "AdamW"
    LEARNING_RATE = 0.002
    N_WARMUP_STEPS = 50
    LR_SCHEDULE = "cosine"
    TRAIN_BN = True
    WEIGHT_DECAY = 1e-4
    STEPS_PER_EPOCH = 60
    VALIDATION_STEPS = 4
    # "crop" mode trains on random crops; inference uses the full padded image.
    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 704


def parse_list(text, cast=float):
    return [cast(v) for v in text.split(",") if v.strip()]


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None,
                   help="Sartorius data folder (train.csv, train/*.png). Default: a generated "
                        f"data set cached in {DEFAULT_CACHE} (or $MRCNN_CACHE_DIR)")
    p.add_argument("--model-dir", default="logs",
                   help="checkpoints, config.json and logs go to MODEL_DIR/cell<timestamp>/ "
                        "(default ./logs)")
    p.add_argument("--epochs", type=int, default=8, help="epochs to train (default 8)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="training steps per epoch (default 60)")
    p.add_argument("--validation-steps", type=int, default=None,
                   help="validation batches after each epoch (default 4)")
    p.add_argument("--backbone", default=None,
                   help="backbone: small-cnn (default, trains from scratch on a CPU), resnet50, "
                        "resnet101, efficientnetv2-b0 ... -l")
    p.add_argument("--first-stride", type=int, choices=(1, 2), default=2,
                   help="stride of the backbone's first layer; 1 doubles feature resolution "
                        "for small cells (seed 003)")
    p.add_argument("--weights", default="none",
                   help="initial weights: none, coco, imagenet, last (resume the newest run "
                        "in --model-dir) or a path to an .h5 file")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default 0.002 with AdamW, 0.01 with SGD)")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw",
                   help="AdamW (default; fast from scratch) or SGD with momentum (Matterport)")
    p.add_argument("--layers", default="all",
                   help="layers to train: heads, 3+, 4+, 5+, all, or a regex (default all)")
    p.add_argument("--image-mode", choices=("crop", "pad"), default="crop",
                   help="crop: train on random --crop-size crops (seed 003); pad: whole images "
                        "padded to 576x704 (seed 000). Inference always uses whole images.")
    p.add_argument("--crop-size", type=int, default=256, help="crop size (multiple of 64)")
    p.add_argument("--mask-shape", type=int, choices=(28, 56, 112), default=28,
                   help="mask head output size (28N x 28N; seed 000 used 56)")
    p.add_argument("--anchor-scales", default=None,
                   help="anchor sizes per pyramid level P2..P6, comma-separated; several sizes "
                        "per level joined by ':' (default 16:23,32:45,64:91,128:181,256:362; "
                        "seed 004 used 4..256 over its levels)")
    p.add_argument("--anchor-ratios", default="0.5,1,2",
                   help="anchor width/height ratios (seed 004 used 0.2..5)")
    p.add_argument("--cache", choices=("none", "memory", "disk"), default="memory",
                   help="LZ4 sample cache (default memory)")
    p.add_argument("--classes", choices=("cell-type", "single"), default="cell-type",
                   help="one class per cell type (astro, cort, shsy5y) or a single 'cell' class")
    p.add_argument("--folds", type=int, default=5, help="k of the k-fold split by image")
    p.add_argument("--fold", type=int, default=0, help="which fold to validate on")
    p.add_argument("--images", type=int, default=None,
                   help="use only the first N images (quick experiments)")
    p.add_argument("--synthetic-images", type=int, default=40,
                   help="size of the generated default data set")
    p.add_argument("--mixed-precision", action="store_true",
                   help="16-bit convolutions (Config.MIXED_PRECISION): float16 on a GPU, "
                        "bfloat16 on a CPU")
    p.add_argument("--workers", type=int, default=0, help="data-loader processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pseudo-labels", default=None, metavar="CSV",
                   help="also train on these pseudo-labels (pseudo_label.py; train.csv format) "
                        "of the images in <data>/train_semi_supervised/")
    p.add_argument("--scale", type=float, default=1.0,
                   help="resize every image by this factor before the resize mode, at "
                        "training and inference (Config.IMAGE_SCALE), e.g. 2 for small cells")
    p.add_argument("--scale-range", type=parse_scale_range, default=None, metavar="LO,HI",
                   help="multi-scale training: each sample resized by a random factor in "
                        "[LO, HI] (Config.IMAGE_SCALE_RANGE); evaluation uses --scale")
    return p


def parse_scale_range(text):
    """'LO,HI' -> (lo, hi) for --scale-range (0 < lo <= hi)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LO,HI (two numbers, e.g. 1.5,2.5), got {text!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"needs 0 < LO <= HI, got {text!r}")
    return low, high


def parse_anchor_scales(text):
    """'16:23,32:45,...' -> ((16, 23), (32, 45), ...); '8,16,...' -> (8, 16, ...)."""
    if not text:
        return CellConfig.RPN_ANCHOR_SCALES
    levels = [level.strip() for level in text.split(",") if level.strip()]
    try:
        sizes = [tuple(int(v) for v in level.split(":")) for level in levels]
    except ValueError:
        raise SystemExit(f"--anchor-scales: expected integers like 16:23,32:45,...; "
                         f"got {text!r}") from None
    return tuple(s[0] if len(s) == 1 else s for s in sizes)


def make_config(args, class_names):
    attrs = {"NUM_CLASSES": len(class_names), "CLASS_NAMES": list(class_names), "BACKBONE_FIRST_STRIDE": args.first_stride,
             "MASK_SHAPE": [args.mask_shape] * 2,
             "MINI_MASK_SHAPE": (max(56, args.mask_shape),) * 2,
             "RPN_ANCHOR_SCALES": parse_anchor_scales(args.anchor_scales),
             "OPTIMIZER": {"adamw": "AdamW", "sgd": "SGD"}[args.optimizer],
             "LEARNING_RATE": args.lr or (0.002 if args.optimizer == "adamw" else 0.01),
             "RPN_ANCHOR_RATIOS": parse_list(args.anchor_ratios),
             "CACHE": {"none": False, "memory": True, "disk": "disk"}[args.cache],
             "WORKERS": args.workers}
    if args.backbone:
        attrs["BACKBONE"] = args.backbone
    elif args.data:
        attrs["BACKBONE"] = "resnet50"
    if args.mixed_precision:
        attrs["MIXED_PRECISION"] = "float16" if _has_gpu() else "bfloat16"
    if args.steps_per_epoch:
        attrs["STEPS_PER_EPOCH"] = args.steps_per_epoch
    if args.validation_steps is not None:
        attrs["VALIDATION_STEPS"] = args.validation_steps
    if args.image_mode == "pad":
        attrs.update(IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=[576, 704, 3])
    else:
        attrs.update(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=args.crop_size)
    attrs.update(IMAGE_SCALE=args.scale, IMAGE_SCALE_RANGE=args.scale_range)
    scaled_shape = [-(-round(520 * args.scale) // 64) * 64,   # 520x704 images, scaled
                    -(-round(704 * args.scale) // 64) * 64, 3]
    if args.image_mode == "pad":
        attrs["IMAGE_SHAPE"] = scaled_shape
    train_config = type("CellTrainConfig", (CellConfig,), attrs)()
    infer_attrs = dict(attrs, IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=[576, 704, 3])
    infer_attrs["IMAGE_SHAPE"] = scaled_shape
    infer_config = type("CellInferenceConfig", (CellConfig,), infer_attrs)()
    return train_config, infer_config


def load_data(args):
    data_dir = args.data
    if data_dir is None:
        t = time.time()
        data_dir = ensure_synthetic_sartorius(DEFAULT_CACHE, n_images=args.synthetic_images,
                                              seed=args.seed)
        print(f"embedded default data: {data_dir} ({time.time() - t:.1f}s)")
    records = read_sartorius_csv(os.path.join(data_dir, "train.csv"))
    ids = sorted(records)[:args.images] if args.images else sorted(records)
    groups = [records[i].cell_type for i in ids]
    train_ids, val_ids = kfold_split(ids, k=args.folds, fold=args.fold, seed=args.seed,
                                     groups=groups)
    mode = "cell_type" if args.classes == "cell-type" else "single"
    train, val = SartoriusDataset(), SartoriusDataset()
    train.load_sartorius(data_dir, image_ids=train_ids, class_mode=mode)
    val.load_sartorius(data_dir, image_ids=val_ids, class_mode=mode)
    if getattr(args, "pseudo_labels", None):       # training images only, never validation
        train.load_pseudo_labels(args.pseudo_labels,
                                 os.path.join(data_dir, "train_semi_supervised"), class_mode=mode)
    train.prepare()
    val.prepare()
    return train, val


def postprocess_config(class_names):
    min_area = {n: a for n, a in SARTORIUS_MIN_AREA.items() if n in class_names}
    return PostprocessConfig(min_score=0.5, min_area=min_area or 75)


def main(argv=None):
    args = build_parser().parse_args(argv)
    t0 = time.time()
    train, val = load_data(args)
    config, infer_config = make_config(args, train.class_names)
    print(f"train images: {train.num_images}, validation images: {val.num_images}, "
          f"classes: {train.class_names[1:]}, backbone: {config.BACKBONE}")
    model = modellib.MaskRCNN("training", config, args.model_dir)
    print(f"model dir: {os.path.abspath(args.model_dir)} (run folder {model.log_dir})")
    if args.weights != "none":
        exclude = "heads" if args.weights in ("coco",) else None
        report = model.load_weights(args.weights, by_name=True, exclude=exclude)
        print(f"loaded {len(report['loaded'])} layers from {args.weights}; resuming after "
              f"epoch {model.epoch}")
    if model.epoch >= args.epochs:
        print(f"already trained {model.epoch} epochs (>= --epochs {args.epochs}); evaluating")
    else:
        model.train(train, val, config.LEARNING_RATE, args.epochs, args.layers, seed=args.seed)
    train_s = time.time() - t0

    post = postprocess_config(val.class_names)
    untrained = modellib.MaskRCNN("inference", infer_config, args.model_dir)
    base = evaluate(untrained, val, postprocess=post, verbose=0)
    inference = modellib.MaskRCNN("inference", infer_config, args.model_dir)
    inference.load_weights(model.find_last())
    scores = evaluate(inference, val, postprocess=post, verbose=1)
    print(f"\nvalidation mAP-IoU={scores['map_iou']:.4f} (untrained model: "
          f"{base['map_iou']:.4f}); total time {time.time() - t0:.0f}s "
          f"(data + training {train_s:.0f}s)")
    print(f"checkpoint: {model.find_last()}")
    return scores


def _has_gpu():
    import keras
    try:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            return bool(tf.config.list_physical_devices("GPU"))
        if keras.backend.backend() == "jax":
            import jax
            return jax.default_backend() != "cpu"
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
