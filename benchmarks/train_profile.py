"""Where a training step's time goes, part by part (TensorFlow profiler, CPU).

    python benchmarks/train_profile.py                          # ResNet50-FPN, 512x512, float32
    python benchmarks/train_profile.py --precision bfloat16
    python benchmarks/train_profile.py --backbone efficientnetv2-b0 --fc 128 --size 576,704
    python benchmarks/train_profile.py --detect --precision bfloat16   # detect() instead

The model and batch of benchmarks/train_detect.py (random weights, 2000
proposals, 512 sampled ROIs, batch 1). After two warm-up steps, --steps
training steps run under ``tf.profiler``; every TensorFlow op the executor ran
is assigned to the part of the model whose Keras layer created it (the op's
name scope), forward and backward apart (backward ops live under
``gradient_tape/``), and the optimizer update and the losses by their scopes.
Times are summed over the ops' own durations on the executor's threads
(two cores run ops in parallel, so the sum can exceed the wall time; the
table also gives each part's share of the sum) and divided by --steps.

--detect profiles ``MaskRCNN.detect`` on one image instead (train_detect.py's
detect phase: weights saved by a training step, the object class forced to
win so that 100 detections are masked); its parts add the detection layer,
and the wall time includes what runs outside TensorFlow (molding the image,
pasting the masks back).
"""

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

from train_detect import (BoxesDataset, bench_config, force_detections, parse_size,  # noqa: E402
                          rpn_width)
from mrcnn.data.generator import DataGenerator  # noqa: E402
import mrcnn.model as modellib  # noqa: E402
from mrcnn.training.precision import resolve  # noqa: E402

# Parts of the model, in the order of the table, and the layer names that make them up.
PARTS = (
    ("backbone", None),                  # every layer not matched below
    ("FPN", r"^fpn_"),
    ("RPN head", r"^rpn_"),
    ("anchors + proposals", r"^(anchors|ROI)$"),
    ("detection targets", r"^(proposal_targets|mask_rois|mask_class_ids|mask_targets)$"),
    ("detection layer", r"^(mrcnn_detection|detection_boxes|detection_class_ids|norm_window)$"),
    ("ROIAlign", r"^roi_align_"),
    ("box head", r"^(mrcnn_class|mrcnn_bbox|pool_squeeze)"),
    ("mask head", r"^(mrcnn_mask|mask_positive_|mask_detected_)"),
)
OTHER = ("losses", "optimizer update", "other")
OP_EVENT = re.compile(r"^[^:]+:\w+$")


def layer_parts(keras_model):
    """{layer name: part}; unnamed activations take the part of the layer that feeds them."""
    parts = {}
    for layer in keras_model.layers:
        for part, pattern in PARTS[1:]:
            if re.search(pattern, layer.name):
                parts[layer.name] = part
                break
    for layer in keras_model.layers:
        if layer.name in parts:
            continue
        source = _source_layer(layer)
        parts[layer.name] = parts.get(source, "backbone") if source else "backbone"
    return parts


def _source_layer(layer):
    try:
        tensor = layer._inbound_nodes[0].input_tensors[0]
        return tensor._keras_history.operation.name
    except (IndexError, AttributeError):
        return None


