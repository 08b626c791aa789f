"""Predict cell instances and write a Sartorius submission.csv (id, predicted).

    python samples/cell/predict.py IMAGES_DIR --model-dir logs --weights last --out submission.csv
    python samples/cell/predict.py /kaggle/input/sartorius-cell-instance-segmentation/test \\
        --weights /kaggle/input/my-weights/mask_rcnn_cell_0030.h5 --tta dihedral --out submission.csv

Runs offline from a checkpoint file (its run folder's config.json rebuilds the
model; or give --config). Images are read one at a time, so memory stays
constant over a test set of any size. Every instance becomes one row with its
RLE (row-major, 1-indexed); overlapping pixels go to the higher-scoring
instance, then per-cell-type minimum areas (shsy5y 75, astro 150, cort 75
pixels) and per-class minimum scores apply. An image with no detection still
gets a row with an empty prediction.

The command line overrides the run's inference settings: --min-score below
the DETECTION_MIN_CONFIDENCE the model was trained with lowers it in the
inference model (the graph drops detections under it), and --mask-threshold
binarizes the mask probabilities (the model returns them with
detect(..., soft_masks=True)). --tta SET runs test-time augmentation
(flips, dihedral = 8 flips x 90-degree turns, scales, or unions such as
dihedral+scales) merged on the mask probabilities (an object stays when
--tta-votes of the runs found it, default half). Each image, and each TTA
variant (turned or scaled), runs in an input of its own size, rounded up to
64 px (the model's twin at that size: no padding band the model never
trained with; mrcnn.inference.fitted_input). The file is validated before the script
exits (RLEs inside the image, no shared pixels, every image present).

Nothing is lost at the end: before any model is loaded, --out is checked (its
folder exists and is writable) and every image's header is read; unreadable
images stop the run there, all listed, unless --skip-bad is given. With
--skip-bad an unreadable image (at that check, or when its pixels fail to
decode later) gets the single empty row the competition format requires for
an image without instances (the submission stays complete and scorable; that
image scores as if nothing was found), and a report lists what was skipped.
If --out cannot be written after all, the rows are saved to a file in the
temporary folder and the error names both.

Exported models (mrcnn.inference.export): --export PATH writes the model this
command would run (--weights, its input sized for these images) as a
SavedModel (or --export-format onnx / keras) and stops; --exported PATH
predicts with such an export, without building the Keras model or reading a
config.json (the settings travel with the export).
"""

import argparse
import glob
import os
import sys
import tempfile
import time
import warnings

import skimage.io

# This checkout's library first, installed or not (Matterport's samples append their
# ROOT_DIR the same way): `python3 samples/...` then runs the code beside the script.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mrcnn.config import load_config
from mrcnn.data.image import check_bit_depth, read_image_size, to_rgb_uint8
from mrcnn.inference import (OVERLAP_ORDERS, SARTORIUS_MIN_AREA, TTA_SETS, PostprocessConfig,
                             detect_fitted, detect_tta,
                             postprocess, tta_input_shape, tta_variants)
