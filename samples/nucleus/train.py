"""Train Mask R-CNN for nucleus segmentation (Data Science Bowl 2018 layout).

With no arguments it runs on an embedded default: generated images of small
round nuclei written once, in the DSB 2018 folder layout
(``<id>/images/<id>.png``, ``<id>/masks/*.png``), to a cache folder; it ends by
printing the validation mAP-IoU (the DSB 2018 metric) next to an untrained
model's:

    python samples/nucleus/train.py
    python samples/nucleus/train.py --data /kaggle/input/data-science-bowl-2018/stage1_train \\
        --backbone resnet50 --weights imagenet --epochs 40

Seed 002's settings are the defaults for real data: images scaled up 2x
(``--scale 2``, Config.IMAGE_SCALE; ``--scale-range 1.5,2.5`` trains
multi-scale), 512x512 training crops, small anchors and the seed-002
augmentations. Inference takes DSB images of every size (256x320 to
1040x1388): scaled by the same factor, they run through a 1024x1024 input in
overlapping tiles (`mrcnn.inference.tiling.TiledModel`), results at the
original size.
"""

import argparse
import os
import sys
import time

import numpy as np
import skimage.io

# This checkout's library first, installed or not (Matterport's samples append their
# ROOT_DIR the same way): `python3 samples/...` then runs the code beside the script.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mrcnn.cli_settings import parse_scale_range
from mrcnn.config import Config
from mrcnn.data.augment import cell_augmentation
from mrcnn.datasets.folds import kfold_split
from mrcnn.datasets.nucleus import NucleusDataset
from mrcnn.datasets.synthetic_cells import make_cell_image
from mrcnn.evaluation import evaluate
from mrcnn.inference import OVERLAP_ORDERS, PostprocessConfig, TiledModel
import mrcnn.model as modellib

DEFAULT_CACHE = os.path.join(os.environ.get("MRCNN_CACHE_DIR", os.path.expanduser("~/.cache/mrcnn")),
                             "synthetic_nuclei")


class NucleusConfig(Config):
    NAME = "nucleus"
    NUM_CLASSES = 1 + 1
    IMAGES_PER_GPU = 2
    BACKBONE = "small-cnn"
    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 512
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 1000
    PRE_NMS_LIMIT = 3000
    TRAIN_ROIS_PER_IMAGE = 128
    MAX_GT_INSTANCES = 200
    DETECTION_MAX_INSTANCES = 300
    DETECTION_MIN_CONFIDENCE = 0.5
    MEAN_PIXEL = np.array([43.5, 39.6, 48.2])  # DSB 2018 stage 1 means
    MINI_MASK_SHAPE = (56, 56)
    TOP_DOWN_PYRAMID_SIZE = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    MASK_HEAD_CHANNELS = 128
    LEARNING_RATE = 0.01
    N_WARMUP_STEPS = 50
    LR_SCHEDULE = "cosine"
    TRAIN_BN = True
    STEPS_PER_EPOCH = 60
    VALIDATION_STEPS = 4


def write_synthetic_nuclei(root, n_images=24, seed=0, size=256):
    """Write generated nuclei in the DSB 2018 layout (once; atomic by folder rename)."""
    marker = os.path.join(root, ".synthetic_nuclei")
    if os.path.exists(marker) and open(marker).read() == f"{n_images} {seed} {size}":
        return root
    tmp = root + ".tmp"
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        image, masks = make_cell_image(rng, "cort", size, size)
        image_id = f"nucleus{i:04d}"
        os.makedirs(os.path.join(tmp, image_id, "images"))
        os.makedirs(os.path.join(tmp, image_id, "masks"))
        # fluorescence-like: bright nuclei on a dark background
        inverted = (255 - image).astype(np.uint8)
        skimage.io.imsave(os.path.join(tmp, image_id, "images", image_id + ".png"),
                          np.stack([inverted] * 3, -1), check_contrast=False)
        for k in range(masks.shape[-1]):
            skimage.io.imsave(os.path.join(tmp, image_id, "masks", f"{k:04d}.png"),
                              masks[..., k].astype(np.uint8) * 255, check_contrast=False)
    with open(os.path.join(tmp, ".synthetic_nuclei"), "w") as f:
        f.write(f"{n_images} {seed} {size}")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def training_attrs(args):
    """Config overrides of the training model from the command line."""
    attrs = {}
    if args.backbone or args.data:
        attrs["BACKBONE"] = args.backbone or "resnet50"
    if args.data:
        attrs.update(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=512)
    scale = args.scale if args.scale is not None else (2.0 if args.data else 1.0)
    attrs.update(IMAGE_SCALE=scale, IMAGE_SCALE_RANGE=args.scale_range)
    for flag, key in ((args.steps_per_epoch, "STEPS_PER_EPOCH"),
                      (args.validation_steps, "VALIDATION_STEPS"), (args.lr, "LEARNING_RATE")):
        if flag is not None:
            attrs[key] = flag
    return attrs


