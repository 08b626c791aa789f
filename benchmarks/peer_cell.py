"""Ours vs torchvision's Mask R-CNN on samples/cell/train.py's task, scored by our metric.

    python benchmarks/peer_cell.py --peer-python /path/to/venv/bin/python   # both, default data
    python benchmarks/peer_cell.py --skip-ours                   # the peer only ($PEER_PYTHON)
    python benchmarks/peer_cell.py --peer-optimizer sgd --bf16   # the peer with SGD, bfloat16
    python benchmarks/peer_cell.py --smoke                       # tiny sizes, a few minutes
    python benchmarks/peer_cell.py -- --epochs 10 --crop-size 320   # flags after -- go to train.py
    python benchmarks/peer_cell.py --export-only --work DIR      # write the work folder only

Both sides get exactly what ``python samples/cell/train.py [FLAGS]`` loads
(default: the embedded generated Sartorius data, 40 images, fold 0 of 5,
seed 0) and see as many training images: epochs x STEPS_PER_EPOCH x
BATCH_SIZE (7 x 60 x 2 = 840 by default), as the same crops (ours'
DataGenerator's image order and crop windows, from the same seeds). Ours
runs in this process (``main(argv)`` of samples/cell/train.py, with
``--model-dir WORK/ours``); the peer, benchmarks/peer_torchvision_cell.py,
runs in ``--peer-python`` (a Python with torch and torchvision; default
$PEER_PYTHON) on the work folder this script writes, trains
``maskrcnn_resnet50_fpn`` from random weights with ours' settings where
torchvision has them (see that file) and writes its detections on the
validation fold. They are scored here as ours are: the same post-processing
(``postprocess_config`` of train.py: score >= 0.5, overlaps removed, the
Sartorius minimum areas) and ``mrcnn.evaluation.evaluate`` (competition
mAP-IoU, per class, COCO AP), fed the stored detections instead of a model.

Other flags (``--threads``, ``--peer-optimizer``, ``--peer-lr``, ``--bf16``,
``--work``) are this script's; unknown ones go to train.py. Supported there:
``--image-mode crop`` (the default), ``--augment none`` or ``flips``, scale 1,
random initial weights. The last line is ``ours_map_iou=... peer_map_iou=...
ours_train_s=... peer_train_s=...``; WORK/results.json has the table's data.
"""

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TRAIN_SCRIPT = os.path.join(ROOT, "samples", "cell", "train.py")
PEER_SCRIPT = os.path.join(HERE, "peer_torchvision_cell.py")
FORMAT_VERSION = 1      # of the work folder; peer_torchvision_cell.FORMAT_VERSION reads it

SMOKE_ARGV = ["--synthetic-images", "6", "--folds", "3", "--epochs", "1",
              "--steps-per-epoch", "2", "--validation-steps", "1", "--crop-size", "128",
              "--max-gt-instances", "64", "--detection-max-instances", "100"]