from mrcnn.inference import submission_rows, validate_submission, write_submission
import mrcnn.model as modellib
from mrcnn.cli_settings import parse_tta_set
from mrcnn.data.fit import scaled_size
from mrcnn.inference.export import FORMATS, export_model
from mrcnn.inference.exported import load_exported
from mrcnn.inference.tiling import TiledModel
from mrcnn.training.runs import find_best, list_checkpoints
from mrcnn.weights import WeightsFileError

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
                   help="'last', 'best' (the run's best by its score, best.json) or a "
                        "checkpoint path; repeat for an ensemble (default: last)")
    p.add_argument("--config", default=None,
                   help="config.json of the run (default: next to the checkpoint)")
    p.add_argument("--out", default="submission.csv", help="output CSV (default submission.csv)")
    p.add_argument("--min-score", default="0.5",
                   help="minimum detection score: a number or per class 'astro=0.6,cort=0.5' "
                        "(below the model's DETECTION_MIN_CONFIDENCE, the inference model is "
                        "built with the lower one)")
    p.add_argument("--min-area", default=None,
                   help="minimum mask area in pixels after overlap removal: a number or per "
                        "class (default: shsy5y=75,astro=150,cort=75, or 75)")
    p.add_argument("--mask-threshold", type=_probability, default=None,
                   help="mask probability threshold, applied to the mask probabilities "
                        "(default: the config's DETECTION_MASK_THRESHOLD, 0.5)")
    p.add_argument("--mask-nms", type=float, default=None,
                   help="IoU threshold of a mask-level NMS after box NMS (seed 003; e.g. 0.3)")
    p.add_argument("--overlaps", choices=OVERLAP_ORDERS, default=OVERLAP_ORDERS[0],
                   help="who keeps a pixel that several instances claim: 'score' (the higher "
                        "score; the default) or 'nested' (an instance lying mostly inside a "
                        "larger one keeps its pixels, then the higher score)")
    p.add_argument("--dilation", type=int, default=0,
                   help="binary dilation iterations of each mask (seed 002 used 1)")
    p.add_argument("--majority-class", action="store_true",
                   help="every cell of an image takes the image's majority cell type "
                        "(largest summed score; seed 000)")
    p.add_argument("--tta", nargs="?", const="flips", default=None, type=parse_tta_set,
                   metavar="SET",
                   help="test-time augmentation, merged on mask probabilities: " +
                        ", ".join(f"{k} ({len(v)})" for k, v in TTA_SETS.items()) +
                        ", a union such as dihedral+scales, or transforms 'none,lr,rot90,"
                        "s1.25'; --tta alone: flips (none, left-right, up-down)")
    p.add_argument("--tta-votes", type=int, default=None, metavar="N",
                   help="with --tta or an ensemble: keep an object found by at least N of the "
                        "runs (variants x checkpoints; default: half of them, rounded up)")
    p.add_argument("--overlays", default=None,
                   help="folder to write one overlay PNG per image, for a person to look at")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--bit-depth", default=None, type=_bit_depth,
                   help="how 16-bit images become 8-bit: 8..16 (e.g. 12 for a 12-bit camera: "
                        "0..4095 -> 0..255) or 'percentile' (each image stretched between its "
                        "0.5th and 99.5th percentiles); default: the file's dtype range, as in "
                        "training (Dataset.IMAGE_BIT_DEPTH)")
    p.add_argument("--skip-bad", action="store_true",
                   help="write the submission even if some images cannot be read: each gets "
                        "one row with an empty prediction, and a report lists them (default: "
                        "stop before inference, listing every unreadable image)")
    p.add_argument("--scale", type=float, default=None,
                   help="resize every image by this factor before detection "
                        "(Config.IMAGE_SCALE; default: the training run's); results are at "
                        "the original size")
    p.add_argument("--tile", action="store_true",
                   help="detect in overlapping tiles of the trained model input "
                        "(mrcnn.inference.tiling): any image size, memory independent of it")
    p.add_argument("--export", default=None, metavar="PATH",
                   help="write the model this command would run (--weights; input sized for "
                        "these images) to PATH as an exported model and stop")
    p.add_argument("--export-format", default="tf_saved_model", choices=FORMATS,
                   help="format of --export (default tf_saved_model: a SavedModel folder)")
    p.add_argument("--exported", default=None, metavar="PATH",
                   help="predict with an exported model (SavedModel folder, .onnx or .keras "
                        "written by --export) instead of a checkpoint; no config.json needed")
    return p


def check_export_flags(args):
    """--export / --exported, checked before anything is read: the flags that go with them."""
    if args.exported and args.export:
        raise ValueError("--export writes an exported model and --exported reads one: give one")
    if args.exported:
        fixed = [f for f, v in (("--weights", args.weights), ("--config", args.config),
                                ("--scale", args.scale), ("--tile", args.tile)) if v]
        if fixed:
            raise ValueError(f"--exported {args.exported} runs the export as it was written: "
                             f"{', '.join(fixed)} cannot change it (export again with --export)")
    if args.export and len(args.weights or ["last"]) > 1:
        raise ValueError("--export writes one model: give one --weights")


def export_run(args):
    """--export: the model `load_models` gives for these images, as an exported model."""
    model = load_models(args)[0]
    export_model(model, args.export, format=args.export_format,
                 class_names=_class_names(model.config))
    print(f"exported {args.export} ({args.export_format}, input "
          f"{[int(v) for v in model.config.IMAGE_SHAPE]}); predict with --exported "
          f"{args.export}")
    return args.export


