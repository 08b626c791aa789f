"""Cellpose 3 trained from scratch on the data benchmarks/peer_cell.py exported (a second peer).

benchmarks/real_nuclei.py runs this script in a Python that has cellpose 3
(``pip install cellpose==3.1.1.2``: torch, not a dependency of mrcnn) on the
work folder it exported, and scores what it writes with the library's
evaluation, like torchvision's detections; by hand:

    /path/to/venv/bin/python benchmarks/peer_cellpose.py --work /tmp/mrcnn_real_nuclei/fold0

The network is Cellpose's own (``CellposeModel(pretrained_model=False)``:
random weights, ``diam_mean`` 17 as Cellpose's nuclei model, 2 input
channels: the gray image and zeros), trained with ``cellpose.train.train_seg``
and its recipe: its flows as targets, its random rotations, scalings and
``--bsize`` crops, its learning-rate schedule (warm-up, then halvings over
the last epochs), AdamW at 0.005 (``--sgd``: SGD at 0.2, its older default).
It sees as many training images as ours did: ``images_seen`` of
settings.json, as ``ceil(images_seen / n_train)`` epochs over the whole
training images (Cellpose crops each image once per epoch), ``batch``
images per step. The validation images are segmented at the training
masks' mean diameter (what the trained network learned, ``diam_labels``);
every instance gets the score 1 (Cellpose has none) and label 1.

Writes ``cellpose/NNNNNN.npz`` per validation image (the format of
peer_torchvision_cell.write_prediction) and ``cellpose/run.json``. With
``--augment`` the same network also segments each validation image with
Cellpose's test-time augmentation (``eval(augment=True)``: the flows of
flipped copies of every tile averaged) into ``cellpose_augment/``, so that the
peer is scored at its best setting next to ours' ``--tta``. ``--eval-only``
segments with the network a previous run saved (``cellpose/models/``)
instead of training one.
"""

import argparse
import importlib.util
import json
import math
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = "cellpose"
AUGMENT_DIR = "cellpose_augment"
MODEL_NAME = "cellpose_scratch"


