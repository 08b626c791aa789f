"""torchvision's Mask R-CNN trained on the data benchmarks/peer_cell.py exported (the peer side).

benchmarks/peer_cell.py runs this script in a Python that has torch and
torchvision (not dependencies of mrcnn) and scores what it writes with the
library's evaluation; by hand:

    python benchmarks/peer_cell.py --work /tmp/peer_cell --skip-ours --export-only
    /path/to/venv/bin/python benchmarks/peer_torchvision_cell.py --work /tmp/peer_cell
    /path/to/venv/bin/python benchmarks/peer_torchvision_cell.py --work /tmp/peer_cell \\
        --optimizer sgd --bf16

The model is ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)``,
all backbone layers trainable with BatchNorm in training mode (ours:
TRAIN_BN = True), set up with ours' values where torchvision has the
setting: anchor sizes and ratios per FPN level P2..P6, RPN anchors sampled
per image, proposals kept before and after NMS, ROIs sampled per image and
their positive fraction, detections per image, score and NMS thresholds. It
trains on the exported crop plan (the images and crop windows of ours'
DataGenerator, in its order), ``batch`` crops per step, with ours' schedule:
linear warm-up, then cosine (or ours' other schedule), per-parameter
gradient-norm clipping, decoupled weight decay on weights only (not on
BatchNorm or biases), as keras.optimizers.AdamW / SGD apply them.
``--optimizer`` picks AdamW (lr 2e-3) or SGD with momentum (lr 0.01).
Images are not resized: crops enter at their size and each validation image
at its own (``transform.min_size`` / ``max_size`` set per image).

Work folder (written by peer_cell.py; this script reads it and writes peer/):

* ``settings.json``: the settings (see ``peer_cell.export``);
* ``plan.npy``: int32 ``[images seen, 6]``: training image index, crop
  ``y``, ``x``, left-right flip, up-down flip, 90-degree turns;
* ``train/NNNNNN.npz``: ``image`` uint8 ``[H, W, 3]``; ``instance``,
  ``pixel`` int32 ``[P]`` (each foreground pixel's instance and row-major
  index ``y * W + x``, sorted by instance); ``class_ids`` int32 ``[N]``;
* ``val/NNNNNN.npz``: ``image``, ``key`` (shape + SHA-1 of the image);
* written here: ``peer/NNNNNN.npz`` per validation image (``instance``,
  ``pixel`` of the masks at ``prob >= 0.5``, ``shape``, ``scores``,
  ``labels``, ``boxes_xyxy``, ``key``) and ``peer/run.json`` (timings,
  versions, losses).

torch is imported inside the functions that use it: the file readers and
writers and the crop builder also run without it (tests/test_peer_cell.py).
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

SETTINGS = "settings.json"
PLAN = "plan.npy"
PEER_DIR = "peer"
RUN = "run.json"
FORMAT_VERSION = 1


# ------------------------------------------------------------------ work folder (NumPy only)
def load_settings(work):
    """settings.json of a work folder.

    Raises:
        FileNotFoundError: no such folder, or no settings.json in it (run
            benchmarks/peer_cell.py first).
        ValueError: a settings.json of another format version.
    """
    if not os.path.isdir(work):
        raise FileNotFoundError(f"work folder {work!r} does not exist; benchmarks/peer_cell.py "
                                f"writes it (--work)")
    path = os.path.join(work, SETTINGS)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: {work!r} is not a work folder written by "
                                f"benchmarks/peer_cell.py")
    with open(path) as f:
        settings = json.load(f)
    if settings.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {settings.get('format_version')!r}, this "
                         f"script reads {FORMAT_VERSION}; export again with peer_cell.py")
    return settings


def item_path(work, subset, index):
    return os.path.join(work, subset, f"{index:06d}.npz")


def load_train_item(path):
    """One exported training image: dict with image, ys, xs, instance (sorted), class_ids."""
    with np.load(path) as f:
        image, instance, pixel = f["image"], f["instance"], f["pixel"]
        class_ids = f["class_ids"]
    width = image.shape[1]
    return {"image": image, "instance": instance.astype(np.int64),
            "ys": (pixel // width).astype(np.int32), "xs": (pixel % width).astype(np.int32),
            "class_ids": class_ids.astype(np.int32)}


def training_sample(item, y, x, size, max_instances, flip_lr=0, flip_ud=0, turns=0):
    """The crop ours' DataGenerator makes (no resize), as NumPy arrays.

    Instances without pixels in the crop are dropped; of the others the
    ``max_instances`` with the largest boxes are kept, in their order
    (Config.MAX_GT_INSTANCES). Flips and turns apply to the crop.

    Returns:
        image uint8 ``[size, size, 3]``, boxes int32 ``[n, (y1, x1, y2, x2)]``
        pixels with y2/x2 exclusive, class_ids int32 ``[n]``, masks bool
        ``[n, size, size]``.
    """
    image = item["image"][y:y + size, x:x + size]
    if image.shape[:2] != (size, size):
        raise ValueError(f"crop ({y}, {x}) of {size}x{size} leaves the "
                         f"{item['image'].shape[0]}x{item['image'].shape[1]} image")
    ys, xs, inst = item["ys"], item["xs"], item["instance"]
    inside = (ys >= y) & (ys < y + size) & (xs >= x) & (xs < x + size)
    ys, xs, inst = ys[inside] - y, xs[inside] - x, inst[inside]
    present, first = np.unique(inst, return_index=True)     # inst is sorted
    if present.size:
        y1, y2 = np.minimum.reduceat(ys, first), np.maximum.reduceat(ys, first) + 1
        x1, x2 = np.minimum.reduceat(xs, first), np.maximum.reduceat(xs, first) + 1
        area = (y2 - y1).astype(np.int64) * (x2 - x1)
        keep = np.sort(np.argsort(-area, kind="stable")[:max_instances])
    else:
        keep = np.zeros(0, np.int64)
    rank = np.full(int(inst.max()) + 1 if inst.size else 0, -1, np.int64)
    rank[present[keep]] = np.arange(keep.size)
    masks = np.zeros((keep.size, size, size), bool)
    sel = rank[inst] >= 0 if inst.size else np.zeros(0, bool)
    masks[rank[inst[sel]], ys[sel], xs[sel]] = True
    class_ids = item["class_ids"][present[keep]]
    if flip_lr:
        image, masks = image[:, ::-1], masks[:, :, ::-1]
    if flip_ud:
        image, masks = image[::-1], masks[:, ::-1]
    if turns:
        image, masks = np.rot90(image, turns, (0, 1)), np.rot90(masks, turns, (1, 2))
    rows, cols = masks.any(2), masks.any(1)
    boxes = np.zeros((keep.size, 4), np.int32)
    for i in range(keep.size):
        r, c = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        boxes[i] = (r[0], c[0], r[-1] + 1, c[-1] + 1)
    return (np.ascontiguousarray(image), boxes, class_ids.astype(np.int32),
            np.ascontiguousarray(masks))


def write_prediction(path, shape, instance, pixel, scores, labels, boxes_xyxy, key):
    """One validation image's detections, masks as (instance, row-major pixel) pairs."""
    np.savez_compressed(path, shape=np.asarray(shape, np.int32),
                        instance=np.asarray(instance, np.int32),
                        pixel=np.asarray(pixel, np.int32),
                        scores=np.asarray(scores, np.float32).reshape(-1),
                        labels=np.asarray(labels, np.int32).reshape(-1),
                        boxes_xyxy=np.asarray(boxes_xyxy, np.float32).reshape(-1, 4),
                        key=np.asarray(key))


