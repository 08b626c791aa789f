"""Seconds per training step and per detect() call, ours vs torchvision's Mask R-CNN.

    python benchmarks/train_detect.py                       # ResNet50-FPN, 512x512, batch 1
    python benchmarks/train_detect.py --backbone efficientnetv2-b0
    python benchmarks/train_detect.py --peer-python /path/to/venv/bin/python

Random weights, matched settings (torchvision's defaults scaled to the image:
2000 proposals kept for training, 1000 for inference, 512 sampled ROIs with
25% positives, 100 detections per image, score threshold 0). A training step
is one optimizer step on one prepared batch (the data pipeline is measured
separately by benchmarks/data_pipeline.py); detect() includes molding and
unmolding (full-resolution masks). Median over --steps after a warm-up
(compilation excluded). The peer runs in a separate Python that has torch and
torchvision (they are not dependencies of mrcnn); without one the peer
columns are empty.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import keras

from mrcnn.config import Config
from mrcnn.data.generator import DataGenerator
from mrcnn.dataset import Dataset
import mrcnn.model as modellib


class BoxesDataset(Dataset):
    """Random rectangles on noise; `instances` per image."""

    def __init__(self, count, size, instances, seed=0):
        super().__init__()
        self.add_class("bench", 1, "thing")
        self.size, self.instances = size, instances
        for i in range(count):
            self.add_image("bench", image_id=i, path=None, seed=seed + i)

    def load_image(self, image_id):
        rng = np.random.default_rng(self.image_info[image_id]["seed"])
        return rng.integers(0, 255, (self.size, self.size, 3), dtype=np.uint8)

    def load_mask(self, image_id):
        rng = np.random.default_rng(self.image_info[image_id]["seed"] + 1)
        m = np.zeros((self.size, self.size, self.instances), bool)
        for k in range(self.instances):
            h, w = rng.integers(16, self.size // 4, 2)
            y, x = rng.integers(0, self.size - h), rng.integers(0, self.size - w)
            m[y:y + h, x:x + w, k] = True
        return m, np.ones(self.instances, np.int32)


def bench_config(backbone, size, fc, mixed=None, rpn_channels=512):
    class BenchConfig(Config):
        NAME = "bench"
        NUM_CLASSES = 2
        IMAGES_PER_GPU = 1
        BACKBONE = backbone
        IMAGE_MIN_DIM = size
        IMAGE_MAX_DIM = size
        PRE_NMS_LIMIT = 2000
        POST_NMS_ROIS_TRAINING = 2000
        POST_NMS_ROIS_INFERENCE = 1000
        TRAIN_ROIS_PER_IMAGE = 512
        ROI_POSITIVE_RATIO = 0.25
        DETECTION_MAX_INSTANCES = 100
        DETECTION_MIN_CONFIDENCE = 0.0
        FPN_CLASSIF_FC_LAYERS_SIZE = fc
        TRAIN_BN = False
        MIXED_PRECISION = mixed
        RPN_CONV_CHANNELS = rpn_channels
    return BenchConfig()


def time_ours(backbone, size, steps, fc, layers="all", mixed=None, rpn_channels=512):
    config = bench_config(backbone, size, fc, mixed, rpn_channels)
    data = BoxesDataset(4, size, 10)
    data.prepare()
    model = modellib.MaskRCNN("training", config, "/tmp/mrcnn_bench")
    model.set_trainable(layers)
    model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM, 1000)
    batch = DataGenerator(data, config, seed=0)[0]
    t0 = time.perf_counter()
    model.keras_model.train_on_batch(batch)
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.keras_model.train_on_batch(batch)
        times.append(time.perf_counter() - t)
    weights = "/tmp/mrcnn_bench/bench.h5"
    model.save_weights(weights)

    infer = modellib.MaskRCNN("inference", config, "/tmp/mrcnn_bench")
    infer.load_weights(weights)
    image = data.load_image(0)
    infer.detect([image])
    dtimes, n = [], 0
    for _ in range(steps):
        t = time.perf_counter()
        r = infer.detect([image])[0]
        dtimes.append(time.perf_counter() - t)
        n = r["rois"].shape[0]
    return {"train_step_s": statistics.median(times), "detect_s": statistics.median(dtimes),
            "detections": int(n), "compile_s": compile_s,
            "params": model.keras_model.count_params()}


def time_peer(python, size, steps):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_torchvision.py")
    proc = subprocess.run([python, script, "--size", str(size), "--steps", str(steps)],
                          capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode or not lines:
        print(f"peer failed: {proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--fc", type=int, default=1024, help="FPN_CLASSIF_FC_LAYERS_SIZE")
    p.add_argument("--mixed-precision", default=None, choices=("bfloat16", "float16"),
                   help="Config.MIXED_PRECISION for ours (default float32)")
    p.add_argument("--rpn-channels", type=int, default=512,
                   help="RPN_CONV_CHANNELS for ours (512 Matterport, 256 as torchvision)")
    p.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON"),
                   help="a Python with torch+torchvision for the peer (default $PEER_PYTHON)")
    args = p.parse_args()
    ours = time_ours(args.backbone, args.size, args.steps, args.fc,
                     mixed=args.mixed_precision, rpn_channels=args.rpn_channels)
    peer = time_peer(args.peer_python, args.size, args.steps) if args.peer_python else None
    print(f"\nbackend={keras.backend.backend()} backbone={args.backbone} size={args.size} "
          f"precision={args.mixed_precision or 'float32'} rpn_channels={args.rpn_channels} "
          f"batch=1 params={ours['params']:,} first-step(compile)={ours['compile_s']:.1f}s")
    print(f"{'':22}{'mrcnn':>10}{'torchvision':>14}{'ratio peer/ours':>18}")
    for key, label in (("train_step_s", "train step (s)"), ("detect_s", "detect (s)")):
        theirs = peer[key] if peer else float("nan")
        print(f"{label:22}{ours[key]:10.3f}{theirs:14.3f}{theirs / ours[key]:18.2f}")
    print(f"{'detections':22}{ours['detections']:10d}"
          f"{(peer['detections'] if peer else 0):14d}")
    print(f"train_step_s={ours['train_step_s']:.3f} detect_s={ours['detect_s']:.3f} "
          f"peer_train_step_s={(peer or {}).get('train_step_s', float('nan')):.3f} "
          f"peer_detect_s={(peer or {}).get('detect_s', float('nan')):.3f}")


if __name__ == "__main__":
    main()
