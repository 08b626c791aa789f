"""Train Mask R-CNN for cell instance segmentation (Sartorius 2021 format).

With no arguments it runs on an embedded default: a generated data set in the
Sartorius format (grayscale 520x704 PNGs + train.csv with RLE annotations and
three cell types), written once to a cache folder, and ends by printing the
validation mAP-IoU (the competition metric) next to an untrained model's:

    python samples/cell/train.py                      # ~10 minutes on 2 CPU cores
    python samples/cell/train.py --devices 2          # data-parallel: 2 GPUs (or 2 virtual CPUs)

On the Kaggle data (train.csv, train/*.png, optional train_semi_supervised/):

    python samples/cell/train.py --data /kaggle/input/sartorius-cell-instance-segmentation \\
        --backbone efficientnetv2-b0 --init imagenet --epochs 30 --image-mode pad

Checkpoints, config.json, history.csv and logs go to --model-dir. --init
starts a new run from weights (coco, imagenet, a checkpoint of another run:
epoch 0, the whole schedule); --resume continues the newest run of this
config exactly (its folder, epoch, optimizer state). Every epoch scores the
validation fold (val_map_iou, val_mask_ap in history.csv); --keep best keeps
the best checkpoint by it. samples/cell/predict.py turns a checkpoint into
submission.csv.
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

import backbones

from mrcnn.cli_settings import (parse_loss_weights, parse_mean_pixel, parse_mini_mask,
                                parse_rpn_iou, parse_scale_range, parse_tta_set)
from mrcnn.config import Config
from mrcnn.data.anchors import dataset_anchor_scales
from mrcnn.data.fit import scaled_size
from mrcnn.data.augment import (Compose, Fliplr, Flipud, Rot90, cell_augmentation,
                                geometric_augmentation)
from mrcnn.data.image import dataset_image_shape, dataset_mean_pixel
from mrcnn.datasets.coco import CocoDataset
from mrcnn.datasets.folds import kfold_split
from mrcnn.datasets.sartorius import SartoriusDataset, read_sartorius_csv
from mrcnn.datasets.synthetic_cells import ensure_synthetic_sartorius
from mrcnn.distribute import cluster, use_devices
from mrcnn.evaluation import evaluate
from mrcnn.evaluation.epoch_score import EpochScore
from mrcnn.inference import OVERLAP_ORDERS, SARTORIUS_MIN_AREA, PostprocessConfig
from mrcnn.inference.tta import TTAModel, tta_input_shape
from mrcnn.training.precision import resolve
import mrcnn.model as modellib

DEFAULT_CACHE = os.path.join(os.environ.get("MRCNN_CACHE_DIR", os.path.expanduser("~/.cache/mrcnn")),
                             "synthetic_sartorius")


class CellConfig(Config):
    """Sartorius cells: 520x704 grayscale images, up to ~790 cells each."""
    NAME = "cell"
    NUM_CLASSES = 1 + 3  # astro, cort, shsy5y
    # Two crops per step (Matterport's default too). On the embedded data, at
    # equal images seen, 2 per step learn more than 1 (validation mAP-IoU,
    # seed 0: 6 epochs x 60 steps x 2 images 0.278, 12 x 60 x 1 image 0.249),
    # and a step of 2 takes 1.9x a step of 1 on 2 CPU cores (Intel Xeon, 256 mask-head
    # channels: 1.21 s / 0.64 s).
    IMAGES_PER_GPU = 2
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
    # Half Matterport's 256 mask-head channels: the head's four 3x3 convolutions were
    # three quarters of a training step's time on 2 CPU cores (2-core AMD EPYC: 2.07 ->
    # 1.06 s per step of 2 crops) for validation mAP-IoU 0.289 vs 0.292 (seed 0, same
    # machine) and 0.341 vs 0.366 (seed 1); --mask-channels 256 for Matterport's head.
    MASK_HEAD_CHANNELS = 128
    TOP_DOWN_PYRAMID_SIZE = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    MEAN_PIXEL = np.array([128.0, 128.0, 128.0])
    OPTIMIZER = "AdamW"
    LEARNING_RATE = 0.002
    N_WARMUP_STEPS = 50
    LR_SCHEDULE = "cosine"
    TRAIN_BN = True
    WEIGHT_DECAY = 1e-4
    # A soft Dice term (weight 3) beside the mask head's cross entropy: on the real nuclei
    # (benchmarks/real_nuclei.py, four held-out tiles) mean mAP-IoU 0.583 (two runs) ->
    # 0.603 (runs 0.621, 0.598, 0.591; Dice 1: 0.603, one run; Dice 10 below 3 on two tiles).
    # --loss-weights mrcnn_mask_dice_loss=0 for Matterport's five losses.
    LOSS_WEIGHTS = dict(Config.LOSS_WEIGHTS, mrcnn_mask_dice_loss=3.0)
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
    p.add_argument("--coco", nargs=3, default=None, metavar=("TRAIN_JSON", "VAL_JSON", "IMAGES"),
                   help="train on COCO-format annotations instead (LIVECell pretraining): the "
                        "training and validation JSON files and their image folder")
    p.add_argument("--model-dir", default="logs",
                   help="checkpoints, config.json and logs go to MODEL_DIR/cell<timestamp>/ "
                        "(default ./logs)")
    p.add_argument("--epochs", type=int, default=7, help="epochs to train (default 7)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="training steps per epoch (default 60)")
    p.add_argument("--images-per-gpu", type=int, default=None, metavar="N",
                   help="images per training step on each device (Config.IMAGES_PER_GPU; "
                        "default 2)")
    p.add_argument("--validation-steps", type=int, default=None,
                   help="validation batches after each epoch (default 4)")
    p.add_argument("--backbone", default=None,
                   help="backbone: small-cnn (default, trains from scratch on a CPU), resnet18, "
                        "resnet34, resnet50, resnet101, efficientnetv2-b0 ... -l")
    p.add_argument("--first-stride", type=int, choices=(1, 2), default=2,
                   help="stride of the backbone's first layer; 1 doubles feature resolution "
                        "for small cells (seed 003)")
    p.add_argument("--zero-init-residual", action=argparse.BooleanOptionalAction, default=None,
                   help="ResNet backbones: each residual block starts as the identity (its last "
                        "batch norm's gamma = 0). Default: on for resnet50/resnet101 trained from "
                        "random weights (no --init / --weights to start from), off otherwise; "
                        "--no-zero-init-residual gives Matterport's initialisation")
    p.add_argument("--init", default="none", metavar="none|coco|imagenet|PATH",
                   help="start a new run (epoch 0, new run folder, the whole learning-rate "
                        "schedule) from these weights: coco (heads excluded), imagenet, or a "
                        "checkpoint of another run (e.g. LIVECell pretraining; layers of other "
                        "shapes, such as the class heads, are skipped)")
    p.add_argument("--resume", nargs="?", const="last", default=None, metavar="last|best|PATH",
                   help="continue a run exactly: its folder, epoch and optimizer state; alone: "
                        "the newest checkpoint of this config under --model-dir. Later "
                        "checkpoints of that run are moved to <run>/abandoned-after-<epoch>-*/")
    p.add_argument("--weights", default="none",
                   help="older spelling: none/coco/imagenet = --init, last = --resume; a path "
                        "must be given to --init or --resume")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default 0.002 with AdamW, 0.01 with SGD)")
    p.add_argument("--lr-schedule", choices=("cosine", "step", "exponential", "constant"),
                   default="cosine", help="learning-rate schedule after the warm-up "
                   "(Config.LR_SCHEDULE; default cosine)")
    p.add_argument("--lr-decay-epochs", type=parse_epochs, default=(), metavar="E1,E2,...",
                   help="with --lr-schedule step: multiply the rate by --lr-decay-gamma after "
                        "these epochs (Config.LR_DECAY_EPOCHS), e.g. 20,25")
    p.add_argument("--lr-decay-gamma", type=float, default=0.1,
                   help="factor of each step decay (Config.LR_DECAY_GAMMA; default 0.1)")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw",
                   help="AdamW (default; fast from scratch) or SGD with momentum (Matterport)")
    p.add_argument("--layers", default="all",
                   help="layers to train: heads, 3+, 4+, 5+, all, or a regex (default all)")
    p.add_argument("--image-mode", choices=("crop", "pad"), default="crop",
                   help="crop: train on random --crop-size crops (seed 003); pad: whole images "
                        "padded to the largest image's size rounded up to 64 (576x704 on "
                        "Sartorius data; seed 000). Inference always uses whole images.")
    p.add_argument("--crop-size", type=int, default=256, help="crop size (multiple of 64)")
    p.add_argument("--augment", choices=("none", "flips", "geometric", "cell"), default="none",
                   help="training augmentation: none (default: on the earlier 8-epoch default run it "
                        "scored best, see samples/cell/README.md), flips (left-right, up-down "
                        "and 90-degree turns, 180 only for non-square inputs), geometric "
                        "(mrcnn.data.augment.geometric_augmentation, Cellpose's: also a random "
                        "scale 0.75-1.33 and a rotation by any angle) or cell "
                        "(mrcnn.data.augment.cell_augmentation, seed 002's: also a random scale "
                        "with the crop (crop mode), small rotations, brightness, contrast); "
                        "longer runs on real data need one")
    p.add_argument("--max-gt-instances", type=int, default=None,
                   help="ground-truth instances kept per training image (Config."
                        "MAX_GT_INSTANCES; default 256; Sartorius SH-SY5Y images reach ~790)")
    p.add_argument("--detection-max-instances", type=int, default=None,
                   help="detections kept per image (Config.DETECTION_MAX_INSTANCES; default 400)")
    p.add_argument("--mask-shape", type=int, choices=(28, 56, 112), default=28,
                   help="mask head output size (28N x 28N; seed 000 used 56)")
    p.add_argument("--mask-box-scale", type=float, default=None, metavar="S",
                   help="the mask head sees each box grown S times about its centre "
                        "(Config.MASK_BOX_SCALE, >= 1; default 1.0): masks reach past boxes "
                        "that came out too small")
    p.add_argument("--mask-channels", type=int, default=None, metavar="N",
                   help="channels of the mask head's convolutions (Config.MASK_HEAD_CHANNELS; "
                        "default 128, Matterport's 256 trains at half the speed on a CPU)")
    p.add_argument("--mini-mask", type=parse_mini_mask, default=None, metavar="SIZE|none",
                   help="store ground-truth masks as SIZE x SIZE mini masks in their boxes "
                        "(Matterport; default max(56, --mask-shape)) or 'none': full-resolution "
                        "masks, the mask targets cut from them (torchvision)")
    p.add_argument("--anchor-scales", default=None,
                   help="anchor sizes per pyramid level P2..P6, comma-separated; several sizes "
                        "per level joined by ':' (default 16:23,32:45,64:91,128:181,256:362; "
                        "seed 004 used 4..256 over its levels), or auto: fitted to the "
                        "training boxes (mrcnn.data.anchors.suggest_anchor_scales)")
    p.add_argument("--anchor-ratios", default="0.5,1,2",
                   help="anchor width/height ratios (seed 004 used 0.2..5)")
    p.add_argument("--rpn-iou", type=parse_rpn_iou, default=None, metavar="POS[,NEG]",
                   help="IoU with a cell at or above which an anchor is an RPN positive, and "
                        "below which a negative (Config.RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU; "
                        "default 0.7,0.3); small cells reach 0.7 with one or two anchors")
    p.add_argument("--loss-weights", type=lambda text: parse_loss_weights(
                       text, CellConfig.LOSS_WEIGHTS), default=None, metavar="NAME=W,...",
                   help="weights of the losses (Config.LOSS_WEIGHTS: 1 each, and 3 for "
                        "mrcnn_mask_dice_loss, a soft Dice term of the mask head; 0: off), "
                        "e.g. rpn_class_loss=0.5,rpn_bbox_loss=0.5")
    p.add_argument("--foreground-loss", type=int, choices=(0, 1, 2, 4), default=0, metavar="S",
                   help="a dense foreground loss on P2 against the masks read every S pixels "
                        "(Config.FOREGROUND_LOSS, FOREGROUND_STRIDE; 1: every pixel; default 0: "
                        "off, Matterport's five losses)")
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
                   help="16-bit convolutions (Config.MIXED_PRECISION): bfloat16 on GPUs of "
                        "compute capability >= 8.0 and on CPUs, float16 (with loss scaling) "
                        "on older GPUs (T4, P100)")
    p.add_argument("--precision", choices=("auto", "float32", "bfloat16", "float16"),
                   default=None,
                   help="Config.MIXED_PRECISION by name (default auto: bfloat16 on GPUs of "
                        "compute capability >= 8.0, TPUs and CPUs with fast bfloat16 for "
                        "ResNet / EfficientNetV2; float16 on older GPUs; float32 elsewhere). "
                        "float32 turns 16-bit convolutions off")
    p.add_argument("--score-every", type=int, default=None, metavar="N",
                   help="score the validation fold after every N epochs (mAP-IoU with the "
                        "post-processing of the final evaluation, COCO mask AP: val_map_iou, "
                        "val_mask_ap in history.csv and TensorBoard); 0: losses only. Default "
                        "1 with --data or --coco, 0 on the embedded data (its 8 minutes on 2 "
                        "CPU cores would grow by half)")
    p.add_argument("--keep", choices=("all", "best", "last"), default="all",
                   help="checkpoints kept: all (every epoch), best (the best by --monitor and "
                        "the newest, to resume from) or last (the newest)")
    p.add_argument("--monitor", default=None,
                   help="what ranks checkpoints (best.json, load_weights('best')): default "
                        "val_map_iou when scoring, else val_loss")
    p.add_argument("--patience", type=int, default=None, metavar="N",
                   help="stop when --monitor has not improved for N epochs")
    p.add_argument("--workers", type=int, default=0, help="data-loader processes")
    p.add_argument("--devices", type=int, default=None, metavar="N",
                   help="data-parallel training on N devices (GPU_COUNT=N, of all processes of "
                        "a job; each step takes N x IMAGES_PER_GPU images); without GPUs the "
                        "CPU is split into virtual devices (mrcnn.distribute.use_devices): "
                        "checks the mechanics, not faster")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mean-pixel", type=parse_mean_pixel, default=None,
                   metavar="auto|V|R,G,B",
                   help="pixel value subtracted from the images (Config.MEAN_PIXEL): auto, the "
                        "training images' per-channel mean, one gray value or R,G,B. Default "
                        "auto with --data or --coco (on real nuclei 128 instead of their 32 "
                        "cost up to 0.3 mAP-IoU), 128 on the embedded data")
    p.add_argument("--min-area", type=int, default=None, metavar="PIXELS",
                   help="evaluation drops instances smaller than this (default: the Sartorius "
                        "minimum per cell type, 75 for other classes; e.g. 15 for nuclei)")
    p.add_argument("--overlaps", choices=OVERLAP_ORDERS, default=OVERLAP_ORDERS[0],
                   help="evaluation gives a pixel several instances claim to the higher "
                        "score ('score', the default) or first to an instance lying mostly "
                        "inside a larger one ('nested'; predict.py --overlaps)")
    p.add_argument("--tta", nargs="?", const="flips", default=None, type=parse_tta_set,
                   metavar="SET",
                   help="score the final checkpoint with test-time augmentation, merged on "
                        "mask probabilities, as predict.py --tta SET does (flips, dihedral, "
                        "scales, a union such as dihedral+scales, or transforms 'none,lr,rot90'; "
                        "--tta alone: flips); the per-epoch scores stay plain")
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


def parse_epochs(text):
    """'20,25' -> (20, 25) for --lr-decay-epochs (increasing positive epochs)."""
    try:
        epochs = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected increasing epoch numbers like 20,25, got {text!r}") from None
    if not epochs or min(epochs) < 1 or list(epochs) != sorted(set(epochs)):
        raise argparse.ArgumentTypeError(
            f"expected increasing positive epoch numbers like 20,25, got {text!r}")
    return epochs


def parse_anchor_scales(text):
    """'16:23,32:45,...' -> ((16, 23), (32, 45), ...); '8,16,...' -> (8, 16, ...)."""
    if not text:
        return CellConfig.RPN_ANCHOR_SCALES
    if text.strip().lower() == "auto":
        raise SystemExit("--anchor-scales auto: load_data(args) fits the sizes to the training "
                         "boxes; call it before make_config")
    levels = [level.strip() for level in text.split(",") if level.strip()]
    try:
        sizes = [tuple(int(v) for v in level.split(":")) for level in levels]
    except ValueError:
        raise SystemExit(f"--anchor-scales: expected integers like 16:23,32:45,...; "
                         f"got {text!r}") from None
    return tuple(s[0] if len(s) == 1 else s for s in sizes)


# Backbones whose residual blocks start as the identity unless --no-zero-init-residual, when
# trained from random weights. On the real nuclei (benchmarks/real_nuclei.py, four seeds):
# ResNet-50 0.618 against 0.598; ResNet-18 0.589 against 0.604 (two seeds against one), so
# the basic-block ResNets take the flag but keep Matterport's initialisation by default.
ZERO_INIT_BY_DEFAULT = ("resnet50", "resnet101")


def zero_init_residual(args, name):
    """--zero-init-residual as given (refused for a backbone without residual blocks); by
    default on for ``ZERO_INIT_BY_DEFAULT`` trained from random weights (benchmarks/RESULTS.md,
    sessions 59-60). Loaded weights replace the zeroed gammas, so it is off when the run
    starts from them."""
    try:
        takes = backbones.get(name).accepts("zero_init_residual")
    except ValueError as exc:                          # an unknown name: the registry's list
        raise SystemExit(f"--backbone: {exc}") from None
    if args.zero_init_residual is None:             # off when --init gives weights
        return name in ZERO_INIT_BY_DEFAULT and start_from(args)[0] == "none"
    if args.zero_init_residual and not takes:
        raise SystemExit(f"--zero-init-residual needs a ResNet backbone (resnet18/34/50/101); "
                         f"{name!r} does not take it")
    return bool(args.zero_init_residual)


def make_config(args, class_names):
    attrs = {"NUM_CLASSES": len(class_names), "CLASS_NAMES": list(class_names), "BACKBONE_FIRST_STRIDE": args.first_stride,
             "MASK_SHAPE": [args.mask_shape] * 2,
             "USE_MINI_MASK": args.mini_mask != "none",
             "MINI_MASK_SHAPE": ((max(56, args.mask_shape),) * 2 if args.mini_mask in (None, "none")
                                 else (args.mini_mask,) * 2),
             "RPN_ANCHOR_SCALES": parse_anchor_scales(args.anchor_scales),
             "OPTIMIZER": {"adamw": "AdamW", "sgd": "SGD"}[args.optimizer],
             "LEARNING_RATE": args.lr or (0.002 if args.optimizer == "adamw" else 0.01),
             "RPN_ANCHOR_RATIOS": parse_list(args.anchor_ratios),
             "CACHE": {"none": False, "memory": True, "disk": "disk"}[args.cache],
             "WORKERS": args.workers,
             "LR_SCHEDULE": {"constant": False}.get(args.lr_schedule, args.lr_schedule),
             "LR_DECAY_EPOCHS": tuple(args.lr_decay_epochs),
             "LR_DECAY_GAMMA": args.lr_decay_gamma}
    if args.lr_schedule == "step" and not args.lr_decay_epochs:
        raise SystemExit("--lr-schedule step needs --lr-decay-epochs, the epochs after which "
                         "the rate is multiplied by --lr-decay-gamma (e.g. 20,25)")
    if args.lr_decay_epochs and args.lr_schedule != "step":
        raise SystemExit(f"--lr-decay-epochs is used by --lr-schedule step only, but the "
                         f"schedule is {args.lr_schedule}")
    for flag, name in (("max_gt_instances", "MAX_GT_INSTANCES"),
                       ("detection_max_instances", "DETECTION_MAX_INSTANCES")):
        value = getattr(args, flag)
        if value is not None:
            if value < 1:
                raise SystemExit(f"--{flag.replace('_', '-')} must be a positive number, "
                                 f"got {value}")
            attrs[name] = value
    mean_pixel = getattr(args, "mean_pixel", None)
    if mean_pixel == "auto":
        raise SystemExit("--mean-pixel auto: load_data(args) computes it from the training "
                         "images; call it before make_config")
    if mean_pixel is not None:
        attrs["MEAN_PIXEL"] = np.resize(np.asarray(mean_pixel, np.float64), 3)
    if args.backbone:
        attrs["BACKBONE"] = args.backbone
    elif args.data:
        attrs["BACKBONE"] = "resnet50"
    attrs["BACKBONE_ZERO_INIT_RESIDUAL"] = zero_init_residual(
        args, attrs.get("BACKBONE", CellConfig.BACKBONE))
    precision = getattr(args, "precision", None)
    if args.mixed_precision and precision == "float32":
        raise SystemExit("--mixed-precision asks for 16-bit convolutions and --precision "
                         "float32 for none: give one of them")
    if precision is not None:
        attrs["MIXED_PRECISION"] = None if precision == "float32" else precision
    elif args.mixed_precision:   # what "auto" picks for a GPU; bfloat16 where it picks none
        attrs["MIXED_PRECISION"] = resolve("auto", "resnet50") or "bfloat16"
    if args.images_per_gpu is not None:
        if args.images_per_gpu < 1:
            raise SystemExit(f"--images-per-gpu must be a positive number, got "
                             f"{args.images_per_gpu}")
        attrs["IMAGES_PER_GPU"] = args.images_per_gpu
    if args.steps_per_epoch:
        attrs["STEPS_PER_EPOCH"] = args.steps_per_epoch
    if args.mask_box_scale is not None:
        if not 1 <= args.mask_box_scale < float("inf"):
            raise SystemExit(f"--mask-box-scale must be a number >= 1, got {args.mask_box_scale}")
        attrs["MASK_BOX_SCALE"] = args.mask_box_scale
    if args.rpn_iou is not None:
        attrs["RPN_POSITIVE_IOU"], attrs["RPN_NEGATIVE_IOU"] = args.rpn_iou
    if args.loss_weights:
        attrs["LOSS_WEIGHTS"] = args.loss_weights
    if args.foreground_loss:
        attrs.update(FOREGROUND_LOSS=True, FOREGROUND_STRIDE=args.foreground_loss)
    if args.mask_channels is not None:
        if args.mask_channels < 1:
            raise SystemExit(f"--mask-channels must be a positive number, got "
                             f"{args.mask_channels}")
        attrs["MASK_HEAD_CHANNELS"] = args.mask_channels
    if args.validation_steps is not None:
        attrs["VALIDATION_STEPS"] = args.validation_steps
    if args.devices:
        attrs["GPU_COUNT"] = args.devices
    if args.image_mode == "pad":
        attrs["IMAGE_RESIZE_MODE"] = "none"
    else:
        attrs.update(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=args.crop_size)
    attrs.update(IMAGE_SCALE=args.scale, IMAGE_SCALE_RANGE=args.scale_range)
    size = getattr(args, "image_shape", None) or (520, 704)   # the data's largest (load_data)
    scaled_shape = list(tta_input_shape([scaled_size(size, args.scale)], "none")) + [3]
    if args.image_mode == "pad":
        attrs["IMAGE_SHAPE"] = scaled_shape
    train_config = type("CellTrainConfig", (CellConfig,), attrs)()
    # the inference input holds the (scaled) images; --tta runs each variant (a turned
    # 520x704 image is 704x520) in an input of its own size (mrcnn.inference.fitted_input)
    infer_attrs = dict(attrs, IMAGE_RESIZE_MODE="none", IMAGE_SHAPE=scaled_shape, GPU_COUNT=1,
                       IMAGES_PER_GPU=1)
    infer_config = type("CellInferenceConfig", (CellConfig,), infer_attrs)()
    return train_config, infer_config


def load_data(args):
    if args.coco:
        if args.data:
            raise SystemExit("--coco and --data exclude each other: pretrain with --coco, then "
                             "fine-tune with --data --init <the pretrained checkpoint>")
        train_json, val_json, images = args.coco
        train, val = CocoDataset(), CocoDataset()
        train.load_coco(train_json, images)
        val.load_coco(val_json, images)
        train.prepare()
        val.prepare()
        return resolve_settings(args, train, val)
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
    return resolve_settings(args, train, val)


def resolve_settings(args, train, val):
    """The settings measured on the data: input size, --mean-pixel auto, --anchor-scales auto.

    ``args.image_shape``: the largest image (height, width) of both sets;
    evaluation's input (and --image-mode pad's) holds it at --scale.
    """
    args.image_shape = dataset_image_shape(train, val)
    resolve_mean_pixel(args, train)
    resolve_anchor_scales(args, train, val.class_names)
    return train, val


def resolve_mean_pixel(args, train):
    """--mean-pixel auto (the default with --data or --coco) -> the training images' mean."""
    if getattr(args, "mean_pixel", None) is None and (args.data or args.coco):
        args.mean_pixel = "auto"
    if getattr(args, "mean_pixel", None) == "auto":
        args.mean_pixel = tuple(float(v) for v in dataset_mean_pixel(train))
        print("mean pixel of the training images: "
              + ", ".join(f"{v:.1f}" for v in args.mean_pixel))