def learning_rate(step, opt):
    """Ours' schedule (mrcnn.training.schedule) at optimizer step ``step`` (0-based)."""
    base, warm = opt["lr"], int(opt["warmup_steps"])
    ramp = min((step + 1.0) / warm, 1.0) if warm > 0 else 1.0
    schedule = opt["schedule"]
    if schedule == "step":
        return base * ramp * opt["gamma"] ** sum(step >= s for s in opt["decay_steps"])
    span = max(opt["total_steps"] - warm, 1)
    t = min(max((step - warm) / span, 0.0), 1.0)
    f = opt["final_fraction"]
    if schedule == "cosine":
        factor = f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * t))
    elif schedule == "exponential":
        factor = f ** t
    elif schedule in (None, "constant"):
        factor = 1.0
    else:
        raise ValueError(f"schedule must be cosine, exponential, step or constant, got "
                         f"{schedule!r}")
    return base * ramp * factor


# ------------------------------------------------------------------------------ torch side
def build_model(settings):
    """maskrcnn_resnet50_fpn from random weights with ours' settings."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes = tuple(tuple(int(s) for s in level) for level in settings["anchor_sizes"])
    # ours' ratios are width / height, torchvision's height / width
    ratios = tuple(sorted(1.0 / float(r) for r in settings["anchor_ratios_wh"]))
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=(ratios,) * len(sizes))
    crop = int(settings["crop_size"])
    # trainable_backbone_layers is left out: without weights torchvision trains all
    # five stages (and warns if it is passed).
    model = maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=int(settings["num_classes"]),
        min_size=crop, max_size=crop,
        image_mean=settings["image_mean"], image_std=settings["image_std"],
        rpn_anchor_generator=anchors,
        rpn_batch_size_per_image=settings["rpn_train_anchors_per_image"],
        rpn_nms_thresh=settings["rpn_nms_threshold"],
        rpn_pre_nms_top_n_train=settings["pre_nms_limit"],
        rpn_pre_nms_top_n_test=settings["pre_nms_limit"],
        rpn_post_nms_top_n_train=settings["post_nms_rois_training"],
        rpn_post_nms_top_n_test=settings["post_nms_rois_inference"],
        box_batch_size_per_image=settings["train_rois_per_image"],
        box_positive_fraction=settings["roi_positive_ratio"],
        box_detections_per_img=settings["detection_max_instances"],
        box_score_thresh=settings["detection_min_confidence"],
        box_nms_thresh=settings["detection_nms_threshold"])
    if settings.get("zero_init_residual", False):      # ours' BACKBONE_ZERO_INIT_RESIDUAL
        zero_residual_gammas(model.backbone.body)
    return model


def zero_residual_gammas(body):
    """Start each bottleneck of a torchvision ResNet body as its shortcut: the last batch
    norm's weight (``bn3``) set to 0, as ``torchvision.models.resnet50(zero_init_residual=True)``
    does; the detection builder has no such argument. Returns the number of blocks (16 for
    ResNet-50)."""
    import torch
    from torchvision.models.resnet import Bottleneck
    blocks = [m for m in body.modules() if isinstance(m, Bottleneck)]
    with torch.no_grad():
        for block in blocks:
            block.bn3.weight.zero_()
    return len(blocks)


def make_optimizer(model, opt):
    """torch AdamW / SGD without weight decay; the decay is applied by `decay_weights`."""
    import torch
    params = [p for p in model.parameters() if p.requires_grad]
    if opt["name"] == "adamw":     # keras.optimizers.AdamW: beta_1 = momentum, epsilon 1e-7
        optimizer = torch.optim.Adam(params, lr=opt["lr"], betas=(opt["momentum"], 0.999),
                                     eps=1e-7, weight_decay=0.0)
    elif opt["name"] == "sgd":
        optimizer = torch.optim.SGD(params, lr=opt["lr"], momentum=opt["momentum"],
                                    weight_decay=0.0)
    else:
        raise ValueError(f"optimizer must be adamw or sgd, got {opt['name']!r}")
    decayed = [p for p in params if p.ndim > 1]   # conv / linear weights, not BN or biases
    return optimizer, decayed


def train(model, settings, work, opt, bf16=False, log_every=10):
    """Trains on the crop plan; returns the run's timings and losses."""
    import torch
    plan = np.load(os.path.join(work, PLAN))
    batch, size = int(settings["batch"]), int(settings["crop_size"])
    if plan.ndim != 2 or plan.shape[1] != 6 or len(plan) % batch:
        raise ValueError(f"{PLAN}: expected int32 [images seen, 6] with a multiple of the "
                         f"batch ({batch}) rows, got shape {plan.shape}")
    items = {int(i): load_train_item(item_path(work, "train", int(i)))
             for i in np.unique(plan[:, 0])}
    steps = len(plan) // batch
    optimizer, decayed = make_optimizer(model, opt)
    clip = opt["clip_norm"]
    model.train()
    times, losses = [], []
    t_start = time.perf_counter()
    for step in range(steps):
        t = time.perf_counter()
        images, targets = [], []
        for index, y, x, lr_flip, ud_flip, turns in plan[step * batch:(step + 1) * batch]:
            image, boxes, class_ids, masks = training_sample(
                items[int(index)], int(y), int(x), size, settings["max_gt_instances"],
                lr_flip, ud_flip, int(turns))
            images.append(torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0))
            targets.append({
                "boxes": torch.from_numpy(boxes[:, [1, 0, 3, 2]].astype(np.float32)),
                "labels": torch.from_numpy(class_ids.astype(np.int64)),
                "masks": torch.from_numpy(masks.astype(np.uint8))})
        rate = learning_rate(step, opt)
        for group in optimizer.param_groups:
            group["lr"] = rate
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            parts = model(images, targets)
        loss = sum(parts.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step}: loss {loss.item()} "
                                     f"({ {k: v.item() for k, v in parts.items()} })")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            if clip:                       # keras clipnorm: each variable's own norm
                for p in model.parameters():
                    if p.grad is not None:
                        norm = torch.linalg.vector_norm(p.grad)
                        if norm > clip:
                            p.grad.mul_(clip / norm)
            if opt["weight_decay"]:        # keras: var -= var * weight_decay * lr
                torch._foreach_mul_(decayed, 1.0 - rate * opt["weight_decay"])
        optimizer.step()
        times.append(time.perf_counter() - t)
        losses.append({k: round(v.item(), 5) for k, v in parts.items()})
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step + 1}/{steps} loss {loss.item():.4f} lr {rate:.2e} "
                  f"{times[-1]:.2f}s", flush=True)
    train_s = time.perf_counter() - t_start
    steady = times[1:] or times
    return {"train_s": train_s, "steps": steps, "images_seen": int(len(plan)),
            "steps_total_s": sum(times), "step_s_median": statistics.median(steady),
            "step_s_mean": statistics.fmean(steady),
            "first_step_s": times[0] if times else float("nan"), "losses": losses}


