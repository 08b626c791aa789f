"""Seconds per training step and per detect() call, ours vs torchvision's Mask R-CNN.

    python benchmarks/train_detect.py                       # ResNet50-FPN, 512x512, batch 1
    python benchmarks/train_detect.py --backbone efficientnetv2-b0
    python benchmarks/train_detect.py --peer-python /path/to/venv/bin/python
    python benchmarks/train_detect.py --precision bfloat16 --peer-python ...   # both in bf16

Random weights, matched settings (torchvision's defaults scaled to the image:
2000 proposals kept for training, 1000 for inference, 512 sampled ROIs with
25% positives, 100 detections per image, score threshold 0; for detect the
classifier's bias favours the object class, so that our argmax-class
detections reach 100 as the peer's do). A training step
is one optimizer step on one prepared batch (the data pipeline is measured
separately by benchmarks/data_pipeline.py); the "model.train step" row times a
step of MaskRCNN.train as a user runs it (generator, fit, callbacks; no peer
counterpart); detect() includes molding and
unmolding (full-resolution masks). Median over --rounds x --steps calls after a
warm-up (compilation excluded). The peer runs in a separate Python that has torch and
torchvision (they are not dependencies of mrcnn); without one the peer
columns are empty.

Ours and the peer take turns (benchmarks/interleave.py): each phase's two processes
are started and warmed up, then time --steps calls each, alternately, for --rounds
rounds, so that every round compares the two under the same load of the machine; the
ratio of each round is printed, and its median is the figure to quote (a shared VM's
speed drifts by up to 2x between minutes).

--precision (default: the library's default, Config.MIXED_PRECISION) is
resolved on this machine ("auto" -> what mrcnn.training.precision.resolve
picks) and the peer runs in the same precision: torch.autocast on the CPU (or
GPU) for bfloat16/float16. Training and detect each run in a process of their
own (ours and the peer's), so the peak resident memory (ru_maxrss) of each is
its own.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np

import keras

from mrcnn.config import Config
from mrcnn.data.generator import DataGenerator
from mrcnn.dataset import Dataset
import mrcnn.model as modellib
from mrcnn.training.precision import resolve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_cell import StepTimer  # noqa: E402  (seconds of each training batch)
from interleave import round_ratios, run_in_turns, timed_calls  # noqa: E402


class BoxesDataset(Dataset):
    """Random rectangles on noise; `instances` per image of `size` (N or (H, W))."""

    def __init__(self, count, size, instances, seed=0):
        super().__init__()
        self.add_class("bench", 1, "thing")
        self.shape = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.size, self.instances = min(self.shape), instances
        for i in range(count):
            self.add_image("bench", image_id=i, path=None, seed=seed + i)

    def load_image(self, image_id):
        rng = np.random.default_rng(self.image_info[image_id]["seed"])
        return rng.integers(0, 255, self.shape + (3,), dtype=np.uint8)

    def load_mask(self, image_id):
        rng = np.random.default_rng(self.image_info[image_id]["seed"] + 1)
        m = np.zeros(self.shape + (self.instances,), bool)
        for k in range(self.instances):
            h, w = rng.integers(min(16, self.size // 8), self.size // 4, 2)
            y, x = rng.integers(0, self.shape[0] - h), rng.integers(0, self.shape[1] - w)
            m[y:y + h, x:x + w, k] = True
        return m, np.ones(self.instances, np.int32)


def bench_config(backbone, size, fc, mixed=None, rpn_channels="auto", fold=True):
    """The benchmark's config; `size` N (square, "square" resizing) or (H, W) (no resizing)."""
    shape = {}
    if isinstance(size, (tuple, list)):
        shape = {"IMAGE_RESIZE_MODE": "none", "IMAGE_SHAPE": [size[0], size[1], 3]}
        size = max(size)

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
        FOLD_BATCH_NORMS = fold
    return type("BenchConfig", (BenchConfig,), shape)()