def _work_folder():
    """benchmarks/peer_torchvision_cell.py: the work folder's readers and writers (NumPy only)."""
    spec = importlib.util.spec_from_file_location(
        "peer_torchvision_cell", os.path.join(HERE, "peer_torchvision_cell.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def label_image(item):
    """An exported training image's instances as one int32 label image [H, W] (0: background).

    A pixel of two instances keeps the later one's label (Cellpose's targets
    are label images; exported masks of one image rarely overlap).
    """
    h, w = item["image"].shape[:2]
    labels = np.zeros((h, w), np.int32)
    labels[item["ys"], item["xs"]] = item["instance"].astype(np.int32) + 1
    return labels


def gray(image):
    """uint8 [H, W, 3] (or [H, W]) -> float32 [H, W]: the channel mean."""
    image = np.asarray(image, np.float32)
    return image.mean(-1) if image.ndim == 3 else image


def instances_of(labels):
    """A label image -> (instance, pixel, boxes_xyxy) of its instances, in label order.

    ``pixel`` is the row-major index ``y * W + x``; boxes have exclusive
    x2, y2 (pixel edges), as the exported predictions of the other peer.
    """
    labels = np.asarray(labels)
    h, w = labels.shape
    flat = labels.reshape(-1)
    pixel = np.flatnonzero(flat)
    values = flat[pixel]
    order = np.argsort(values, kind="stable")
    pixel, values = pixel[order], values[order]
    ids, first = np.unique(values, return_index=True)
    instance = np.repeat(np.arange(ids.size), np.diff(np.append(first, values.size)))
    ys, xs = pixel // w, pixel % w
    boxes = np.zeros((ids.size, 4), np.float32)
    if ids.size:
        boxes[:, 0] = np.minimum.reduceat(xs, first)
        boxes[:, 1] = np.minimum.reduceat(ys, first)
        boxes[:, 2] = np.maximum.reduceat(xs, first) + 1
        boxes[:, 3] = np.maximum.reduceat(ys, first) + 1
    return instance.astype(np.int32), pixel.astype(np.int32), boxes


def epochs_for(images_seen, n_train):
    """Cellpose epochs (each crops every training image once) to see `images_seen` images."""
    if n_train < 1:
        raise ValueError(f"no training images (n_train={n_train})")
    return max(1, math.ceil(images_seen / n_train))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="work folder written by peer_cell.export")
    p.add_argument("--sgd", action="store_true", help="SGD at lr 0.2 (default AdamW 0.005)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--bsize", type=int, default=None,
                   help="training crop side (default: the exported crop size)")
    p.add_argument("--threads", type=int, default=None, help="default: the settings' (2)")
    p.add_argument("--augment", action="store_true",
                   help=f"also segment with Cellpose's test-time augmentation into {AUGMENT_DIR}/")
    p.add_argument("--eval-only", action="store_true",
                   help=f"no training: segment with {OUT_DIR}/models/{MODEL_NAME} of an earlier run")
    args = p.parse_args(argv)
    folder = _work_folder()
    try:
        settings = folder.load_settings(args.work)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(str(error)) from None

    import torch
    import logging

    import cellpose
    from cellpose import models, train
    # train_seg reports its loss every 10 epochs through logging
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    for name in ("cellpose.models", "cellpose.core", "cellpose.dynamics"):
        logging.getLogger(name).setLevel(logging.WARNING)
    version = getattr(cellpose, "version", "?")
    version = getattr(version, "version", version)     # a module in some releases

    threads = args.threads or int(settings["threads"])
    torch.set_num_threads(threads)
    torch.manual_seed(int(settings["seed"]))
    np.random.seed(int(settings["seed"]))
    out = os.path.join(args.work, OUT_DIR)
    saved = os.path.join(out, "models", MODEL_NAME)
    if args.eval_only and not os.path.isfile(saved):
        raise SystemExit(f"--eval-only: no trained network at {saved} (run without it first)")
    previous = None
    if args.eval_only and os.path.isfile(os.path.join(out, "run.json")):
        with open(os.path.join(out, "run.json")) as f:
            previous = json.load(f)
    outputs = [out] + ([os.path.join(args.work, AUGMENT_DIR)] if args.augment else [])
    for folder_path in outputs:
        os.makedirs(folder_path, exist_ok=True)
        for name in os.listdir(folder_path):           # no stale predictions
            if name.endswith(".npz") or name == "run.json":
                os.remove(os.path.join(folder_path, name))

    images, labels = [], []
    for index in range(int(settings["n_train"])):
        item = folder.load_train_item(folder.item_path(args.work, "train", index))
        images.append(gray(item["image"]))
        labels.append(label_image(item))
    n_train = len(images)
    epochs = epochs_for(int(settings["images_seen"]), n_train)
    batch = int(settings["batch"])
    bsize = args.bsize or int(settings["crop_size"])
    lr = args.lr or (0.2 if args.sgd else 0.005)
    if args.eval_only:
        model = models.CellposeModel(gpu=False, pretrained_model=saved, diam_mean=17.0, nchan=2)
        print(f"cellpose {version} (torch {torch.__version__}), {threads} threads: "
              f"segmenting with {saved}", flush=True)
        train_s = previous["train_s"] if previous else float("nan")
        train_losses = previous["losses"] if previous else []
    else:
        model = models.CellposeModel(gpu=False, pretrained_model=False, diam_mean=17.0, nchan=2)
        print(f"cellpose {version} (torch {torch.__version__}), {threads} threads, "
              f"random weights; {epochs} epochs x {n_train} images = {epochs * n_train} crops "
              f"of {bsize}px, batch {batch}, {'SGD' if args.sgd else 'AdamW'} lr {lr}",
              flush=True)
        t = time.perf_counter()
        _, train_losses, _ = train.train_seg(
            model.net, train_data=images, train_labels=labels, channels=[0, 0],
            normalize=True, batch_size=batch, learning_rate=lr, SGD=args.sgd,
            n_epochs=epochs, weight_decay=1e-5, bsize=bsize, min_train_masks=1,
            save_path=out, save_every=10 ** 9, model_name=MODEL_NAME)
        train_s = time.perf_counter() - t
    diameter = float(model.net.diam_labels.item())

    times = []
    for index in range(int(settings["n_val"])):
        with np.load(folder.item_path(args.work, "val", index)) as f:
            image, key = f["image"], str(f["key"])
        h, w = image.shape[:2]
        for folder_path, augment in zip(outputs, (False, True)):
            t = time.perf_counter()
            masks = model.eval(gray(image), channels=[0, 0], diameter=diameter,
                               augment=augment)[0]
            if not augment:
                times.append(time.perf_counter() - t)
            if masks.shape != (h, w):
                raise ValueError(f"validation image {index}: masks {masks.shape} for {h}x{w}")
            instance, pixel, boxes = instances_of(masks)
            n = boxes.shape[0]
            folder.write_prediction(os.path.join(folder_path, f"{index:06d}.npz"), (h, w),
                                    instance, pixel, np.ones(n, np.float32),
                                    np.ones(n, np.int32), boxes, key)
            print(f"validation image {index + 1}/{settings['n_val']}"
                  f"{' (augment)' if augment else ''}: {n} instances, "
                  f"{time.perf_counter() - t:.1f}s", flush=True)
    run = {"train_s": train_s, "steps": epochs * math.ceil(n_train / batch),
           "images_seen": epochs * n_train, "epochs": epochs,
           "step_s_mean": train_s / max(1, epochs * math.ceil(n_train / batch)),
           "steps_total_s": train_s, "predict_s_per_image": statistics.median(times),
           "diameter": diameter, "losses": [float(v) for v in train_losses],
           "cellpose": str(version), "torch": torch.__version__, "threads": threads,
           "optimizer": {"name": "sgd" if args.sgd else "adamw", "lr": lr}, "bsize": bsize,
           "backbone": "cellpose u-net (random init)", "augment": bool(args.augment)}
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump(run, f, indent=1)
    print(json.dumps({k: run[k] for k in ("train_s", "images_seen", "diameter",
                                          "predict_s_per_image")}))
    return run


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