def load_train_module():
    """samples/cell/train.py as a module (its build_parser, load_data, make_config, main)."""
    spec = importlib.util.spec_from_file_location("cell_train", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_peer_module():
    """benchmarks/peer_torchvision_cell.py (its file readers and writers need no torch)."""
    spec = importlib.util.spec_from_file_location("peer_torchvision_cell", PEER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image_key(image):
    """Shape + SHA-1 of an image: ties a stored prediction to the image it was made on."""
    image = np.ascontiguousarray(image)
    return f"{'x'.join(map(str, image.shape))}:{hashlib.sha1(image.tobytes()).hexdigest()}"


# ------------------------------------------------------------------------------------ export
def check_supported(args):
    """Rejects train.py flags the peer cannot follow (exits with what to change)."""
    problems = []
    if args.image_mode != "crop":
        problems.append(f"--image-mode {args.image_mode}: the peer trains on crops "
                        f"(--image-mode crop)")
    if args.augment not in ("none", "flips"):
        problems.append(f"--augment {args.augment}: the peer has none and flips")
    if args.scale != 1.0 or args.scale_range is not None:
        problems.append("--scale / --scale-range: the peer trains at scale 1")
    if args.init != "none" or args.resume or args.weights != "none":
        problems.append("--init / --resume / --weights: both sides start from random weights")
    if problems:
        raise SystemExit("peer_cell.py cannot match: " + "; ".join(problems))


def _levels(scales):
    return [[int(s) for s in (level if isinstance(level, (tuple, list)) else (level,))]
            for level in scales]


def optimizer_settings(config, args, peer_optimizer=None, peer_lr=None):
    """The peer's optimizer: ours' (name, lr, schedule, decay, clipping) unless overridden."""
    ours = config.OPTIMIZER.lower()
    name = peer_optimizer or ours
    lr = peer_lr or (float(config.LEARNING_RATE) if name == ours else
                     {"adamw": 0.002, "sgd": 0.01}[name])
    schedule = config.LR_SCHEDULE
    schedule = {True: "cosine", False: "constant", None: "constant"}.get(schedule, schedule)
    return {"name": name, "lr": lr, "momentum": float(config.LEARNING_MOMENTUM),
            "weight_decay": float(config.WEIGHT_DECAY or 0.0),
            "warmup_steps": int(config.N_WARMUP_STEPS), "schedule": schedule,
            "final_fraction": 0.01,   # mrcnn.training.schedule.WarmupDecay's default
            "decay_steps": [int(e) * int(config.STEPS_PER_EPOCH)
                            for e in config.LR_DECAY_EPOCHS],
            "gamma": float(config.LR_DECAY_GAMMA),
            "clip_norm": float(config.GRADIENT_CLIP_NORM or 0.0)}


def crop_plan(train, shapes, config, epochs, seed, augment):
    """int32 [images seen, 6]: image id, crop y, x, left-right, up-down flip, turns.

    The order and crops of ours' DataGenerator: epoch ``e``'s image order is
    ``default_rng((seed, e)).permutation(image_ids)``, sample ``p`` of the
    epoch is image ``order[p % len(order)]`` cropped at ``crop_origin`` drawn
    from ``default_rng((seed, e, p))``. With ``--augment flips`` ours draws
    its flips before the crop (other windows); the peer's are drawn after.
    """
    from mrcnn.data.fit import crop_origin

    size, batch = int(config.IMAGE_MIN_DIM), int(config.BATCH_SIZE)
    rows = []
    for epoch in range(epochs):
        order = np.random.default_rng((seed, epoch)).permutation(np.asarray(train.image_ids))
        for position in range(int(config.STEPS_PER_EPOCH) * batch):
            image_id = int(order[position % len(order)])
            rng = np.random.default_rng((seed, epoch, position))
            y, x = crop_origin(shapes[image_id], size, rng)
            flips = (0, 0, 0)
            if augment == "flips":
                flips = (int(rng.random() < 0.5), int(rng.random() < 0.5), int(rng.integers(4)))
            rows.append((image_id, y, x) + flips)
    return np.asarray(rows, np.int32).reshape(-1, 6)


def export(work, train_argv, threads=2, peer_optimizer=None, peer_lr=None, train_module=None):
    """Writes the work folder the peer reads; returns (settings, val dataset, module, args).

    Raises:
        SystemExit: train.py flags the peer cannot follow, or a crop larger
            than a training image.
    """
    from mrcnn.data.masks.sparse import SparseMasks

    module = train_module or load_train_module()
    args = module.build_parser().parse_args(train_argv)
    check_supported(args)
    train, val = module.load_data(args)
    config, infer_config = module.make_config(args, train.class_names)
    if val.num_images == 0:
        raise SystemExit("the validation fold is empty: use more images or fewer --folds")
    for sub in ("train", "val", "peer"):
        shutil.rmtree(os.path.join(work, sub), ignore_errors=True)
        os.makedirs(os.path.join(work, sub))
    size = int(config.IMAGE_MIN_DIM)
    shapes, pixel_sum, pixel_sq, pixel_n = {}, np.zeros(3), np.zeros(3), 0
    for image_id in train.image_ids:
        image = np.asarray(train.load_image(image_id))
        masks, class_ids = train.load_mask(image_id)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise SystemExit(f"{train.image_reference(image_id)}: expected uint8 [H, W, 3], "
                             f"got {image.dtype} {image.shape}")
        if min(image.shape[:2]) < size:
            raise SystemExit(f"{train.image_reference(image_id)} is {image.shape[0]}x"
                             f"{image.shape[1]}, smaller than the {size}px crop: ours would "
                             f"scale it up, the peer does not; lower --crop-size")
        shapes[int(image_id)] = image.shape[:2]
        sparse = SparseMasks.from_dense(np.asarray(masks, bool))
        np.savez_compressed(os.path.join(work, "train", f"{int(image_id):06d}.npz"),
                            image=image, instance=sparse.instance.astype(np.int32),
                            pixel=sparse.pixel.astype(np.int32),
                            class_ids=np.asarray(class_ids, np.int32))
        values = image.reshape(-1, 3) / 255.0
        pixel_sum += values.sum(0)
        pixel_sq += (values ** 2).sum(0)
        pixel_n += values.shape[0]
    for index, image_id in enumerate(val.image_ids):
        image = np.asarray(val.load_image(image_id))
        np.savez_compressed(os.path.join(work, "val", f"{index:06d}.npz"), image=image,
                            key=np.asarray(image_key(image)))
    plan = crop_plan(train, shapes, config, args.epochs, args.seed, args.augment)
    np.save(os.path.join(work, "plan.npy"), plan)
    mean = pixel_sum / pixel_n
    settings = {
        "format_version": FORMAT_VERSION, "train_argv": list(train_argv),
        "class_names": list(train.class_names), "num_classes": int(config.NUM_CLASSES),
        "n_train": int(train.num_images), "n_val": int(val.num_images),
        "epochs": int(args.epochs), "steps_per_epoch": int(config.STEPS_PER_EPOCH),
        "batch": int(config.BATCH_SIZE), "images_per_gpu": int(config.IMAGES_PER_GPU),
        "steps": int(args.epochs) * int(config.STEPS_PER_EPOCH),
        "images_seen": int(len(plan)), "crop_size": size, "augment": args.augment,
        "anchor_sizes": _levels(config.RPN_ANCHOR_SCALES),
        "anchor_ratios_wh": [float(r) for r in config.RPN_ANCHOR_RATIOS],
        "rpn_train_anchors_per_image": int(config.RPN_TRAIN_ANCHORS_PER_IMAGE),
        "rpn_nms_threshold": float(config.RPN_NMS_THRESHOLD),
        "pre_nms_limit": int(config.PRE_NMS_LIMIT),
        "post_nms_rois_training": int(config.POST_NMS_ROIS_TRAINING),
        "post_nms_rois_inference": int(config.POST_NMS_ROIS_INFERENCE),
        "train_rois_per_image": int(config.TRAIN_ROIS_PER_IMAGE),
        "roi_positive_ratio": float(config.ROI_POSITIVE_RATIO),
        "max_gt_instances": int(config.MAX_GT_INSTANCES),
        "detection_max_instances": int(infer_config.DETECTION_MAX_INSTANCES),
        "detection_min_confidence": float(infer_config.DETECTION_MIN_CONFIDENCE),
        "detection_nms_threshold": float(infer_config.DETECTION_NMS_THRESHOLD),
        "detection_mask_threshold": float(infer_config.DETECTION_MASK_THRESHOLD),
        "mask_shape": [int(v) for v in config.MASK_SHAPE],
        # residual blocks started as the identity (ours' default for a ResNet from random
        # weights): the peer zeroes its bottlenecks' last batch norm weights alike
        "zero_init_residual": bool(getattr(config, "BACKBONE_ZERO_INIT_RESIDUAL", False)),
        # the peer normalizes by the training images' statistics (torchvision's
        # convention); ours subtracts MEAN_PIXEL only
        "image_mean": [float(v) for v in mean],
        "image_std": [float(v) for v in np.sqrt(np.maximum(pixel_sq / pixel_n - mean ** 2,
                                                           1e-12))],
        "optimizer": optimizer_settings(config, args, peer_optimizer, peer_lr),
        "seed": int(args.seed), "threads": int(threads),
        "ours": {"backbone": config.BACKBONE, "optimizer": config.OPTIMIZER,
                 "learning_rate": float(config.LEARNING_RATE),
                 "mean_pixel": [float(v) for v in config.MEAN_PIXEL]},
    }
    with open(os.path.join(work, "settings.json"), "w") as f:
        json.dump(settings, f, indent=1)
    return settings, val, module, args


# ------------------------------------------------------------------------------------- ours
class StepTimer(keras.callbacks.Callback):
    """Seconds of each training batch, and (`timed_training`) the train() call's wall time."""

    def __init__(self):
        super().__init__()
        self.times, self.wall_s, self._t = [], 0.0, None

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._t)


@contextlib.contextmanager
def timed_training(timer):
    """MaskRCNN.train with `timer` among its callbacks and its wall time added to it."""
    import mrcnn.model as modellib

    original = modellib.MaskRCNN.train

    def train(self, *args, **kwargs):
        kwargs["custom_callbacks"] = list(kwargs.get("custom_callbacks") or []) + [timer]
        t = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            timer.wall_s += time.perf_counter() - t

    modellib.MaskRCNN.train = train
    try:
        yield timer
    finally:
        modellib.MaskRCNN.train = original


def run_ours(module, work, train_argv):
    """samples/cell/train.py's main() with --model-dir WORK/ours; scores and timings."""
    timer = StepTimer()
    with timed_training(timer):
        scores = module.main(list(train_argv) + ["--model-dir", os.path.join(work, "ours")])
    steady = timer.times[1:] or timer.times or [float("nan")]
    return {"scores": scores, "train_s": timer.wall_s, "steps": len(timer.times),
            "steps_total_s": sum(timer.times),
            "step_s_median": statistics.median(steady),
            "first_step_s": timer.times[0] if timer.times else float("nan")}


# ------------------------------------------------------------------------------------- peer
def run_peer(python, work, optimizer=None, lr=None, threads=None, bf16=False):
    """peer_torchvision_cell.py in `python`; its run.json.

    Raises:
        SystemExit: no Python given, or the peer failed (with its stderr's tail).
    """
    if not python:
        raise SystemExit("no peer Python: pass --peer-python (a Python with torch and "
                         "torchvision) or set $PEER_PYTHON, or --skip-peer")
    command = [python, PEER_SCRIPT, "--work", work]
    for flag, value in (("--optimizer", optimizer), ("--lr", lr), ("--threads", threads)):
        if value is not None:
            command += [flag, str(value)]
    if bf16:
        command.append("--bf16")
    print("peer:", " ".join(command), flush=True)
    try:
        proc = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    except OSError as error:
        raise SystemExit(f"cannot run the peer Python {python!r}: {error}") from None
    if proc.returncode:
        raise SystemExit(f"the peer failed (exit {proc.returncode}); its stderr ends:\n"
                         f"{proc.stderr[-3000:]}")
    with open(os.path.join(work, "peer", "run.json")) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------- scoring
class StoredDetections:
    """A ``detect(images)`` stand-in that returns stored results, found by each image's key."""

    def __init__(self, results, keys):
        self._by_key = {}
        for key, result in zip(keys, results):
            self._by_key.setdefault(key, []).append(result)

    def detect(self, images, verbose=0):
        out = []
        for image in images:
            queue = self._by_key.get(image_key(image))
            if not queue:
                raise ValueError(f"no stored detections for a validation image ({image_key(image)}"
                                 f"); the work folder was exported from other data")
            out.append(queue.pop(0))
        return out


def read_predictions(work, n_val, num_classes, folder="peer"):
    """A peer's detections (WORK/FOLDER/) as detect() results (sparse masks, rois from boxes).

    Returns:
        (results, keys): lists in validation order.

    Raises:
        FileNotFoundError: a missing prediction file.
        ValueError: malformed contents (shapes, labels, scores).
    """
    from mrcnn.data.masks.sparse import SparseMasks

    results, keys = [], []
    for index in range(n_val):
        path = os.path.join(work, folder, f"{index:06d}.npz")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: the peer wrote no detections for "
                                    f"validation image {index} (run the peer again)")
        with np.load(path) as f:
            h, w = (int(v) for v in f["shape"])
            scores, labels = f["scores"].astype(np.float32), f["labels"].astype(np.int32)
            boxes = f["boxes_xyxy"].astype(np.float64).reshape(-1, 4)
            instance, pixel, key = f["instance"], f["pixel"], str(f["key"])
        n = scores.size
        if labels.size != n or boxes.shape[0] != n:
            raise ValueError(f"{path}: {n} scores, {labels.size} labels, {boxes.shape[0]} boxes")
        if n and (labels.min() < 1 or labels.max() >= num_classes):
            raise ValueError(f"{path}: labels must lie in [1, {num_classes - 1}], got "
                             f"[{labels.min()}, {labels.max()}]")
        if n and not (np.all(np.isfinite(scores)) and scores.min() >= 0 and scores.max() <= 1):
            raise ValueError(f"{path}: scores must lie in [0, 1]")
        masks = SparseMasks((h, w), n, instance, pixel)
        rois = np.stack([np.floor(boxes[:, 1]), np.floor(boxes[:, 0]),
                         np.ceil(boxes[:, 3]), np.ceil(boxes[:, 2])], 1).astype(np.int32)
        results.append({"rois": rois, "class_ids": labels, "scores": scores, "masks": masks})
        keys.append(key)
    return results, keys


