"""detect() latency: the library vs its exported SavedModel (and ONNX Runtime), on CPU.

    python benchmarks/export_latency.py                  # ResNet50-FPN, 512x512, batch 1
    python benchmarks/export_latency.py --onnx           # also ONNX Runtime (TensorFlow backend)
    python benchmarks/export_latency.py --backbone small-cnn --size 128 --steps 2   # smoke

Random weights, the settings of benchmarks/train_detect.py (1000 proposals,
100 detections, score threshold 0, so every call pastes 100 masks at the
image size). Each path is timed on the same image through the same
interface: ``MaskRCNN.detect`` and ``load_exported(path).detect`` (molding,
the exported function, unmolding and mask pasting). Median over --steps
after one warm-up call (which includes tracing/compilation and is printed
apart). The detections of each export are compared with the library's.

"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_detect import bench_config  # noqa: E402

import mrcnn.model as modellib  # noqa: E402
from mrcnn.inference.export import export_model  # noqa: E402
from mrcnn.inference.exported import load_exported  # noqa: E402


def time_detect(model, image, steps):
    """(first call s, median s of `steps` calls, last result)."""
    t = time.perf_counter()
    result = model.detect([image])[0]
    first = time.perf_counter() - t
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        result = model.detect([image])[0]
        times.append(time.perf_counter() - t)
    return first, statistics.median(times), result


def agreement(expected, actual):
    """'same' or what differs: detections count, max box difference, mask pixels."""
    n = len(expected["class_ids"])
    if len(actual["class_ids"]) != n:
        return f"{len(actual['class_ids'])} vs {n} detections"
    boxes = int(np.abs(actual["rois"] - expected["rois"]).max()) if n else 0
    pixels = int((actual["masks"] != expected["masks"]).reshape(-1, n).sum(0).max()) if n else 0
    return "same" if boxes == 0 and pixels == 0 else f"box <= {boxes} px, mask <= {pixels} px"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--fc", type=int, default=1024, help="FPN_CLASSIF_FC_LAYERS_SIZE")
    p.add_argument("--onnx", action="store_true", help="also export to ONNX and time ONNX Runtime")
    p.add_argument("--out", default=None, help="folder for the exports (default: a temp folder)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = p.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    config = bench_config(args.backbone, args.size, args.fc)
    model = modellib.MaskRCNN("inference", config, tempfile.gettempdir())
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    folder = args.out or tempfile.mkdtemp(prefix="mrcnn-export-bench-")
    rows = [("library (MaskRCNN.detect)", None, None) + time_detect(model, image, args.steps)]
    formats = [("tf_saved_model", os.path.join(folder, "saved_model"))]
    if args.onnx:
        formats.append(("onnx", os.path.join(folder, "model.onnx")))
    for format, path in formats:
        try:
            t = time.perf_counter()
            export_model(model, path, format=format, overwrite=True)
            export_s = time.perf_counter() - t
        except ValueError as error:
            print(f"{format}: not exported: {error}")
            continue
        t = time.perf_counter()
        exported = load_exported(path)
        load_s = time.perf_counter() - t
        rows.append((f"{format} (load_exported)", export_s, load_s)
                    + time_detect(exported, image, args.steps))

    base = rows[0][4]
    print(f"\nbackend={keras.backend.backend()} backbone={args.backbone} size={args.size} "
          f"batch=1 detections={len(rows[0][5]['class_ids'])} steps={args.steps} "
          f"cpus={os.cpu_count()}")
    print(f"{'path':28}{'export s':>9}{'load s':>8}{'1st call s':>11}{'detect s':>10}"
          f"{'ratio':>7}  agreement with the library")
    for name, export_s, load_s, first, median, result in rows:
        print(f"{name:28}{_num(export_s, 9)}{_num(load_s, 8)}{first:11.2f}{median:10.3f}"
              f"{median / base:7.2f}  {agreement(rows[0][5], result)}")
    return rows


def _num(value, width):
    return f"{'-':>{width}}" if value is None else f"{value:{width}.1f}"


if __name__ == "__main__":
    main()