def resolve_anchor_scales(args, train, class_names, max_images=200):
    """--anchor-scales auto -> sizes fitted to the training boxes (`dataset_anchor_scales`).

    The boxes of up to `max_images` training images, times --scale;
    `args.anchor_scales` becomes the concrete 'a:b:c,...' text, so
    config.json records it.
    """
    if str(getattr(args, "anchor_scales", None) or "").strip().lower() != "auto":
        return
    config = make_config(argparse.Namespace(**dict(vars(args), anchor_scales=None)),
                         class_names)[0]
    try:
        scales, stats, before = dataset_anchor_scales(
            train, config, float(getattr(args, "scale", 1.0) or 1.0), max_images, args.seed)
    except ValueError as exc:
        raise SystemExit(f"--anchor-scales auto: {exc}") from None
    args.anchor_scales = ",".join(":".join(str(v) for v in np.atleast_1d(level))
                                  for level in scales)
    print(f"anchor scales fitted to {stats['boxes']} training boxes: {args.anchor_scales} (best "
          f"anchor IoU {stats['mean_best_iou']:.3f} on average, {stats['covered']:.0%} of the "
          f"boxes at >= 0.7; the default {before['mean_best_iou']:.3f}, {before['covered']:.0%})")


def postprocess_config(class_names, min_area=None, overlaps=OVERLAP_ORDERS[0]):
    """Evaluation's post-processing: score >= 0.5, overlaps removed, small instances dropped.

    ``min_area`` (pixels, all classes) replaces the Sartorius minimum per cell
    type (75 for classes of other names); ``overlaps`` is the overlap order
    (`mrcnn.inference.postprocess.OVERLAP_ORDERS`).
    """
    if min_area is not None:
        if min_area < 0:
            raise SystemExit(f"--min-area must be 0 or more pixels, got {min_area}")
        return PostprocessConfig(min_score=0.5, min_area=int(min_area), overlap_order=overlaps)
    min_area = {n: a for n, a in SARTORIUS_MIN_AREA.items() if n in class_names}
    return PostprocessConfig(min_score=0.5, min_area=min_area or 75, overlap_order=overlaps)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.devices:                      # before the backend runs anything
        use_devices(cluster.local_count(args.devices))     # this process's share
    cluster.initialize()        # join a job of several processes, if any (use_devices may have)
    t0 = time.time()
    train, val = load_data(args)
    config, infer_config = make_config(args, train.class_names)
    print(f"train images: {train.num_images}, validation images: {val.num_images}, "
          f"classes: {train.class_names[1:]}, backbone: {config.BACKBONE}")
    model = modellib.MaskRCNN("training", config, args.model_dir)
    print(f"model dir: {os.path.abspath(args.model_dir)}")
    start(model, args)
    post = postprocess_config(val.class_names, args.min_area, args.overlaps)
    if model.epoch >= args.epochs:
        print(f"already trained {model.epoch} epochs (>= --epochs {args.epochs}); evaluating")
    else:
        every = score_every(args)
        score = EpochScore(val, config=infer_config, postprocess=post, every=every) if every \
            else None
        model.train(train, val, config.LEARNING_RATE, args.epochs, args.layers, seed=args.seed,
                    augmentation=augmentation(args.augment, config), evaluation=score,
                    keep=args.keep, patience=args.patience,
                    monitor=args.monitor or ("val_map_iou" if score else "val_loss"))
    train_s = time.time() - t0
    if cluster.process_count() > 1:        # the chief evaluates; the others wait for its score
        scores = evaluate_run(model, args, val, infer_config, post, t0, train_s) \
            if cluster.is_chief() else None
        score = cluster.broadcast_from_chief(scores and {"map_iou": float(scores["map_iou"])})
        return scores or score
    return evaluate_run(model, args, val, infer_config, post, t0, train_s)