def peak_rss_mib():
    """This process's peak resident memory so far, in MiB (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_phase(backbone, size, steps, fc, layers="all", mixed=None, rpn_channels="auto",
                fold=True, weights="/tmp/mrcnn_bench/bench.h5", serve=False):
    """Median seconds per training step; saves the weights for detect_phase.

    serve: time the steps in rounds, as a worker of interleave.run_in_turns."""
    config = bench_config(backbone, size, fc, mixed, rpn_channels, fold)
    data = BoxesDataset(4, size, 10)
    data.prepare()
    model = modellib.MaskRCNN("training", config, os.path.dirname(weights))
    model.set_trainable(layers)
    model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM, 1000)
    batch = DataGenerator(data, config, seed=0)[0]
    t0 = time.perf_counter()
    model.keras_model.train_on_batch(batch)
    compile_s = time.perf_counter() - t0
    times = timed_calls(lambda: model.keras_model.train_on_batch(batch), steps, serve)
    model.save_weights(weights)
    rss = peak_rss_mib()
    # rows the mask head ran on: 128 padded positives, or only the positive ones
    mask_rows = model.keras_model(batch)["mrcnn_mask_logits"].shape[1]
    return {"train_step_s": statistics.median(times), "compile_s": compile_s,
            "params": model.keras_model.count_params(), "train_rss_mib": rss,
            "mask_rows": int(mask_rows), "fit_step_s": fit_step(model, data, steps, layers)}


def fit_step(model, data, steps, layers, warmup=2):
    """Median seconds per step of `model.train` (what a user runs: the data generator, Keras'
    fit and the library's callbacks), after `warmup` steps that include its compilation.

    Unlike train_on_batch above, this path goes through TensorFlow's tf.data generator,
    which changes the process's malloc settings (mrcnn/training/allocator.py).
    """
    model.config.STEPS_PER_EPOCH = steps + warmup
    model.config.VALIDATION_STEPS = 1
    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="mrcnn_bench_fit_") as run_dir:  # its checkpoint
        model.model_dir = run_dir
        model.set_log_dir()
        model.train(data, data, model.config.LEARNING_RATE, model.epoch + 1, layers,
                    custom_callbacks=[timer])
    return statistics.median(timer.times[warmup:])


def force_detections(infer):
    """Make the object class win every ROI, so that detect() keeps DETECTION_MAX_INSTANCES.

    Random weights classify most ROIs as background (Matterport keeps each ROI's
    argmax class), which would leave a few dozen detections against the peer's 100
    (torchvision scores every class of every ROI): raising the object classes' logit
    bias makes both paste DETECTION_MAX_INSTANCES = 100 masks.
    """
    logits = infer.keras_model.get_layer("mrcnn_class_logits")
    bias = keras.ops.convert_to_numpy(logits.bias).copy()
    bias[1:] += 10.0
    logits.bias.assign(bias)


def detect_phase(backbone, size, steps, fc, mixed=None, rpn_channels="auto", fold=True,
                 weights="/tmp/mrcnn_bench/bench.h5", serve=False):
    """Median seconds per detect() call on one image, with the weights train_phase saved.

    serve: time the calls in rounds, as a worker of interleave.run_in_turns."""
    config = bench_config(backbone, size, fc, mixed, rpn_channels, fold)
    data = BoxesDataset(1, size, 10)
    data.prepare()
    infer = modellib.MaskRCNN("inference", config, os.path.dirname(weights))
    infer.load_weights(weights)
    force_detections(infer)
    image = data.load_image(0)
    n = infer.detect([image])[0]["rois"].shape[0]
    dtimes = timed_calls(lambda: infer.detect([image]), steps, serve)
    return {"detect_s": statistics.median(dtimes), "detections": int(n),
            "detect_rss_mib": peak_rss_mib()}


def phase_command(phase, args, precision):
    """The command of a worker process timing our `phase` ("train" or "detect")."""
    return [sys.executable, os.path.abspath(__file__), "--phase", phase, "--serve",
            "--backbone", args.backbone, "--size", args.size_text, "--steps", str(args.steps),
            "--fc", str(args.fc), "--rpn-channels", str(args.rpn_channels),
            "--precision", precision] + (["--padded-mask-head"] if args.padded_mask_head else []) \
        + (["--no-fold"] if args.no_fold else [])


def parse_size(text):
    """--size: N (a square image, "square" resizing) or H,W (no resizing), multiples of 64."""
    values = [int(v) for v in str(text).split(",")]
    if len(values) not in (1, 2) or min(values) < 64 or any(v % 64 for v in values):
        raise argparse.ArgumentTypeError(f"--size must be N or H,W in multiples of 64, got "
                                         f"{text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def rpn_width(text):
    """--rpn-channels: "auto" (the library's default: 256, as torchvision) or a positive int."""
    if str(text) == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--rpn-channels must be 'auto' or a positive int, "
                                         f"got {text!r}")
    return value


def peer_command(python, phase, args, precision):
    """The command of a worker process timing the peer's `phase`."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_torchvision.py")
    return [python, script, "--size", str(args.size), "--steps", str(args.steps),
            "--precision", precision, "--phase", phase, "--serve"]


def time_in_turns(args, precision):
    """Each phase's workers (ours, and the peer's with --peer-python) timed in turns.

    Returns (ours, peer, ratios): our result dict, the peer's (None without a peer), and per
    phase the ratio of each round (peer / ours: how many times faster ours was).
    """
    ours, peer, ratios = {}, {} if args.peer_python else None, {}
    for phase in ("train", "detect"):
        commands = {"ours": phase_command(phase, args, precision)}
        if args.peer_python:
            commands["peer"] = peer_command(args.peer_python, phase, args, precision)
        try:
            runs = run_in_turns(commands, args.rounds)
        except RuntimeError as err:
            raise SystemExit(f"the {phase} phase failed: {err}")
        ours.update(runs["ours"]["result"])
        if args.peer_python:
            peer.update(runs["peer"]["result"])
            ratios[phase] = round_ratios(runs["peer"]["rounds"], runs["ours"]["rounds"])
    return ours, peer, ratios


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--size", type=parse_size, default=512,
                   help="N (square) or H,W (no resizing; the peer runs square only)")
    p.add_argument("--steps", type=int, default=5, help="timed calls per round")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds in which ours and the peer take turns (default 3)")
    p.add_argument("--fc", type=int, default=1024, help="FPN_CLASSIF_FC_LAYERS_SIZE")
    p.add_argument("--precision", default=None,
                   choices=("float32", "bfloat16", "float16", "auto"),
                   help="Config.MIXED_PRECISION for ours, and the peer's precision (default: "
                        "the library's default, Config.MIXED_PRECISION)")
    p.add_argument("--rpn-channels", type=rpn_width, default="auto",
                   help="RPN_CONV_CHANNELS for ours: 'auto' (the default, 256 as torchvision) "
                        "or an int (512: Matterport's)")
    p.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON"),
                   help="a Python with torch+torchvision for the peer (default $PEER_PYTHON)")
    p.add_argument("--padded-mask-head", action="store_true",
                   help="run the mask head on all padded ROI rows, as on JAX (static shapes), "
                        "instead of on the positives / detections only")
    p.add_argument("--no-fold", action="store_true",
                   help="Config.FOLD_BATCH_NORMS = False: each batch norm computed on its own "
                        "(default: folded into its convolution, mrcnn.layers.batch_norm_fold)")
    p.add_argument("--phase", choices=("train", "detect"), default=None,
                   help=argparse.SUPPRESS)   # internal: one phase in this process
    p.add_argument("--serve", action="store_true",
                   help=argparse.SUPPRESS)   # internal: --phase as a worker of run_in_turns
    args = p.parse_args()
    if args.steps < 1 or args.rounds < 1:
        raise SystemExit(f"--steps and --rounds must be >= 1, got {args.steps} and "
                         f"{args.rounds}")
    args.size_text = ",".join(map(str, args.size)) if isinstance(args.size, tuple) \
        else str(args.size)
    if args.peer_python and isinstance(args.size, tuple):
        raise SystemExit("the peer runs square images only: --size N with --peer-python")
    setting = Config.MIXED_PRECISION if args.precision is None else \
        {"float32": None}.get(args.precision, args.precision)
    precision = resolve(setting, args.backbone) or "float32"
    if args.phase:
        if args.padded_mask_head:   # the layout JAX gets: every row, no varying sizes
            import mrcnn.layers.batching as batching
            batching.dynamic_shapes_available = lambda: False
        mixed = None if precision == "float32" else precision
        fn = train_phase if args.phase == "train" else detect_phase
        extra = {"layers": "all"} if args.phase == "train" else {}
        print(json.dumps(fn(args.backbone, args.size, args.steps, args.fc, mixed=mixed,
                            rpn_channels=args.rpn_channels, fold=not args.no_fold,
                            serve=args.serve, **extra)))
        return
    ours, peer, ratios = time_in_turns(args, precision)
    print(f"\nbackend={keras.backend.backend()} backbone={args.backbone} size={args.size_text} "
          f"precision={precision} (asked: {args.precision or f'default {setting!r}'}) "
          f"rpn_channels={args.rpn_channels}"
          f"{' padded-mask-head' if args.padded_mask_head else ''}"
          f"{' batch-norms-apart' if args.no_fold else ''} batch=1 params={ours['params']:,} "
          f"first-step(compile)={ours['compile_s']:.1f}s rounds={args.rounds}x{args.steps}")
    print(f"{'':22}{'mrcnn':>10}{'torchvision':>14}{'ratio peer/ours':>18}")
    rows = (("train_step_s", "train step (s)"), ("detect_s", "detect (s)"),
            ("train_rss_mib", "train peak RSS (MiB)"), ("detect_rss_mib", "detect peak RSS (MiB)"))
    for key, label in rows:
        theirs = peer[key] if peer else float("nan")
        print(f"{label:22}{ours[key]:10.3f}{theirs:14.3f}{theirs / ours[key]:18.2f}")
    print(f"{'model.train step (s)':22}{ours['fit_step_s']:10.3f}{'-':>14}")
    print(f"{'detections':22}{ours['detections']:10d}"
          f"{(peer['detections'] if peer else 0):14d}")
    print(f"{'mask head rows':22}{ours['mask_rows']:10d}")
    for phase, values in ratios.items():   # taken in turns: the figures to quote
        print(f"{phase + ' ratio per round':22} " + " ".join(f"{v:.2f}" for v in values)
              + f"   median {statistics.median(values):.2f}")
    print(f"train_step_s={ours['train_step_s']:.3f} detect_s={ours['detect_s']:.3f} "
          f"peer_train_step_s={(peer or {}).get('train_step_s', float('nan')):.3f} "
          f"peer_detect_s={(peer or {}).get('detect_s', float('nan')):.3f} "
          f"fit_step_s={ours['fit_step_s']:.3f}")


if __name__ == "__main__":
    main()