def inference_config(attrs, input_size):
    """The inference Config: images scaled by IMAGE_SCALE, an input_size^2 input ("none" mode).

    Larger images run in tiles (`inference_model`), so any DSB size works.
    """
    attrs = dict(attrs, IMAGES_PER_GPU=1, IMAGE_RESIZE_MODE="none",
                 IMAGE_SHAPE=[input_size, input_size, 3], IMAGE_MIN_DIM=None,
                 IMAGE_MAX_DIM=input_size, IMAGE_MIN_SCALE=0, IMAGE_SCALE_RANGE=None)
    return type("NucleusInferenceConfig", (NucleusConfig,), attrs)()


def inference_model(config, model_dir, weights=None):
    """A model whose detect() takes images of any size (overlapping tiles of the input)."""
    model = modellib.MaskRCNN("inference", config, model_dir)
    if weights is not None:
        model.load_weights(weights)
    return TiledModel(model)


def postprocess_config(overlaps=OVERLAP_ORDERS[0]):
    """The validation score's post-processing: score >= 0.5, overlaps removed, under 15 px dropped.

    ``overlaps`` is `PostprocessConfig.overlap_order`: "score" or "nested".
    """
    return PostprocessConfig(min_score=0.5, min_area=15, overlap_order=overlaps)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="DSB 2018 stage1_train-style folder "
                   f"(default: generated nuclei in {DEFAULT_CACHE})")
    p.add_argument("--model-dir", default="logs", help="checkpoints and logs (default ./logs)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--validation-steps", type=int, default=None)
    p.add_argument("--backbone", default=None, help="default small-cnn (resnet50 with --data)")
    p.add_argument("--weights", default="none", help="none, coco, imagenet, last or a path")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--augment", action="store_true", help="seed 002's augmentation set")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--synthetic-images", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=None,
                   help="resize every image by this factor (Config.IMAGE_SCALE; default 2 "
                   "with --data, else 1)")
    p.add_argument("--scale-range", type=parse_scale_range, default=None, metavar="LO,HI",
                   help="multi-scale training: a random factor per sample in [LO, HI] "
                   "(Config.IMAGE_SCALE_RANGE); inference uses --scale")
    p.add_argument("--input-size", type=int, default=None,
                   help="inference input side (default 1024 with --data, else 256); larger "
                   "scaled images run in overlapping tiles")
    p.add_argument("--overlaps", choices=OVERLAP_ORDERS, default=OVERLAP_ORDERS[0],
                   help="who keeps a pixel that several detections claim in the validation "
                   "score: the higher score (default), or first an instance lying at least "
                   "half inside a larger one ('nested': a single nucleus inside the detection "
                   "of it and its touching neighbour)")
    args = p.parse_args(argv)

    t0 = time.time()
    root = args.data or write_synthetic_nuclei(DEFAULT_CACHE, args.synthetic_images, args.seed)
    ids = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    train_ids, val_ids = kfold_split(ids, k=args.folds, fold=args.fold, seed=args.seed)
    train, val = NucleusDataset(), NucleusDataset()
    train.load_nucleus(root, train_ids)
    val.load_nucleus(root, val_ids)
    train.prepare()
    val.prepare()

    attrs = training_attrs(args)
    config = type("NucleusTrainConfig", (NucleusConfig,), attrs)()
    infer_config = inference_config(attrs, args.input_size or (1024 if args.data else 256))
    print(f"train images: {train.num_images}, validation images: {val.num_images}, "
          f"backbone: {config.BACKBONE}")
    model = modellib.MaskRCNN("training", config, args.model_dir)
    if args.weights != "none":
        model.load_weights(args.weights, by_name=True,
                           exclude="heads" if args.weights == "coco" else None)
    augmentation = cell_augmentation() if args.augment else None
    if model.epoch < args.epochs:
        model.train(train, val, config.LEARNING_RATE, args.epochs, "all",
                    augmentation=augmentation, seed=args.seed)
    post = postprocess_config(args.overlaps)
    base = evaluate(inference_model(infer_config, args.model_dir), val, postprocess=post,
                    verbose=0)
    inference = inference_model(infer_config, args.model_dir, model.find_last())
    scores = evaluate(inference, val, postprocess=post, verbose=1)
    print(f"\nvalidation mAP-IoU={scores['map_iou']:.4f} (untrained model: "
          f"{base['map_iou']:.4f}); total time {time.time() - t0:.0f}s")
    return scores


if __name__ == "__main__":
    main()