def predict(model, settings, work, bf16=False):
    """Detections of every validation image into peer/NNNNNN.npz; returns seconds per image."""
    import torch
    threshold = float(settings["detection_mask_threshold"])
    model.eval()
    times = []
    for index in range(int(settings["n_val"])):
        with np.load(item_path(work, "val", index)) as f:
            image, key = f["image"], str(f["key"])
        h, w = image.shape[:2]
        model.transform.min_size = (min(h, w),)    # scale 1: no resizing
        model.transform.max_size = max(h, w)
        tensor = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
        t = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model([tensor])[0]
        masks = out["masks"][:, 0].float() >= threshold
        if masks.shape[1:] != (h, w):
            raise ValueError(f"validation image {index}: masks {tuple(masks.shape)} for a "
                             f"{h}x{w} image")
        nz = masks.nonzero().numpy()
        times.append(time.perf_counter() - t)
        write_prediction(item_path(work, PEER_DIR, index), (h, w), nz[:, 0],
                         nz[:, 1] * w + nz[:, 2], out["scores"].float().numpy(),
                         out["labels"].numpy(), out["boxes"].float().numpy(), key)
        print(f"validation image {index + 1}/{settings['n_val']}: {len(out['scores'])} "
              f"detections, {times[-1]:.1f}s", flush=True)
    return statistics.median(times) if times else float("nan")