def _probability(text):
    """argparse type of --mask-threshold: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1], got {text!r}")
    return value


def _bit_depth(text):
    """argparse type of --bit-depth: an int 8..16 or "percentile"."""
    value = text if text == "percentile" else (int(text) if text.isdigit() else text)
    try:
        return check_bit_depth(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def check_output(out, flag="--out"):
    """Fail now, before any model is loaded, if the file `out` cannot be written.

    Raises:
        IsADirectoryError: `out` is a folder.
        FileNotFoundError: its folder does not exist.
        OSError (PermissionError, ...): its folder is not writable.
    """
    path = os.path.abspath(out)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{flag} {out!r} is a folder; give a file name, e.g. "
                                f"{os.path.join(out, 'submission.csv')!r}")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{flag} {out!r}: its folder {folder!r} does not exist; create "
                                f"it or choose another {flag}")
    _check_writable(folder, f"{flag} {out!r}: cannot write in its folder {folder!r}", flag)
    return path


def check_folder(folder, flag):
    """Create the output folder `folder` (e.g. --overlays) now and check it is writable."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise _out_error(error, f"{flag} {folder!r}: cannot create it "
                                f"({error.strerror or error})") from None
    _check_writable(folder, f"{flag} {folder!r}: cannot write in it", flag)