def evaluate_run(model, args, val, infer_config, post, t0, train_s):
    """The validation score of the run's checkpoint ("best" or "last") next to an untrained model's."""
    untrained = modellib.MaskRCNN("inference", infer_config, args.model_dir)
    base = evaluate(untrained, val, postprocess=post, verbose=0)
    inference = modellib.MaskRCNN("inference", infer_config, args.model_dir)
    try:
        checkpoint = inference.load_weights("best" if args.keep == "best" else "last")["path"]
    except FileNotFoundError as exc:          # no epoch was ranked (e.g. only NaN scores)
        print(f"{exc}; evaluating the newest checkpoint")
        checkpoint = inference.load_weights("last")["path"]
    scored = TTAModel(inference, args.tta) if args.tta else inference
    scores = evaluate(scored, val, postprocess=post, verbose=1)
    tta = f" with --tta {args.tta if isinstance(args.tta, str) else ','.join(args.tta)}" \
        if args.tta else ""
    print(f"\nvalidation mAP-IoU={scores['map_iou']:.4f}{tta} (untrained model: "
          f"{base['map_iou']:.4f}); total time {time.time() - t0:.0f}s "
          f"(data + training {train_s:.0f}s)")
    print(f"checkpoint: {checkpoint}")
    return scores


def start_from(args):
    """(init, resume) from --init, --resume and --weights (the older spelling, mapped onto
    them); refuses a --weights file and --init with --resume."""
    init, resume = getattr(args, "init", "none"), getattr(args, "resume", None)
    weights = getattr(args, "weights", "none")
    if weights != "none":
        if weights == "last":
            resume = resume or "last"
        elif weights in ("coco", "imagenet"):
            init = weights if init == "none" else init
        else:
            raise SystemExit(f"--weights {weights}: say what to do with a file: --init "
                             f"{weights} starts a new run from its weights (epoch 0, the "
                             f"whole schedule), --resume {weights} continues its run")
    if init != "none" and resume:
        raise SystemExit(f"--init {init} and --resume {resume} exclude each other: --init "
                         f"starts a new run from weights, --resume continues a run")
    return init, resume