def op_events(logdir):
    """(op name, duration in ps) of every TensorFlow op event in the profile under `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    if not paths:
        raise FileNotFoundError(f"no *.xplane.pb under {logdir}: the profiler wrote nothing")
    space = xplane_pb2.XSpace()
    with open(sorted(paths)[-1], "rb") as f:
        space.ParseFromString(f.read())
    events = []
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {k: m.name for k, m in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):    # the executor's op threads
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if OP_EVENT.match(name):     # "<scope>/<op>:<OpType>", not the executor's own
                    events.append((name, event.duration_ps))
    return events


def classify(name, parts):
    """(part, direction) of an op named like ``gradient_tape/<model>/<layer>/<op>``."""
    backward = "gradient_tape/" in name
    if (re.search(r"(^|/)(SGD|AdamW?|sgd|adamw?)(/|_)|Apply|AssignSub|AssignAdd", name)
            and "/ArithmeticOptimizer/" not in name):   # grappler's AddN accumulators
        return "optimizer update", ""
    for segment in name.partition(":")[0].split("/"):
        part = parts.get(segment) or parts.get(re.sub(r"_\d+$", "", segment))
        if part:
            return part, "backward" if backward else "forward"
    if re.search(r"loss", name, re.IGNORECASE):
        return "losses", "backward" if backward else "forward"
    return "other", "backward" if backward else "forward"


def profile(args, precision):
    config = bench_config(args.backbone, args.size, args.fc,
                          None if precision == "float32" else precision, args.rpn_channels)
    data = BoxesDataset(4, args.size, 10)
    data.prepare()
    model = modellib.MaskRCNN("training", config, "/tmp/mrcnn_bench")
    model.set_trainable("all")     # as train_detect.py and MaskRCNN.train: frozen batch norms
    model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM, 1000)
    batch = DataGenerator(data, config, seed=0)[0]
    for _ in range(2):
        model.keras_model.train_on_batch(batch)
    step = lambda: model.keras_model.train_on_batch(batch)   # noqa: E731
    if args.detect:
        weights = os.path.join(tempfile.mkdtemp(prefix="mrcnn_profile_"), "weights.h5")
        model.keras_model.save_weights(weights)
        model = modellib.MaskRCNN("inference", config, os.path.dirname(weights))
        model.load_weights(weights)
        force_detections(model)
        image = data.load_image(0)
        step = lambda: model.detect([image])                  # noqa: E731
        for _ in range(2):
            step()
    parts = layer_parts(model.keras_model)
    logdir = tempfile.mkdtemp(prefix="mrcnn_profile_")
    t0 = time.perf_counter()
    tf.profiler.experimental.start(logdir)
    for _ in range(args.steps):
        step()
    tf.profiler.experimental.stop()
    wall = (time.perf_counter() - t0) / args.steps
    totals = collections.defaultdict(float)
    unassigned = collections.Counter()
    for name, ps in op_events(logdir):
        key = classify(name, parts)
        totals[key] += ps / 1e12 / args.steps
        if key[0] == "other":
            unassigned[name.partition(":")[0]] += ps / 1e12 / args.steps
    if args.verbose:
        for name, s in unassigned.most_common(15):
            print(f"  other: {s:.3f} s  {name}")
    return totals, wall


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--size", type=parse_size, default=512, help="N or H,W")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--fc", type=int, default=1024)
    p.add_argument("--rpn-channels", type=rpn_width, default="auto")
    p.add_argument("--verbose", action="store_true", help="list the largest unassigned ops")
    p.add_argument("--detect", action="store_true",
                   help="profile detect() on one image (100 detections) instead of training")
    p.add_argument("--precision", default="float32",
                   choices=("float32", "bfloat16", "float16", "auto"))
    args = p.parse_args()
    precision = resolve(None if args.precision == "float32" else args.precision,
                        args.backbone) or "float32"
    totals, wall = profile(args, precision)
    op_sum = sum(totals.values())
    what = "detect" if args.detect else "train step"
    print(f"\n{what}: backbone={args.backbone} size={args.size} "
          f"precision={precision} rpn_channels={args.rpn_channels}: wall {wall:.3f} s/step, "
          f"sum of op times {op_sum:.3f} s/step")
    print(f"{'part':24}{'forward s':>11}{'backward s':>12}{'total s':>10}{'share':>8}")
    for part in [name for name, _ in PARTS] + list(OTHER):
        fwd = totals.get((part, "forward"), 0.0)
        bwd = totals.get((part, "backward"), 0.0) + totals.get((part, ""), 0.0)
        if fwd + bwd == 0:
            continue
        print(f"{part:24}{fwd:11.3f}{bwd:12.3f}{fwd + bwd:10.3f}{(fwd + bwd) / op_sum:8.1%}")
    print(f"{'sum':24}{'':11}{'':12}{op_sum:10.3f}{1:8.1%}")


if __name__ == "__main__":
    main()