def _check_writable(folder, what, flag):
    """Create and remove a probe file in `folder` (permission bits do not tell: root
    ignores them, a read-only mount does not show in them)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as error:
        raise _out_error(error, f"{what} ({error.strerror or error}); choose a writable "
                                f"{flag}, e.g. in the working directory") from None


def _out_error(error, message):
    """An OSError of the same kind as `error` (errno: PermissionError, ...) with `message`."""
    return OSError(error.errno, message) if error.errno else OSError(message)


def image_id_of(path):
    return os.path.splitext(os.path.basename(path))[0]


def check_images(files):
    """Read every image's header (no pixel decoding).

    Returns:
        sizes: {path: (height, width)} of the readable files.
        bad: [(path, reason)] of the files that cannot be read as images.

    Raises:
        ValueError: two files give one image id (e.g. a.png and a.tif).
    """
    sizes, bad, seen = {}, [], {}
    for path in files:
        image_id = image_id_of(path)
        if image_id in seen:
            raise ValueError(f"{seen[image_id]!r} and {path!r} both give the image id "
                             f"{image_id!r}; the submission needs one image per id: remove one")
        seen[image_id] = path
        try:
            sizes[path] = read_image_size(path, f"image {image_id!r}")
        except Exception as error:  # readers raise many types; every bad file is reported
            bad.append((path, f"{type(error).__name__}: {error}"))
    return sizes, bad


def bad_images_message(bad, total, folder):
    lines = [f"{len(bad)} of {total} images in {folder} cannot be read; fix or remove them, or "
             f"pass --skip-bad to write the submission without them (each gets one row with "
             f"an empty prediction):"]
    lines += [f"  {path}: {reason}" for path, reason in bad]
    return "\n".join(lines)


def read_image(path, bit_depth=None):
    """RGB uint8 [H, W, 3] of an image file; ValueError naming the file if it does not decode."""
    try:
        return to_rgb_uint8(skimage.io.imread(path), bit_depth=bit_depth)
    except Exception as error:  # readers raise many types
        raise ValueError(f"cannot decode image {path!r} ({type(error).__name__}: {error}); its "
                         f"header was readable, its pixels are not (a truncated or corrupt "
                         f"file)") from error


def save_rows(out, rows):
    """``write_submission(out, rows)``; if that fails, the rows go to a rescue file.

    Raises:
        OSError: naming --out and the rescue file (never write_submission's temp file).
    """
    try:
        return write_submission(out, rows)
    except OSError as error:
        reason = error.strerror or str(error)
    try:
        fd, rescue = tempfile.mkstemp(prefix="submission-rescued-", suffix=".csv")
        os.close(fd)
        write_submission(rescue, rows)
        saved = f"the {len(rows)} rows were saved to {rescue!r} instead"
    except OSError as error:
        saved = (f"saving them in the temporary folder {tempfile.gettempdir()!r} failed too "
                 f"({error.strerror or error})")
    raise OSError(f"cannot write --out {out!r} ({reason}); {saved}")


def load_models(args):
    specs = args.weights or ["last"]
    models = []
    for spec in specs:
        if spec == "last":
            # The newest checkpoint of the newest run, whatever its name; a
            # damaged or diverged one is skipped with a warning (the one before
            # it is used), as MaskRCNN.load_weights("last") does.
            candidates = list_checkpoints(args.model_dir)
            if not candidates:
                raise FileNotFoundError(f"no checkpoint under {os.path.abspath(args.model_dir)}; "
                                        f"pass --weights PATH")
        elif spec == "best":
            candidates = [find_best(args.model_dir)]      # says how to get one if none
        else:
            candidates = [spec]
        problems = []
        for path in candidates:
            try:
                models.append(_load_model(args, path))
                break
            except WeightsFileError as error:
                if spec != "last":
                    raise
                problems.append(f"  {error}")                 # it names the file
                warnings.warn(f"skipping checkpoint {path}: {error}", RuntimeWarning)
        else:
            raise WeightsFileError("no usable checkpoint under "
                                   f"{os.path.abspath(args.model_dir)}:\n" + "\n".join(problems),
                                   path=args.model_dir)
    return models


def _load_model(args, path):
    """The inference model of checkpoint `path`, built from the config.json beside it."""
    cfg_path = args.config or os.path.join(os.path.dirname(os.path.abspath(path)),
                                           "config.json")
    if not os.path.exists(cfg_path):
        raise FileNotFoundError(
            f"no config.json next to {path}; pass --config pointing at the training run's "
            f"config.json")
    config, trained = inference_config(cfg_path, args)
    model = modellib.MaskRCNN("inference", config, _writable_model_dir(args.model_dir))
    model.load_weights(path)
    model.trained_min_confidence = trained.DETECTION_MIN_CONFIDENCE
    print(f"loaded {path}")
    return model


def inference_config(cfg_path, args):
    """The run's config.json with this command line's inference settings.

    * one image per batch;
    * DETECTION_MIN_CONFIDENCE lowered to the lowest --min-score (the graph
      drops detections under it: a lower --min-score would find nothing more);
    * a model trained on crops ("crop" mode) predicts whole images:
      IMAGE_RESIZE_MODE "none" with an IMAGE_SHAPE that holds every image
      (576x704 when the sizes are unknown); a "none" model's IMAGE_SHAPE grows
      to hold them. TTA variants need no room here: each runs in an input of
      its own size (`mrcnn.inference.fitted_input`).

    Returns:
        ``(config, trained)``: the inference config and the run's own.
    """
    overrides = {"IMAGES_PER_GPU": 1, "GPU_COUNT": 1}
    trained = load_config(cfg_path, **overrides)
    lowest = _lowest_score(parse_thresholds(args.min_score, "min-score"))
    if lowest < trained.DETECTION_MIN_CONFIDENCE:
        overrides["DETECTION_MIN_CONFIDENCE"] = lowest
    mode = trained.IMAGE_RESIZE_MODE
    sizes = getattr(args, "image_sizes", None)
    if getattr(args, "scale", None) is not None:
        overrides["IMAGE_SCALE"] = args.scale
    scale = overrides.get("IMAGE_SCALE", trained.IMAGE_SCALE)
    if sizes and scale != 1:                   # the input holds the scaled images
        sizes = [scaled_size(size, scale) for size in sizes]
    if mode in ("crop", "none"):
        need = tta_input_shape(sizes, "none") if sizes else (576, 704)
        have = [int(v) for v in trained.IMAGE_SHAPE[:2]]
        if getattr(args, "tile", False):       # tiles of the trained input, any image size
            need = tuple(have)
        if mode == "none":
            need = (max(need[0], have[0]), max(need[1], have[1]))
        if mode == "crop" or list(need) != have:
            overrides.update(IMAGE_RESIZE_MODE="none",
                             IMAGE_SHAPE=[need[0], need[1], trained.IMAGE_CHANNEL_COUNT])
    return load_config(cfg_path, **overrides), trained


def check_tta_votes(args):
    """--tta-votes, checked before any model loads: None (half) or 1..runs per image."""
    runs = len(tta_variants(args.tta or "none")) * len(args.weights or ["last"])
    if args.tta_votes is not None and not 1 <= args.tta_votes <= runs:
        raise ValueError(f"--tta-votes must be between 1 and {runs} (the runs per image: "
                         f"{runs // len(args.weights or ['last'])} TTA variants x "
                         f"{len(args.weights or ['last'])} checkpoints), got {args.tta_votes}")
    return args.tta_votes


def _lowest_score(min_score):
    values = list(min_score.values()) if isinstance(min_score, dict) else [min_score]
    return min(values)


def full_min_score(min_score, class_names, trained_min):
    """--min-score as PostprocessConfig takes it: a per-class dict names every class.

    Classes missing from a per-class --min-score keep the threshold the model
    was trained with (the inference model may have been built with a lower one).
    """
    if not isinstance(min_score, dict):
        return min_score
    unknown = sorted(set(min_score) - set(class_names[1:]))
    if unknown:
        raise ValueError(f"--min-score: unknown class {unknown[0]!r}; the model's classes are "
                         f"{class_names[1:]}")
    return {**{name: trained_min for name in class_names[1:]}, **min_score}


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
    check_export_flags(args)
    check_output(args.out)                       # before anything slow: nothing to lose yet
    if args.overlays:
        check_folder(args.overlays, "--overlays")
    files = list_images(args.images)[:args.limit]
    sizes, bad = check_images(files)
    if bad and not args.skip_bad:
        raise ValueError(bad_images_message(bad, len(files), args.images))
    skipped = dict(bad)
    if bad:
        print(f"--skip-bad: {len(bad)} of {len(files)} images cannot be read; they get an "
              f"empty row")
    votes = check_tta_votes(args)
    args.image_sizes = list(sizes.values())        # the model input must hold them (and TTA)
    if args.export:
        return export_run(args)
    models = [load_exported(args.exported)] if args.exported else load_models(args)
    if args.tile:
        models = [TiledModel(model) for model in models]
    config = models[0].config
    class_names = _class_names(config)
    min_area = parse_thresholds(args.min_area, "min-area")
    if min_area is None:
        min_area = {n: a for n, a in SARTORIUS_MIN_AREA.items() if n in class_names} or 75
    mask_threshold = config.DETECTION_MASK_THRESHOLD if args.mask_threshold is None \
        else args.mask_threshold
    min_score = full_min_score(
        parse_thresholds(args.min_score, "min-score"), class_names,
        getattr(models[0], "trained_min_confidence", config.DETECTION_MIN_CONFIDENCE))
    post = PostprocessConfig(min_score=min_score, mask_threshold=mask_threshold,
                             mask_nms=args.mask_nms, min_area=min_area, dilation=args.dilation,
                             overlap_order=args.overlaps,
                             majority_class=args.majority_class)
    rows, shapes = [], {}
    t0 = time.time()
    for k, path in enumerate(files):
        image_id = image_id_of(path)
        image = None
        if path not in skipped:
            try:
                image = read_image(path, args.bit_depth)
            except ValueError as error:
                if not args.skip_bad:
                    raise ValueError(f"{error}. Fix or remove it, or pass --skip-bad to write "
                                     f"the submission without it") from error
                skipped[path] = str(error)
        if image is None:                       # the empty row the format needs
            rows.append((image_id, ""))
            shapes[image_id] = sizes.get(path, (0, 0))
            print(f"[{k + 1}/{len(files)}] {image_id}: skipped (unreadable)")
            continue
        if args.tta or len(models) > 1:
            result = detect_tta(models, image, args.tta or "none", min_votes=votes,
                                mask_threshold=mask_threshold, soft_masks=True, sparse=True)
        else:
            # in an input of the image's own size, as every TTA variant (fitted_input)
            result = detect_fitted(models[0], [image], soft_masks=True, sparse=True)[0]
        result = postprocess(result, post, class_names)
        masks = result["masks"]
        masks = masks.to_dense() if hasattr(masks, "to_dense") else masks
        rows.extend(submission_rows(image_id, masks))
        shapes[image_id] = image.shape[:2]
        if args.overlays:
            save_overlay(args.overlays, image_id, image, result, masks, class_names)
        print(f"[{k + 1}/{len(files)}] {image_id}: {masks.shape[-1]} instances")
    save_rows(args.out, rows)
    validate_submission(args.out, shapes, expected_ids=list(shapes))
    print(f"wrote {args.out}: {len(rows)} rows for {len(shapes)} images "
          f"({time.time() - t0:.1f}s); validated: no overlaps, all RLEs inside the images")
    if skipped:
        print(f"skipped {len(skipped)} of {len(files)} images (--skip-bad); each has one row "
              f"with an empty prediction in {args.out}:")
        for path, reason in skipped.items():
            print(f"  {path}: {reason}")
    return args.out


def save_overlay(folder, image_id, image, result, masks, class_names):
    """One overlay PNG; a failure is reported, not fatal (the submission matters more)."""
    from mrcnn import visualize

    path = os.path.join(folder, image_id + ".png")
    try:
        visualize.display_instances(image, result["rois"], masks, result["class_ids"],
                                    class_names, result["scores"], title=image_id,
                                    save_path=path)
    except OSError as error:
        print(f"warning: cannot write the overlay {path} ({error}); going on")


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
