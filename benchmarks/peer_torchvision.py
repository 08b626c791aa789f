"""torchvision's maskrcnn_resnet50_fpn timed like benchmarks/train_detect.py times ours.

Run in an environment that has torch + torchvision (not a dependency of mrcnn):
    python benchmarks/peer_torchvision.py --size 512 --steps 5 [--precision bfloat16] [--phase train]
Prints one JSON line: {"train_step_s": ..., "detect_s": ..., "detections": ...,
"train_rss_mib"/"detect_rss_mib": ...}. --precision bfloat16/float16 runs the
forward passes under torch.autocast (CPU or CUDA), torchvision's own mixed
precision; the backward pass follows autocast's dtypes. --phase runs only the
training or only the detect timing, so the peak resident memory is that
phase's. --serve (with --phase train or detect) makes the process a worker of
benchmarks/interleave.run_in_turns: it times --steps calls per round, taking
turns with ours (benchmarks/train_detect.py runs it so).
"""

import argparse
import contextlib
import json
import resource
import statistics

import numpy as np
import torch
import torchvision
from torchvision.models.detection import maskrcnn_resnet50_fpn

from interleave import timed_calls   # benchmarks/ (stdlib only), this script's folder


def synthetic_target(size, n, rng, num_classes):
    boxes, masks = [], []
    for _ in range(n):
        h, w = rng.integers(16, size // 4, 2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        m = np.zeros((size, size), np.uint8)
        m[y:y + h, x:x + w] = 1
        boxes.append([x, y, x + w, y + h])
        masks.append(m)
    return {"boxes": torch.tensor(boxes, dtype=torch.float32),
            "labels": torch.tensor(rng.integers(1, num_classes, n), dtype=torch.int64),
            "masks": torch.tensor(np.stack(masks))}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--instances", type=int, default=10)
    p.add_argument("--num-classes", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--phase", choices=("train", "detect", "both"), default="both")
    p.add_argument("--serve", action="store_true",
                   help="time in rounds as a worker of interleave.run_in_turns (one --phase)")
    args = p.parse_args()
    if args.serve and args.phase == "both":
        raise SystemExit("--serve times one phase: add --phase train or --phase detect")
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    model = maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=args.num_classes,
        min_size=args.size, max_size=args.size,
        rpn_pre_nms_top_n_train=2000, rpn_post_nms_top_n_train=2000,
        rpn_pre_nms_top_n_test=1000, rpn_post_nms_top_n_test=1000,
        box_batch_size_per_image=512, box_detections_per_img=100, box_score_thresh=0.0)
    image = torch.rand(3, args.size, args.size)
    target = synthetic_target(args.size, args.instances, rng, args.num_classes)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.precision == "float32":
        autocast = contextlib.nullcontext
    else:
        dtype = getattr(torch, args.precision)
        autocast = lambda: torch.autocast(device, dtype=dtype)  # noqa: E731
    result = {"precision": args.precision, "torch": torch.__version__,
              "torchvision": torchvision.__version__}
    if args.phase in ("train", "both"):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        model.train()

        def train_step():
            with autocast():
                losses = model([image], [target])
                loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()

        train_step()   # the warm-up, not timed
        times = timed_calls(train_step, args.steps, args.serve)
        result.update(train_step_s=statistics.median(times), train_rss_mib=peak_rss_mib())
    if args.phase in ("detect", "both"):
        model.eval()

        def detect():
            with torch.no_grad(), autocast():
                return model([image])

        n = int(detect()[0]["boxes"].shape[0])   # the warm-up, not timed
        dtimes = timed_calls(detect, args.steps, args.serve)
        result.update(detect_s=statistics.median(dtimes), detections=n,
                      detect_rss_mib=peak_rss_mib())
    print(json.dumps(result))


def peak_rss_mib():
    """This process's peak resident memory so far, in MiB (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