def score_peer(work, val, postprocess, num_classes, verbose=1, folder="peer"):
    """mrcnn.evaluation.evaluate of a peer's stored detections on the validation dataset."""
    from mrcnn.evaluation import evaluate

    results, keys = read_predictions(work, val.num_images, num_classes, folder)
    return evaluate(StoredDetections(results, keys), val, postprocess=postprocess,
                    verbose=verbose)


# ------------------------------------------------------------------------------------ table
def table(rows, class_names):
    """Text table of the runs: method, backbone, images seen, timings, mAP-IoU per class.

    Then where each method's score goes (`mrcnn.evaluation.report`'s ``errors``): objects
    missed and predictions false at IoU 0.5, and the median mask IoU of the matched pairs.
    """
    header = ["method", "backbone", "images", "train s", "steps s", "s/step",
              "mAP-IoU"] + list(class_names) + ["missed", "false", "IoU med"]
    lines = [header]
    for r in rows:
        per = r["scores"]["map_iou_per_class"]
        errors = r["scores"].get("errors")
        lines.append([r["method"], r["backbone"], str(r["images_seen"]),
                      f"{r['train_s']:.0f}", f"{r['steps_total_s']:.0f}", f"{r['step_s']:.3f}",
                      f"{r['scores']['map_iou']:.4f}"]
                     + [f"{per[c]:.4f}" if c in per else "-" for c in class_names]
                     + ([f"{errors['missed']}/{errors['n_gt']}",
                         f"{errors['false_positives']}/{errors['n_pred']}",
                         f"{errors['matched_iou_median']:.3f}"] if errors else ["-"] * 3))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) if i < 2 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(line, widths)))
                     for line in lines)


