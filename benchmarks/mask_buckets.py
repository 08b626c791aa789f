"""JAX detect(): the mask head on a bucket of the detections vs on all DETECTION_MAX_INSTANCES rows.

    KERAS_BACKEND=jax python benchmarks/mask_buckets.py              # ResNet50-FPN, 512x512
    KERAS_BACKEND=jax python benchmarks/mask_buckets.py --shifts=0,-47,-50

On JAX (static shapes) the inference graph runs the mask head on the
smallest of N, N/2, N/4, ... rows that holds the detections
(`mrcnn.layers.row_buckets.BucketedRows`); "all rows" forces the single
bucket N, as before. Random weights; the classifier's object-class bias is
shifted by each of --shifts so that a different number of detections pass
(0: all 100 with random weights here, large negative shifts: a few). One
model per (shift, variant), seeded alike; median of --calls detect() calls
after the first (compilation excluded). Prints a table and, last, one line
``shift=... detections=... bucketed_s=... all_rows_s=...`` per shift.
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_shifts(text):
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shifts takes comma-separated numbers, got {text!r}")


def time_detect(backbone, size, fc, shift, all_rows, calls):
    import keras

    import mrcnn.model as modellib
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    from train_detect import BoxesDataset, bench_config

    keras.utils.set_random_seed(0)
    data = BoxesDataset(1, size, 10)
    data.prepare()
    image = data.load_image(0)
    infer = modellib.MaskRCNN("inference", bench_config(backbone, size, fc), "/tmp/mrcnn_bench")
    logits = infer.keras_model.get_layer("mrcnn_class_logits")
    bias = keras.ops.convert_to_numpy(logits.bias).copy()
    bias[1:] += shift
    logits.bias.assign(bias)
    buckets = infer.keras_model.get_layer("mrcnn_mask_buckets")
    if all_rows:
        buckets.buckets = [buckets.num_rows]
    r = infer.detect([image])[0]
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        r = infer.detect([image])[0]
        times.append(time.perf_counter() - t)
    return statistics.median(times), int(r["rois"].shape[0]), list(buckets.buckets)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--fc", type=int, default=1024, help="FPN_CLASSIF_FC_LAYERS_SIZE")
    p.add_argument("--shifts", type=parse_shifts, default=[0.0, -47.0, -50.0],
                   help="object-class bias shifts (comma-separated)")
    p.add_argument("--calls", type=int, default=3)
    args = p.parse_args(argv)
    import keras
    if keras.backend.backend() != "jax":
        raise SystemExit(f"mask_buckets.py measures the JAX graph; run it with "
                         f"KERAS_BACKEND=jax (the backend is {keras.backend.backend()!r})")
    rows = []
    for shift in args.shifts:
        bucketed, n, buckets = time_detect(args.backbone, args.size, args.fc, shift, False,
                                           args.calls)
        full, n_full, _ = time_detect(args.backbone, args.size, args.fc, shift, True, args.calls)
        if n != n_full:
            raise SystemExit(f"shift {shift}: {n} detections bucketed but {n_full} on all rows")
        rows.append((shift, n, next(k for k in buckets if k >= n), bucketed, full))
    print(f"\nbackend=jax backbone={args.backbone} size={args.size} buckets={buckets}")
    print(f"{'shift':>8}{'detections':>12}{'bucket':>8}{'bucketed s':>12}{'all rows s':>12}"
          f"{'ratio':>8}")
    for shift, n, k, bucketed, full in rows:
        print(f"{shift:8.1f}{n:12d}{k:8d}{bucketed:12.3f}{full:12.3f}{full / bucketed:8.2f}")
    for shift, n, k, bucketed, full in rows:
        print(f"shift={shift:g} detections={n} bucketed_s={bucketed:.3f} all_rows_s={full:.3f}")


if __name__ == "__main__":
    main()