def start(model, args):
    """--init (a new run from weights) or --resume (continue a run); --weights maps onto them."""
    init, resume = start_from(args)
    if resume:
        report = model.resume(resume)
        print(f"resuming {model.log_dir} after epoch {model.epoch} ({report['path']})")
    elif init != "none":
        report = model.init_from(init, exclude="heads" if init == "coco" else None)
        print(f"initialised {len(report['loaded'])} layers from {report['path']} (skipped, "
              f"other shapes: {[m[0] for m in report['shape_mismatch']]}); new run "
              f"{model.log_dir}")
    else:
        blocks = (", residual blocks started as the identity (--no-zero-init-residual: "
                  "Matterport's init)" if model.config.BACKBONE_ZERO_INIT_RESIDUAL else "")
        print(f"new run {model.log_dir} from random weights{blocks}")


def score_every(args):
    """--score-every: as given, else 1 on --data / --coco and 0 on the embedded data."""
    every = args.score_every
    if every is None:
        every = 1 if (args.data or args.coco) else 0
    if every < 0:
        raise SystemExit(f"--score-every must be 0 (losses only) or a number of epochs, "
                         f"got {every}")
    return every


def augmentation(name, config):
    """--augment: None, flips (+ 90-degree turns when the input is square), geometric or cell."""
    if name == "none":
        return None
    crop = config.IMAGE_RESIZE_MODE == "crop"
    square = crop or config.IMAGE_SHAPE[0] == config.IMAGE_SHAPE[1]
    if name == "cell":      # seed 002's set; its scale + crop makes crop mode's crop
        return cell_augmentation(crop_size=int(config.IMAGE_MIN_DIM) if crop else None)
    if name == "geometric":
        if not crop:        # a scaled image must be cropped back to the input
            raise SystemExit("--augment geometric scales the images: it needs --image-mode "
                             "crop (the default), not --image-mode pad")
        return geometric_augmentation()
    return Compose([Fliplr(), Flipud(), Rot90((0, 1, 2, 3) if square else (0, 2))])


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
