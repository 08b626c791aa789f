"""Times ``build_rpn_targets`` on a 1024x1024 image with 100 ground-truth boxes.

Anchors: scales (32, 64, 128, 256, 512), ratios [0.5, 1, 2], strides
[4, 8, 16, 32, 64], anchor stride 1 (261,888 anchors). Ground truth: random
cell-sized boxes (8-96 px) plus a few other box counts/sizes for context.
Prints a table (median and min of 5 runs) and, last, ``time_s=<median>`` for
the main case.

    python -m benchmarks.rpn_targets    # from the repository root
"""

import time

import numpy as np

from mrcnn.data.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.data.rpn_targets import build_rpn_targets

IMAGE_SHAPE = (1024, 1024, 3)
SCALES = (32, 64, 128, 256, 512)
RATIOS = [0.5, 1, 2]
STRIDES = [4, 8, 16, 32, 64]
REPEATS = 5


class _Config:
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])


def random_boxes(rng, count, min_size, max_size, size=1024):
    """int32 [count, (y1, x1, y2, x2)] boxes inside a size x size image."""
    hw = rng.integers(min_size, max_size + 1, size=(count, 2))
    y1x1 = rng.integers(0, size - hw + 1)
    return np.concatenate([y1x1, y1x1 + hw], axis=1).astype(np.int32)


def time_case(anchors, gt_boxes, gt_class_ids):
    times = []
    for i in range(REPEATS):
        rng = np.random.default_rng(i)
        start = time.perf_counter()
        build_rpn_targets(IMAGE_SHAPE, anchors, gt_class_ids, gt_boxes, _Config, rng=rng)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def main():
    shapes = compute_backbone_shapes(IMAGE_SHAPE, STRIDES)
    anchors = generate_pyramid_anchors(SCALES, RATIOS, shapes, STRIDES, 1)
    rng = np.random.default_rng(0)
    cases = [
        ("100 boxes 8-96 px (main)", random_boxes(rng, 100, 8, 96)),
        ("0 boxes", np.zeros((0, 4), np.int32)),
        ("100 boxes 64-400 px", random_boxes(rng, 100, 64, 400)),
        ("300 boxes 8-96 px", random_boxes(rng, 300, 8, 96)),
    ]
    print(f"anchors: {len(anchors)}")
    print(f"{'case':<28}{'median_s':>10}{'min_s':>10}")
    results = {}
    for name, boxes in cases:
        class_ids = np.ones(len(boxes), dtype=np.int32)
        median, best = time_case(anchors, boxes, class_ids)
        results[name] = median
        print(f"{name:<28}{median:>10.4f}{best:>10.4f}")
    print(f"time_s={results[cases[0][0]]:.4f}")


if __name__ == "__main__":
    main()