def _plain(scores):
    return {"map_iou": float(scores["map_iou"]),
            "map_iou_per_class": {str(k): float(v)
                                  for k, v in scores["map_iou_per_class"].items()},
            "mask_ap": float(scores["mask"]["AP"]) if "mask" in scores else None,
            "errors": scores.get("errors")}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "mrcnn_peer_cell"),
                   help="work folder: exported data, the peer's detections, ours' run "
                        "(default %(default)s)")
    p.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON"),
                   help="a Python with torch + torchvision (default $PEER_PYTHON)")
    p.add_argument("--skip-ours", action="store_true", help="run the peer only")
    p.add_argument("--skip-peer", action="store_true", help="run ours only")
    p.add_argument("--export-only", action="store_true",
                   help="write the work folder and stop (run the peer by hand)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes (" + " ".join(SMOKE_ARGV) + "; data cached in WORK/cache)")
    p.add_argument("--peer-optimizer", choices=("adamw", "sgd"), default=None,
                   help="the peer's optimizer: adamw (lr 2e-3) or sgd (lr 0.01, momentum 0.9); "
                        "default: ours' (AdamW unless --optimizer is given to train.py)")
    p.add_argument("--peer-lr", type=float, default=None, help="the peer's peak learning rate")
    p.add_argument("--bf16", action="store_true", help="the peer's forward in bfloat16 autocast")
    p.add_argument("--threads", type=int, default=2, help="the peer's torch threads")
    args, train_argv = p.parse_known_args(argv)
    train_argv = [a for a in train_argv if a != "--"]
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    if args.smoke:
        train_argv = SMOKE_ARGV + train_argv
        # train.py reads $MRCNN_CACHE_DIR when it is imported: keep the smoke data away
        # from the default data set's cache
        os.environ["MRCNN_CACHE_DIR"] = os.path.join(work, "cache")
    if not (args.skip_peer or args.export_only or args.peer_python):
        raise SystemExit("no peer Python: pass --peer-python (a Python with torch and "
                         "torchvision) or set $PEER_PYTHON, or --skip-peer")

    settings, val, module, targs = export(work, train_argv, args.threads, args.peer_optimizer,
                                          args.peer_lr)
    print(f"exported {settings['n_train']} training and {settings['n_val']} validation images "
          f"to {work}; images seen {settings['images_seen']} ({settings['epochs']} epochs x "
          f"{settings['steps_per_epoch']} steps x {settings['batch']})", flush=True)
    if args.export_only:
        return settings
    post = module.postprocess_config(val.class_names, targs.min_area, targs.overlaps)
    rows = []
    if not args.skip_ours:
        ours = run_ours(module, work, train_argv)
        rows.append({"method": "mrcnn (ours)", "backbone": settings["ours"]["backbone"],
                     "images_seen": settings["images_seen"], "train_s": ours["train_s"],
                     "steps_total_s": ours["steps_total_s"], "step_s": ours["step_s_median"],
                     "scores": ours["scores"], "steps": ours["steps"]})
    if not args.skip_peer:
        peer = run_peer(args.peer_python, work, args.peer_optimizer, args.peer_lr,
                        args.threads, args.bf16)
        print("\npeer (torchvision) on the validation fold, our post-processing and metric:")
        scores = score_peer(work, val, post, settings["num_classes"])
        name = f"torchvision {peer['torchvision'].split('+')[0]} {peer['optimizer']['name']}" \
               + (" bf16" if peer["bf16"] else "")
        rows.append({"method": name, "backbone": peer["backbone"],
                     "images_seen": peer["images_seen"], "train_s": peer["train_s"],
                     "steps_total_s": peer["steps_total_s"], "step_s": peer["step_s_median"],
                     "scores": scores, "steps": peer["steps"],
                     "predict_s_per_image": peer["predict_s_per_image"]})
    class_names = [c for c in val.class_names[1:]]
    print(f"\n{settings['n_val']} validation images, fold {targs.fold} of {targs.folds}, seed "
          f"{targs.seed}; {settings['crop_size']}px crops, batch {settings['batch']}; train s: "
          f"the training call's wall time (ours: with its per-epoch validation loss and "
          f"checkpoints), steps s: the sum of its steps, s/step: their median after the first")
    print(table(rows, class_names))
    results = [dict({k: v for k, v in r.items() if k != "scores"}, scores=_plain(r["scores"]))
               for r in rows]
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump({"settings": settings, "runs": results}, f, indent=1)
    by = {("ours" if r["method"].startswith("mrcnn") else "peer"): r for r in rows}
    nan = float("nan")
    print(f"ours_map_iou={by['ours']['scores']['map_iou'] if 'ours' in by else nan:.4f} "
          f"peer_map_iou={by['peer']['scores']['map_iou'] if 'peer' in by else nan:.4f} "
          f"ours_train_s={by['ours']['train_s'] if 'ours' in by else nan:.1f} "
          f"peer_train_s={by['peer']['train_s'] if 'peer' in by else nan:.1f}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
