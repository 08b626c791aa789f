"""Predict cell instances and write a Sartorius submission.csv (id, predicted).

    python samples/cell/predict.py IMAGES_DIR --model-dir logs --weights last --out submission.csv
    python samples/cell/predict.py /kaggle/input/sartorius-cell-instance-segmentation/test \\
        --weights /kaggle/input/my-weights/mask_rcnn_cell_0030.h5 --tta --out submission.csv

Runs offline from a checkpoint file (its run folder's config.json rebuilds the
model; or give --config). Images are read one at a time, so memory stays
constant over a test set of any size. Every instance becomes one row with its
RLE (row-major, 1-indexed); overlapping pixels go to the higher-scoring
instance, then per-cell-type minimum areas (shsy5y 75, astro 150, cort 75
pixels) and per-class minimum scores apply. An image with no detection still
gets a row with an empty prediction. The file is validated before the script
exits (RLEs inside the image, no shared pixels, every image present).
"""

import argparse
import glob
import os
import sys
import time

import numpy as np
import skimage.io

from mrcnn.config import load_config
from mrcnn.data.image import to_rgb_uint8
from mrcnn.inference import SARTORIUS_MIN_AREA, PostprocessConfig, detect_tta, postprocess
from mrcnn.inference import submission_rows, validate_submission, write_submission
import mrcnn.model as modellib
from mrcnn.training.runs import find_last

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def parse_thresholds(text, name):
    """'0.5' -> 0.5; 'astro=0.6,cort=0.4' -> {'astro': 0.6, 'cort': 0.4}."""
    if text is None:
        return None
    if "=" not in text:
        return float(text)
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if not value:
            raise ValueError(f"--{name}: expected NAME=VALUE pairs, got {item!r}")
        out[key.strip()] = float(value)
    return out


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", help="folder of images (png/tif/jpg), e.g. the Kaggle test/")
    p.add_argument("--model-dir", default="logs", help="where --weights last looks (default ./logs)")
    p.add_argument("--weights", action="append", default=None,
                   help="'last' or a checkpoint path; repeat for an ensemble (default: last)")
    p.add_argument("--config", default=None,
                   help="config.json of the run (default: next to the checkpoint)")
    p.add_argument("--out", default="submission.csv", help="output CSV (default submission.csv)")
    p.add_argument("--min-score", default="0.5",
                   help="minimum detection score: a number or per class 'astro=0.6,cort=0.5'")
    p.add_argument("--min-area", default=None,
                   help="minimum mask area in pixels after overlap removal: a number or per "
                        "class (default: shsy5y=75,astro=150,cort=75, or 75)")
    p.add_argument("--mask-threshold", type=float, default=None,
                   help="mask probability threshold (default: the config's, 0.5)")
    p.add_argument("--mask-nms", type=float, default=None,
                   help="IoU threshold of a mask-level NMS after box NMS (seed 003; e.g. 0.3)")
    p.add_argument("--dilation", type=int, default=0,
                   help="binary dilation iterations of each mask (seed 002 used 1)")
    p.add_argument("--tta", action="store_true",
                   help="flip test-time augmentation (none, left-right, up-down), masks merged")
    p.add_argument("--overlays", default=None,
                   help="folder to write one overlay PNG per image, for a person to look at")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    return p


def load_models(args):
    specs = args.weights or ["last"]
    models = []
    for spec in specs:
        path = spec
        if spec == "last":
            try:
                path = find_last(args.model_dir)         # the newest run, whatever its name
            except FileNotFoundError as error:
                raise FileNotFoundError(f"{error}; pass --weights PATH") from None
        cfg_path = args.config or os.path.join(os.path.dirname(os.path.abspath(path)),
                                               "config.json")
        if not os.path.exists(cfg_path):
            raise FileNotFoundError(
                f"no config.json next to {path}; pass --config pointing at the training run's "
                f"config.json")
        overrides = {"IMAGES_PER_GPU": 1, "GPU_COUNT": 1}
        if args.mask_threshold is not None:
            overrides["DETECTION_MASK_THRESHOLD"] = args.mask_threshold
        config = load_config(cfg_path, **overrides)
        if config.IMAGE_RESIZE_MODE == "crop":
            config = load_config(cfg_path, IMAGE_RESIZE_MODE="none",
                                 IMAGE_SHAPE=[576, 704, 3], **overrides)
        model = modellib.MaskRCNN("inference", config, _writable_model_dir(args.model_dir))
        model.load_weights(path)
        models.append(model)
        print(f"loaded {path}")
    return models


def _writable_model_dir(model_dir):
    # Inference writes nothing there; a read-only folder is fine.
    return model_dir


def list_images(folder):
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(f for f in glob.glob(os.path.join(folder, "*"))
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def main(argv=None):
    args = build_parser().parse_args(argv)
    files = list_images(args.images)[:args.limit]
    models = load_models(args)
    class_names = _class_names(models[0].config)
    min_area = parse_thresholds(args.min_area, "min-area")
    if min_area is None:
        min_area = {n: a for n, a in SARTORIUS_MIN_AREA.items() if n in class_names} or 75
    post = PostprocessConfig(min_score=parse_thresholds(args.min_score, "min-score"),
                             mask_nms=args.mask_nms, min_area=min_area, dilation=args.dilation)
    if args.overlays:
        os.makedirs(args.overlays, exist_ok=True)
    rows, shapes = [], {}
    t0 = time.time()
    for k, path in enumerate(files):
        image_id = os.path.splitext(os.path.basename(path))[0]
        try:
            image = to_rgb_uint8(skimage.io.imread(path))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read image {path}: {exc}") from None
        if args.tta or len(models) > 1:
            result = detect_tta(models if len(models) > 1 else models[0], image,
                                flips=("none", "lr", "ud") if args.tta else ("none",))
        else:
            result = models[0].detect([image])[0]
        result = postprocess(result, post, class_names)
        masks = result["masks"]
        masks = masks.to_dense() if hasattr(masks, "to_dense") else masks
        rows.extend(submission_rows(image_id, masks))
        shapes[image_id] = image.shape[:2]
        if args.overlays:
            from mrcnn import visualize
            visualize.display_instances(image, result["rois"], masks, result["class_ids"],
                                        class_names, result["scores"], title=image_id,
                                        save_path=os.path.join(args.overlays, image_id + ".png"))
        print(f"[{k + 1}/{len(files)}] {image_id}: {masks.shape[-1]} instances")
    write_submission(args.out, rows)
    validate_submission(args.out, shapes, expected_ids=list(shapes))
    print(f"wrote {args.out}: {len(rows)} rows for {len(shapes)} images "
          f"({time.time() - t0:.1f}s); validated: no overlaps, all RLEs inside the images")
    return args.out


def _class_names(config):
    names = getattr(config, "CLASS_NAMES", None)
    if names:
        return list(names)
    if config.NUM_CLASSES == 4:
        return ["BG", "astro", "cort", "shsy5y"]
    return ["BG"] + ["cell"] * (config.NUM_CLASSES - 1)


if __name__ == "__main__":
    main()
    sys.exit(0)