def optimizer_settings(settings, name=None, lr=None):
    """settings['optimizer'] with --optimizer / --lr applied (lr 2e-3 AdamW, 0.01 SGD)."""
    opt = dict(settings["optimizer"])
    if name and name != opt["name"]:
        opt["name"] = name
        opt["lr"] = {"adamw": 0.002, "sgd": 0.01}[name]
    if lr:
        opt["lr"] = float(lr)
    opt["total_steps"] = int(settings["steps"])
    return opt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="work folder written by peer_cell.py")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default=None,
                   help="default: the settings' (ours' optimizer, AdamW by default)")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: ours' with ours' optimizer, else 2e-3 "
                        "AdamW / 0.01 SGD)")
    p.add_argument("--threads", type=int, default=None, help="default: the settings' (2)")
    p.add_argument("--bf16", action="store_true",
                   help="torch.autocast('cpu', bfloat16) around the forward passes")
    p.add_argument("--log-every", type=int, default=20, help="print the loss every N steps")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.work)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None

    import torch
    import torchvision
    threads = args.threads or int(settings["threads"])
    torch.set_num_threads(threads)
    torch.manual_seed(int(settings["seed"]))
    opt = optimizer_settings(settings, args.optimizer, args.lr)
    os.makedirs(os.path.join(args.work, PEER_DIR), exist_ok=True)
    for name in os.listdir(os.path.join(args.work, PEER_DIR)):   # no stale predictions
        if name.endswith(".npz") or name == RUN:
            os.remove(os.path.join(args.work, PEER_DIR, name))
    model = build_model(settings)
    print(f"torch {torch.__version__} torchvision {torchvision.__version__}, {threads} "
          f"threads, {opt['name']} lr {opt['lr']}, {settings['steps']} steps of "
          f"{settings['batch']} {settings['crop_size']}px crops"
          f"{', bfloat16 autocast' if args.bf16 else ''}", flush=True)
    run = train(model, settings, args.work, opt, bf16=args.bf16, log_every=args.log_every)
    run["predict_s_per_image"] = predict(model, settings, args.work, bf16=args.bf16)
    run.update(torch=torch.__version__, torchvision=torchvision.__version__, threads=threads,
               optimizer=opt, bf16=args.bf16,
               params=sum(p.numel() for p in model.parameters()),
               backbone="resnet50-fpn (torchvision)")
    with open(os.path.join(args.work, PEER_DIR, RUN), "w") as f:
        json.dump(run, f, indent=1)
    print(json.dumps({k: run[k] for k in ("train_s", "steps", "step_s_median",
                                          "predict_s_per_image")}))
    return run


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
